package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"corral/actors"
	"corral/eventbus"
)

const execUsage = `usage: corral exec [--runtime local|cli|docker|kubernetes|remote] [--image IMAGE] [--workspace DIR] [--config FILE] [--file ACTIONS.json] [--mcp-config MCP.json] [--corral-events] [-v]

Runs OpenHands action events in one fresh session, in order, and writes every
OpenHands event of the session (actions and observations) to stdout as one
JSON line each, in id order; every line decodes with OpenHands'
event_from_dict. --corral-events adds Corral's own events (runtime_status
observations), which OpenHands cannot decode; ids then have no gaps.
Actions are read one JSON object per line from stdin, or as a JSON array
from --file. A malformed line is reported on stderr with its line number and
skipped; the session goes on.

exit codes:
  0  every runnable action got its observation
  1  some action got no observation (the session failed while running)
  2  bad flags, configuration or --file
  3  the sandbox did not start
  4  every action ran, but malformed input lines were skipped
  130 interrupted

flags:
`

func cliFlags(name, text string, stderr io.Writer, o *cliOpts) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.runtime, "runtime", "local", "sandbox backend: local (agent subprocess), cli (in-process), docker (a container), kubernetes (a pod; [runtime.kubernetes] in --config, else $KUBECONFIG) or remote ([runtime.remote] hosts in --config)")
	fs.StringVar(&o.image, "image", "", "image of the sandbox, docker and kubernetes (default [runtime.docker] runtime_container_image, corral-sandbox:latest, built by corral image build; [runtime.kubernetes] image, corral-sandbox:minimal)")
	fs.StringVar(&o.workspace, "workspace", "", "workspace directory (default: a temporary one, removed afterwards)")
	fs.StringVar(&o.config, "config", "", "TOML configuration file ([engine], [runtime] sections as for serve)")
	fs.BoolVar(&o.verbose, "v", false, "log engine details to stderr")
	fs.Usage = func() {
		fmt.Fprint(stderr, text)
		fs.PrintDefaults()
	}
	return fs
}

// inputEvent is one parsed input action (or the error of its line).
type inputEvent struct {
	line int
	ev   *eventbus.Event
	err  error
}

func runExec(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o cliOpts
	var file string
	fs := cliFlags("corral exec", execUsage, stderr, &o)
	fs.StringVar(&file, "file", "", "read actions from this JSON array file instead of stdin")
	fs.StringVar(&o.mcpConfig, "mcp-config", "", "JSON file with the session's MCP servers (OpenHands' mcp_config: sse_servers, shttp_servers, stdio_servers) for call_tool_mcp; replaces [mcp] of --config")
	var corralEvents bool
	fs.BoolVar(&corralEvents, "corral-events", false, "also print Corral's own events (runtime_status), which are not OpenHands JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "corral exec: unexpected argument %q (actions come from stdin or --file)\n", fs.Arg(0))
		return exitUsage
	}
	var inputs <-chan inputEvent
	if file != "" {
		evs, err := readEventFile(file)
		if err != nil {
			fmt.Fprintf(stderr, "corral exec: %v\n", err)
			return exitUsage
		}
		ch := make(chan inputEvent, len(evs))
		for _, in := range evs {
			ch <- in
		}
		close(ch)
		inputs = ch
	} else {
		inputs = readEventLines(ctx, stdin)
	}

	cs, code, err := openCLISession(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "corral exec: %v\n", err)
		return code
	}
	defer func() {
		if err := cs.close(); err != nil {
			fmt.Fprintf(stderr, "corral exec: shutting down: %v\n", err)
		}
	}()
	return execSession(ctx, cs, inputs, stdout, stderr, corralEvents)
}

