package sandbox

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"corral/eventbus"
)

// ctrlCSuffix is the suffix of a command that ended by a sent C-c.
func ctrlCSuffix(code int) string {
	return "\n[The command completed with exit code " + strconv.Itoa(code) + ". CTRL+C was sent.]"
}

// liveRun is a Run in progress whose live output is watched.
type liveRun struct {
	mu   sync.Mutex
	out  strings.Builder
	seen chan struct{} // closed once the output holds want
	want string
	once sync.Once
	obs  chan *eventbus.Event
}

// startRun runs a in s on a goroutine; seen closes once the live output
// contains want. The hard timeout (60 s) only bounds a broken interrupt:
// the test then fails on the exit code, it never waits on time.
func startRun(s *BashSession, a *eventbus.CmdRunAction, want string) *liveRun {
	r := &liveRun{seen: make(chan struct{}), want: want, obs: make(chan *eventbus.Event, 1)}
	timeout := 60.0
	go func() {
		r.obs <- s.Run(context.Background(), a, &timeout, func(p []byte) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.out.Write(p)
			if strings.Contains(r.out.String(), r.want) {
				r.once.Do(func() { close(r.seen) })
			}
		})
	}()
	return r
}

func (r *liveRun) live() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// Interrupt reaches the foreground program at once, whatever bash is doing
// when it lands: the race between bash's own builtins and the next child's
// fork/exec is the case a loop hits every time.
func TestInterruptEndsTheRunningCommandWithCtrlCSemantics(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, command string }{
		{"SleepAfterABuiltin", "echo started; sleep 100"},
		{"BusyLoopWithSleeps", "echo started; while true; do echo tick; sleep 0.5; done"},
		{"LoopWhoseBodyPrintsTheMarker", "while true; do echo started; sleep 0.5; done"},
		{"PureBashLoop", "echo started; while true; do :; done"},
		{"Pipeline", "echo started; cat /dev/zero | sleep 100"},
		{"Subshell", "echo started; (sleep 100)"},
		{"NestedBash", `echo started; bash -c "sleep 100"`},
		{"ReadWaitingForInput", "echo started; read x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := btSession(t, BashOptions{})
			r := startRun(s, &eventbus.CmdRunAction{Command: tc.command, Blocking: true}, "started")
			<-r.seen
			running, err := s.Interrupt()
			if err != nil || !running {
				t.Fatalf("Interrupt = %v, %v; want true, nil while %q runs", running, err, tc.command)
			}
			ev := <-r.obs
			o, ok := ev.Observation.(*eventbus.CmdOutputObservation)
			if !ok {
				t.Fatalf("got %s %q, want run output", ev.Type(), ev.Content)
			}
			if o.Metadata.ExitCode != 130 || o.Metadata.Suffix != ctrlCSuffix(130) {
				t.Errorf("exit %d suffix %q; want 130 %q", o.Metadata.ExitCode, o.Metadata.Suffix, ctrlCSuffix(130))
			}
			if o.Command != tc.command {
				t.Errorf("observation command %q, want %q", o.Command, tc.command)
			}
			after := btMustRun(t, s, btCmd("echo usable"), 30)
			if after.content != "usable" || after.obs.Metadata.Suffix != btCompleted(0) {
				t.Errorf("next command: %q %q; want the shell usable with a plain suffix", after.content, after.obs.Metadata.Suffix)
			}
		})
	}
}

