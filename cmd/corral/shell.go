package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"corral/actors"
	"corral/eventbus"
)

const shellUsage = `usage: corral shell [--runtime local|cli|docker|kubernetes|remote] [--image IMAGE] [--workspace DIR] [--config FILE] [-v]

Starts one session and runs each line you type as a command in its bash,
streaming its output as it comes. Each command ends with a dimmed line:
OpenHands' note to the agent ("[The command completed with exit code N.]",
"[The command has no new output after 10 seconds. ...]", "... is NOT
executed ..."). A command still running when it returns control (it waits
for input, or is quiet) gets the next line you type as input (prompt
"input> "; an empty line waits for more output). Ctrl-C interrupts the
running command, or clears the line at an idle prompt; Ctrl-D at an empty
prompt, or "exit", ends the session (Ctrl-D while a command runs sends it
C-d). SIGTERM and SIGHUP (the terminal was closed) end the session and
release its sandbox.

flags:
`

func runShell(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o cliOpts
	fs := cliFlags("corral shell", shellUsage, stderr, &o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	// main leaves SIGINT out of ctx for the shell: Ctrl-C arrives here.
	intr := make(chan os.Signal, 1)
	signal.Notify(intr, os.Interrupt)
	defer signal.Stop(intr)

	// Ctrl-C while the sandbox starts gives up on it.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-intr:
			cancel()
		case <-started:
		}
	}()
	cs, code, err := openCLISession(sctx, o, stderr)
	close(started)
	<-watched
	if err != nil {
		fmt.Fprintf(stderr, "corral shell: %v\n", err)
		return code
	}
	defer cs.close()
	// One subscription for the shell's life: chunks name their action, and
	// subscribing before the first command means none of its output is
	// missed.
	chunks, err := cs.eng.SubscribeChunks(sctx, cs.sid)
	if err != nil {
		fmt.Fprintf(stderr, "corral shell: live output of session %s: %v\n", cs.sid, err)
		return exitFailed
	}
	pump := startChunkPump(chunks)
	defer func() { cancel(); <-pump.done }() // cancel ends the subscription
	done := make(chan struct{})
	defer close(done)
	sh := &shell{
		cs: cs, ctx: sctx, cancel: cancel, intr: intr, pump: pump,
		out:      &termWriter{w: stdout, dim: isTerminal(stdout) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb", bol: true},
		stderr:   stderr,
		stdinTTY: stdinIsTerminal(stdin),
	}
	sh.in = readInput(stdin, sh.stdinTTY, done)
	return sh.loop(o.runtime)
}

// typed is what the person at the shell typed: a line, or an EOF
// (Ctrl-D on a terminal). final: nothing more will come (stdin ended or
// its terminal hung up).
type typed struct {
	line   string
	eof    bool
	hangup bool
	final  bool
}

// readInput reads stdin line by line until it ends. A terminal's EOF
// (Ctrl-D) is an event and reading goes on (what ends the session is the
// shell's call); a hung-up terminal or any other reader's EOF is final.
// The goroutine ends with stdin, or once done is closed and it has
// something to deliver; a read that never returns ends with the process.
func readInput(stdin io.Reader, tty bool, done <-chan struct{}) <-chan typed {
	ch := make(chan typed)
	send := func(ev typed) bool {
		select {
		case ch <- ev:
			return true
		case <-done:
			return false
		}
	}
	go func() {
		var partial []byte
		buf := make([]byte, 4096)
		for {
			n, err := stdin.Read(buf)
			partial = append(partial, buf[:n]...)
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				line := strings.TrimSuffix(string(partial[:i]), "\r")
				partial = partial[i+1:]
				if !send(typed{line: line}) {
					return
				}
			}
			if n > 0 || err == nil {
				continue
			}
			// The kernel hangs a terminal up before it sends SIGHUP, and
			// the signal reaches ctx asynchronously: tell a hangup from
			// Ctrl-D here, so that a closed window is never taken for it.
			hungUp := terminalHungUp(stdin)
			final := !tty || hungUp || !errors.Is(err, io.EOF)
			if len(partial) > 0 && !hungUp {
				// A last line without its newline; on a terminal, Ctrl-D
				// twice after some text: that text is the line.
				if !send(typed{line: string(partial)}) {
					return
				}
				partial = partial[:0]
				if !final {
					continue
				}
			}
			if !send(typed{eof: true, hangup: hungUp, final: final}) || final {
				return
			}
		}
	}()
	return ch
}