// execSession submits the inputs in order, prints the session's events
// (Corral's own only if corralEvents) and returns the exit code.
func execSession(ctx context.Context, cs *cliSession, inputs <-chan inputEvent, stdout, stderr io.Writer, corralEvents bool) int {
	out := bufio.NewWriter(stdout)
	emit := func(it *eventbus.Item) {
		if corralEvents || !it.IsCorralExtension() {
			out.Write(it.JSON)
			out.WriteByte('\n')
		}
	}
	printed := make(chan int64, 1)
	sub, err := cs.eng.Subscribe(context.WithoutCancel(ctx), cs.sid, 0)
	if err != nil {
		fmt.Fprintf(stderr, "corral exec: %v\n", err)
		return exitFailed
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // prints events as they are stored, in id order
		defer wg.Done()
		last := int64(-1)
		for it := range sub.C() {
			emit(it)
			if len(sub.C()) == 0 {
				out.Flush()
			}
			last = it.ID
		}
		out.Flush()
		printed <- last
	}()

	malformed := 0
	var waits []int64
	failed := false
	interrupted := false
loop:
	for {
		select {
		case <-ctx.Done():
			interrupted = true
			break loop
		case in, ok := <-inputs:
			if !ok {
				break loop
			}
			if in.err != nil {
				malformed++
				fmt.Fprintf(stderr, "corral exec: line %d: %v (skipped)\n", in.line, in.err)
				continue
			}
			if !in.ev.IsAction() {
				malformed++
				fmt.Fprintf(stderr, "corral exec: line %d: a %q observation, not an action (skipped)\n", in.line, in.ev.Type())
				continue
			}
			act := in.ev.Clone()
			act.ID, act.Cause = eventbus.InvalidID, nil
			// The session runs one action at a time anyway: running each
			// to its observation (on the engine's reply) loses nothing.
			if _, _, err := cs.eng.Run(ctx, cs.sid, act); err != nil {
				if ctx.Err() != nil {
					interrupted = true
					break loop
				}
				fmt.Fprintf(stderr, "corral exec: line %d: %v\n", in.line, err)
				failed = true
				break loop
			}
		}
	}
	// Stop records what is left (error observations for unanswered
	// actions, the final status) and closes the stream, which ends sub.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := cs.eng.Stop(stopCtx, cs.sid); err != nil {
		fmt.Fprintf(stderr, "corral exec: stopping the session: %v\n", err)
	}
	wg.Wait()
	last := <-printed
	if serr := sub.Err(); serr != nil && !errors.Is(serr, eventbus.ErrStreamClosed) {
		fmt.Fprintf(stderr, "corral exec: event subscription: %v; reading the rest from the store\n", serr)
	}
	// Whatever the subscription did not deliver (it may end before its
	// replay caught up), read from the store.
	if rest, err := cs.eng.History(stopCtx, cs.sid, last+1); err == nil {
		for _, it := range rest {
			emit(it)
		}
		out.Flush()
	} else {
		fmt.Fprintf(stderr, "corral exec: reading the stored events: %v\n", err)
		failed = true
	}
	if !failed && !interrupted {
		// Check every runnable action has its observation.
		items, err := cs.eng.History(stopCtx, cs.sid, 0)
		if err == nil {
			answered := map[int64]bool{}
			for _, it := range items {
				ev, err := it.Event()
				if err != nil || ev.IsAction() || ev.Cause == nil {
					continue
				}
				if eo, isErr := ev.Observation.(*eventbus.ErrorObservation); isErr && eo.ErrorID == actors.ErrIDSessionStopped {
					continue // answered only because the session stopped
				}
				answered[*ev.Cause] = true
			}
			for _, id := range waits {
				if !answered[id] {
					failed = true
				}
			}
		}
	}
	switch {
	case interrupted:
		return exitInterrupt
	case failed:
		return exitFailed
	case malformed > 0:
		return exitBadInput
	}
	return exitOK
}

// readEventLines parses stdin one JSON event per line as it arrives.
func readEventLines(ctx context.Context, r io.Reader) <-chan inputEvent {
	ch := make(chan inputEvent)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		n := 0
		for sc.Scan() {
			n++
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			ev, err := eventbus.Unmarshal([]byte(line))
			select {
			case ch <- inputEvent{line: n, ev: ev, err: err}:
			case <-ctx.Done():
				return
			}
		}
		if err := sc.Err(); err != nil {
			select {
			case ch <- inputEvent{line: n + 1, err: fmt.Errorf("reading stdin: %w", err)}:
			case <-ctx.Done():
			}
		}
	}()
	return ch
}

// readEventFile parses a JSON array of events; element i is reported as
// "line" i+1 (its position in the array).
func readEventFile(path string) ([]inputEvent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("%s is not a JSON array of events: %w", path, err)
	}
	out := make([]inputEvent, len(raws))
	for i, raw := range raws {
		ev, err := eventbus.Unmarshal(raw)
		if err != nil {
			err = fmt.Errorf("element %d of %s: %w", i+1, path, err)
		}
		out[i] = inputEvent{line: i + 1, ev: ev, err: err}
	}
	return out, nil
}