func TestInterruptWithNothingRunningIsANoOp(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	btMustRun(t, s, btCmd("echo warm"), 30)
	running, err := s.Interrupt()
	if err != nil || running {
		t.Fatalf("Interrupt at the prompt = %v, %v; want false, nil", running, err)
	}
	// No Ctrl-C reached bash: no stray prompt, the next command is plain.
	r := btMustRun(t, s, btCmd("echo next"), 30)
	if r.content != "next" || r.obs.Metadata.Suffix != btCompleted(0) {
		t.Errorf("after a no-op interrupt: %q %q", r.content, r.obs.Metadata.Suffix)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if running, err := s.Interrupt(); err != nil || running {
		t.Errorf("Interrupt after Close = %v, %v; want false, nil", running, err)
	}
}

// A command left running by a timed-out Run is interrupted without a Run in
// flight; the next (empty) Run collects its end with the C-c suffix, and a
// new command afterwards has its own plain suffix.
func TestInterruptAfterTimeoutIsCollectedByTheNextRun(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	r := btMustRun(t, s, btCmd("sleep 100"), 1)
	if r.obs.Metadata.ExitCode != -1 {
		t.Fatalf("sleep 100 with timeout 1: exit %d, want -1 (still running)", r.obs.Metadata.ExitCode)
	}
	if running, err := s.Interrupt(); err != nil || !running {
		t.Fatalf("Interrupt of the timed-out command = %v, %v; want true, nil", running, err)
	}
	r = btMustRun(t, s, &eventbus.CmdRunAction{Command: "", Blocking: true}, 60)
	if r.obs.Metadata.ExitCode != 130 || r.obs.Metadata.Suffix != ctrlCSuffix(130) {
		t.Errorf("collecting the interrupted command: exit %d suffix %q", r.obs.Metadata.ExitCode, r.obs.Metadata.Suffix)
	}
	r = btMustRun(t, s, btCmd("true"), 30)
	if r.obs.Metadata.Suffix != btCompleted(0) {
		t.Errorf("a new command after the interrupt: suffix %q, want %q", r.obs.Metadata.Suffix, btCompleted(0))
	}
}

// A program that handles SIGINT and goes on is not flooded: one Interrupt
// gives it at most two SIGINTs (the second only if it is still in the
// foreground a moment later, as a person pressing Ctrl-C again), so a
// program that wants three is still running when the interrupt's chase
// ends, and the next Interrupt reaches it again.
func TestInterruptSignalsAProgramThatHandlesItAtMostTwice(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	cmd := `trap 'echo caught; n=$((n+1))' INT; n=0; echo started; while [ "$n" -lt 3 ]; do read -t 0.05 x; done; echo thrice`
	// The handler runs in a child bash so that the trap is the program's.
	r := startRun(s, &eventbus.CmdRunAction{Command: "bash -c " + shellQuote(cmd) + "; echo exited", Blocking: true}, "started")
	<-r.seen
	if running, err := s.Interrupt(); err != nil || !running {
		t.Fatalf("Interrupt = %v, %v", running, err)
	}
	waitFor(t, r, "caught")
	s.chase.Wait() // the interrupt's chase ends (at its deadline: the program keeps running)
	if n := strings.Count(r.live(), "caught"); n > 2 || strings.Contains(r.live(), "thrice") {
		t.Fatalf("one Interrupt signalled the program %d times: %q", n, r.live())
	}
	for strings.Count(r.live(), "caught") < 3 {
		if running, err := s.Interrupt(); err != nil || !running {
			t.Fatalf("next Interrupt = %v, %v", running, err)
		}
		// No trailing newline: live output holds a final one back until
		// more output shows it does not start a prompt.
		waitFor(t, r, strings.TrimSuffix(strings.Repeat("caught\n", strings.Count(r.live(), "caught")+1), "\n"))
	}
	ev := <-r.obs
	if !strings.Contains(ev.Content, "caught\ncaught\ncaught\nthrice\nexited") {
		t.Errorf("content %q, want three catches then the end", ev.Content)
	}
}

// waitFor blocks until r's live output contains want (or the Run ended).
func waitFor(t *testing.T, r *liveRun, want string) {
	t.Helper()
	r.mu.Lock()
	r.want, r.seen, r.once = want, make(chan struct{}), sync.Once{}
	if strings.Contains(r.out.String(), want) {
		r.once.Do(func() { close(r.seen) })
	}
	seen := r.seen
	r.mu.Unlock()
	select {
	case <-seen:
	case ev := <-r.obs:
		r.obs <- ev
		t.Fatalf("the command ended before printing %q: %q", want, ev.Content)
	}
}

// Interrupts back to back in parallel sessions: each one ends its own
// command (never the next one, never by eating the next command's text),
// whatever the machine's load does to the timing.
func TestInterruptRepeatedlyInParallelSessions(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for range 2 {
		s := btSession(t, BashOptions{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				r := startRun(s, &eventbus.CmdRunAction{Command: "echo started; sleep 100", Blocking: true}, "started")
				select {
				case <-r.seen:
				case ev := <-r.obs:
					t.Errorf("round %d: the command ended before it printed: %q", i, ev.Content)
					return
				}
				if running, err := s.Interrupt(); err != nil || !running {
					t.Errorf("round %d: Interrupt = %v, %v", i, running, err)
					return
				}
				ev := <-r.obs
				if o, ok := ev.Observation.(*eventbus.CmdOutputObservation); !ok || o.Metadata.ExitCode != 130 || ev.Content != "started" {
					t.Errorf("round %d: %s %q %+v; want exit 130 after \"started\"", i, ev.Type(), ev.Content, ev.Observation)
					return
				}
			}
		}()
	}
	wg.Wait()
}