type shell struct {
	cs       *cliSession
	ctx      context.Context // ends on SIGTERM/SIGHUP
	cancel   context.CancelFunc
	intr     <-chan os.Signal
	pump     *chunkPump
	in       <-chan typed // nil after a final event
	out      *termWriter
	stderr   io.Writer
	stdinTTY bool
	// running: the last command returned control while still running
	// (OpenHands' no-change or hard timeout); the next line is its input.
	running bool
	// lastAction: the id of the last action answered; chunks of it and of
	// earlier ones were all shown before its observation.
	lastAction int64
	// typeahead: what was typed while a command ran, in order; it goes to
	// that command if it still runs, else it is the next command line.
	typeahead []typed
}

func (sh *shell) loop(runtime string) int {
	head := fmt.Sprintf("corral shell: session %s, %s runtime", sh.cs.sid, runtime)
	if info, err := sh.cs.eng.Get(sh.ctx, sh.cs.sid); err == nil && info.Workspace != "" {
		head += ", workspace " + info.Workspace // a container's is inside it
	}
	sh.out.note(head + "\nCtrl-C interrupts the running command; Ctrl-D at an empty prompt or \"exit\" ends the session.")
	for {
		if sh.ctx.Err() != nil { // SIGTERM/SIGHUP while a command ran
			sh.out.newline()
			return exitInterrupt
		}
		ev, ok := sh.next()
		if !ok {
			return exitInterrupt
		}
		var act *eventbus.Event
		switch {
		case ev.hangup:
			return exitInterrupt // the terminal was closed: SIGHUP
		case ev.eof && (!sh.running || !sh.stdinTTY):
			sh.out.newline()
			return exitOK
		case ev.eof:
			act = shellAction("C-d", true) // Ctrl-D goes to the command, as in a terminal
		case !sh.running && strings.TrimSpace(ev.line) == "exit":
			sh.out.newline()
			return exitOK
		case !sh.running && strings.TrimSpace(ev.line) == "":
			continue
		default:
			// A running command gets the line as input (an empty one: wait
			// for more output, as OpenHands' empty command does).
			act = shellAction(ev.line, sh.running)
		}
		if code, done := sh.run(act); done {
			return code
		}
	}
}

// next returns what to do next: the first typed-ahead event, or, after a
// prompt, a line, an EOF or a Ctrl-C. ok is false when ctx ended.
func (sh *shell) next() (typed, bool) {
	prompt := "$ "
	if sh.running {
		prompt = "input> "
	}
	if len(sh.typeahead) > 0 {
		ev := sh.typeahead[0]
		sh.typeahead = sh.typeahead[1:]
		sh.out.prompt(prompt)
		if !ev.eof {
			sh.out.output([]byte(ev.line + "\n")) // the transcript shows what ran
		}
		return ev, true
	}
	for {
		sh.out.prompt(prompt)
		select {
		case <-sh.ctx.Done():
			sh.out.newline()
			return typed{}, false
		case <-sh.intr:
			if sh.running {
				// The command returned control but runs on: C-c is
				// OpenHands' way to interrupt it.
				sh.out.newline()
				return typed{line: "C-c"}, true
			}
			// At an idle prompt the terminal already dropped the line
			// typed so far (and echoed ^C): start a new one.
			if !sh.stdinTTY {
				sh.out.output([]byte("^C"))
			}
			sh.out.newline()
			continue
		case ev := <-sh.in:
			if ev.final {
				sh.in = nil
			}
			switch {
			case ev.eof:
			case sh.stdinTTY:
				sh.out.bol = true // the terminal echoed the line and its newline
			default:
				sh.out.output([]byte(ev.line + "\n")) // the transcript shows what ran
			}
			return ev, true
		}
	}
}

