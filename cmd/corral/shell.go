package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"corral/eventbus"
)

const shellUsage = `usage: corral shell [--runtime local|cli|docker] [--workspace DIR] [--config FILE] [-v]

Starts one session and runs each line you type as a command in its bash,
printing its output. Empty line: send nothing; "exit" or EOF
(Ctrl-D) ends the session. Ctrl-C does not end it: while a command runs
(or after it returned control still running) Ctrl-C sends it C-c, as an
OpenHands agent would; at an idle prompt it gives a new prompt. SIGTERM
and SIGHUP (the terminal was closed) end the session and release its
sandbox.

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
	sh := &shell{cs: cs, ctx: sctx, intr: intr, stdout: stdout, stderr: stderr}
	return sh.loop(stdin, o.runtime)
}

type shell struct {
	cs             *cliSession
	ctx            context.Context // ends on SIGTERM/SIGHUP
	intr           <-chan os.Signal
	stdout, stderr io.Writer
	// running: the last command returned control while still running
	// (OpenHands exit code -1); Ctrl-C at the prompt sends it C-c.
	running bool
}

func (sh *shell) loop(stdin io.Reader, runtime string) int {
	ctx := sh.ctx
	info, _ := sh.cs.eng.Get(ctx, sh.cs.sid)
	fmt.Fprintf(sh.stdout, "corral shell: session %s, %s runtime, workspace %s\n", sh.cs.sid, runtime, info.Workspace)
	// lines is closed only when stdin ends (never because ctx ended: a
	// closed lines means EOF). hungUp tells, once lines is closed, whether
	// stdin ended because its terminal went away: the kernel hangs the
	// terminal up before it sends SIGHUP, and the signal reaches ctx
	// asynchronously, so the EOF can come first; that is a hangup, not
	// Ctrl-D.
	lines := make(chan string)
	var hungUp bool
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		hungUp = terminalHungUp(stdin)
		close(lines)
	}()
	for {
		if ctx.Err() != nil { // SIGTERM/SIGHUP while a command ran
			fmt.Fprintln(sh.stdout)
			return exitInterrupt
		}
		fmt.Fprint(sh.stdout, "$ ")
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			fmt.Fprintln(sh.stdout)
			return exitInterrupt
		case <-sh.intr:
			fmt.Fprintln(sh.stdout, "^C")
			if !sh.running {
				continue
			}
			if code, done := sh.run(interruptAction()); done {
				return code
			}
			continue
		case line, ok = <-lines:
		}
		if !ok && (hungUp || ctx.Err() != nil) {
			return exitInterrupt // the terminal was closed: SIGHUP
		}
		if !ok || strings.TrimSpace(line) == "exit" {
			fmt.Fprintln(sh.stdout)
			return exitOK
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if code, done := sh.run(eventbus.NewAction(eventbus.SourceUser, &eventbus.CmdRunAction{Command: line, SecurityRisk: eventbus.RiskUnknown})); done {
			return code
		}
	}
}

// interruptAction is OpenHands' way to interrupt a running command.
func interruptAction() *eventbus.Event {
	return eventbus.NewAction(eventbus.SourceUser, &eventbus.CmdRunAction{Command: "C-c", IsInput: true, SecurityRisk: eventbus.RiskUnknown})
}

// run submits act, prints its observation and returns done = true with an
// exit code when the shell must end. The session runs actions in order, so
// a Ctrl-C while it waits takes effect when the command returns control: if
// it is still running then (no new output for the no-change timeout), run
// sends it C-c and prints that observation too.
func (sh *shell) run(act *eventbus.Event) (code int, done bool) {
	obs, interrupted, err := sh.wait(act, true)
	if err != nil {
		return sh.failed(err)
	}
	sh.print(obs)
	if !interrupted || !sh.running {
		return 0, false // the command had ended anyway
	}
	cobs, _, err := sh.wait(interruptAction(), false)
	if err != nil {
		return sh.failed(err)
	}
	sh.print(cobs)
	return 0, false
}

func (sh *shell) print(obs *eventbus.Event) {
	sh.running = false
	if run, ok := obs.Observation.(*eventbus.CmdOutputObservation); ok {
		sh.running = run.Metadata.ExitCode == -1
	}
	fmt.Fprintln(sh.stdout, obs.Content)
}

func (sh *shell) failed(err error) (int, bool) {
	if sh.ctx.Err() != nil {
		return exitInterrupt, true
	}
	fmt.Fprintf(sh.stderr, "corral shell: %v\n", err)
	return exitFailed, true
}

// wait returns the observation answering action id. With watchIntr, a
// Ctrl-C meanwhile is reported (interrupted) once, and waiting goes on.
func (sh *shell) wait(act *eventbus.Event, watchIntr bool) (obs *eventbus.Event, interrupted bool, err error) {
	type result struct {
		obs *eventbus.Event
		err error
	}
	// The observation comes back on the engine's reply (Engine.Run); the
	// goroutine ends with the run, which ends with sh.ctx at the latest.
	done := make(chan result, 1)
	go func() {
		_, obs, err := sh.cs.eng.Run(sh.ctx, sh.cs.sid, act)
		if err == nil && obs == nil {
			err = fmt.Errorf("session %s: the %s action got no observation", sh.cs.sid, act.Type())
		}
		done <- result{obs, err}
	}()
	intr := sh.intr
	if !watchIntr {
		intr = nil
	}
	for {
		select {
		case <-intr:
			fmt.Fprintln(sh.stdout, "^C")
			interrupted, intr = true, nil
		case r := <-done:
			return r.obs, interrupted, r.err
		}
	}
}