// runAction is a run action typed at the shell.
func shellAction(command string, isInput bool) *eventbus.Event {
	return eventbus.NewAction(eventbus.SourceUser, &eventbus.CmdRunAction{Command: command, IsInput: isInput, SecurityRisk: eventbus.RiskUnknown})
}

// run submits act, streams its output and prints how it ended; done = true
// with an exit code when the shell must end.
func (sh *shell) run(act *eventbus.Event) (code int, done bool) {
	obs, live, ctrlC, err := sh.await(act)
	if err != nil {
		return sh.failed(err)
	}
	sh.finish(obs, live)
	if ctrlC && sh.running {
		// Ctrl-C came before the command started (the engine interrupts
		// only a started one), or it could not be sent at once: the
		// command returned control still running; interrupt it now, as an
		// OpenHands agent would.
		obs, live, _, err = sh.await(shellAction("C-c", true))
		if err != nil {
			return sh.failed(err)
		}
		sh.finish(obs, live)
	}
	return 0, false
}

// interrupt sends Ctrl-C to the running command now, past the session's
// action queue (Engine.Interrupt); the command's observation then arrives
// with exit code 130. The call is bounded: an agent that does not answer
// must not freeze the shell.
func (sh *shell) interrupt() {
	ctx, cancel := context.WithTimeout(sh.ctx, interruptTimeout)
	defer cancel()
	err := sh.cs.eng.Interrupt(ctx, sh.cs.sid)
	switch {
	case err == nil, sh.ctx.Err() != nil:
	case errors.Is(err, actors.ErrNotSupported):
		sh.out.note("[this sandbox's agent cannot interrupt a command at once: C-c is sent when the command returns control]")
	default:
		sh.out.note(fmt.Sprintf("[could not interrupt the command: %v; C-c is sent when it returns control]", err))
	}
}

// interruptTimeout bounds one Interrupt call; the agent answers at once.
const interruptTimeout = 10 * time.Second

func (sh *shell) failed(err error) (int, bool) {
	sh.out.newline()
	if sh.ctx.Err() != nil {
		return exitInterrupt, true
	}
	fmt.Fprintf(sh.stderr, "corral shell: %v\n", err)
	return exitFailed, true
}

// await runs act, showing its output as it comes, until its observation
// arrives. Meanwhile typed lines are kept (typeahead) and a Ctrl-C is
// reported (ctrlC).
func (sh *shell) await(act *eventbus.Event) (obs *eventbus.Event, live *liveOutput, ctrlC bool, err error) {
	type result struct {
		id  int64
		obs *eventbus.Event
		err error
	}
	// The observation comes back on the engine's reply (Engine.Run); the
	// goroutine ends with the run, which ends with sh.ctx at the latest.
	done := make(chan result, 1)
	go func() {
		id, obs, err := sh.cs.eng.Run(sh.ctx, sh.cs.sid, act)
		if err == nil && obs == nil {
			err = fmt.Errorf("session %s: the %s action got no observation", sh.cs.sid, act.Type())
		}
		done <- result{id, obs, err}
	}()
	live = &liveOutput{}
	for {
		select {
		case <-sh.pump.ready:
			// A bounded batch at a time: a Ctrl-C is seen between
			// batches even when the terminal is slow.
			for _, c := range sh.pump.take(64 << 10) {
				sh.show(live, c)
			}
		case <-sh.intr:
			sh.typeahead = nil // the terminal dropped its typed-ahead input too
			sh.pump.discard()  // and its pending output
			ctrlC = true
			if sh.stdinTTY {
				sh.out.bol = false // it echoed ^C
			}
			sh.interrupt()
		case ev := <-sh.in:
			if ev.final {
				sh.in = nil
			}
			if ev.hangup {
				sh.cancel() // the run ends with ctx; so does the shell
			}
			sh.typeahead = append(sh.typeahead, ev)
		case r := <-done:
			if r.err != nil {
				return nil, nil, ctrlC, r.err
			}
			sh.pump.sync()
			for _, c := range sh.pump.take(0) {
				sh.show(live, c)
			}
			sh.lastAction = r.id
			return r.obs, live, ctrlC, nil
		}
	}
}

// show prints a chunk of the running action's output. Chunks of actions
// already answered are late copies of output shown before; a gap in the
// sequence numbers is output dropped because the terminal fell far behind
// the command (chunkPump's backlog was full) or a Ctrl-C dropped it: it is
// marked where it happened, and finish shows the end of the output if
// that was dropped.
func (sh *shell) show(live *liveOutput, c actors.Chunk) {
	if c.ActionID <= sh.lastAction {
		return
	}
	if c.ActionID != live.action {
		live.action, live.seq = c.ActionID, 0
	}
	if c.Seq <= live.seq {
		return
	}
	if lost := c.Seq - live.seq - 1; lost > 0 {
		live.lost += lost
		sh.out.note(fmt.Sprintf("[... %d piece(s) of live output skipped: the terminal fell behind, or Ctrl-C dropped them ...]", lost))
	}
	live.seq = c.Seq
	live.keep(c.Data)
	sh.out.output(c.Data)
}

// finish prints what the observation adds to the output already shown
// (normally nothing), then OpenHands' note to the agent: the suffix with
// the exit code, or the error.
func (sh *shell) finish(obs *eventbus.Event, live *liveOutput) {
	run, ok := obs.Observation.(*eventbus.CmdOutputObservation)
	if !ok {
		sh.out.note(strings.TrimSpace(obs.Content))
		return
	}
	if rest, why := live.unshown(obs.Content); rest != "" {
		if why != "" {
			sh.out.note(why)
		}
		sh.out.output([]byte(rest + "\n"))
	}
	md := run.Metadata
	// Still running: it returned control at a timeout, or refused a new
	// command. OpenHands' "no previous command" notices carry exit code
	// -1 too, but no suffix.
	sh.running = md.ExitCode == -1 && md.Suffix != ""
	note := strings.TrimSpace(md.Suffix)
	if note == "" {
		note = fmt.Sprintf("[exit code %d]", md.ExitCode)
	}
	sh.out.note(note)
}

// termWriter writes the shell's transcript: commands' output as it comes,
// and the shell's own lines (notes, dimmed on a terminal) each starting on
// a line of its own. Write errors are ignored: a closed terminal ends the
// shell through SIGHUP.
type termWriter struct {
	w   io.Writer
	dim bool
	bol bool // the cursor is at the start of a line
}

func (t *termWriter) output(p []byte) {
	if len(p) == 0 {
		return
	}
	_, _ = t.w.Write(p)
	t.bol = p[len(p)-1] == '\n'
}

// newline ends the current line, if one was begun.
func (t *termWriter) newline() {
	if !t.bol {
		t.output([]byte("\n"))
	}
}

// note prints the shell's own text on lines of its own.
func (t *termWriter) note(s string) {
	t.newline()
	if t.dim {
		s = "\x1b[2m" + s + "\x1b[0m"
	}
	t.output([]byte(s + "\n"))
}

// prompt starts a new line with p.
func (t *termWriter) prompt(p string) {
	t.newline()
	t.output([]byte(p))
}

// stdinIsTerminal reports whether r is a file open on a terminal.
func stdinIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isTerminal(f)
}
