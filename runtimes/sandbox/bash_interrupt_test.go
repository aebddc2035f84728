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
		{"Pipeline", "echo started; sleep 100 | cat"},
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

// A program that handles SIGINT and goes on gets one interrupt, as one
// Ctrl-C at a terminal gives it: it is not signalled again.
func TestInterruptSignalsAProgramThatHandlesItOnce(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	cmd := `trap 'echo caught; n=$((n+1))' INT; n=0; echo started; while [ "$n" -lt 2 ]; do read -t 0.05 x; done; echo twice`
	// The handler runs in a child bash so that the trap is the program's.
	r := startRun(s, &eventbus.CmdRunAction{Command: "bash -c " + shellQuote(cmd) + "; echo exited", Blocking: true}, "started")
	<-r.seen
	if running, err := s.Interrupt(); err != nil || !running {
		t.Fatalf("Interrupt = %v, %v", running, err)
	}
	waitFor(t, r, "caught")
	// The interrupt's chase ends (here at its deadline: the program keeps
	// running); had it signalled the program again, "twice" would be out.
	s.chase.Wait()
	if strings.Contains(r.live(), "twice") {
		t.Fatalf("the program was interrupted twice by one Interrupt: %q", r.live())
	}
	if running, err := s.Interrupt(); err != nil || !running {
		t.Fatalf("second Interrupt = %v, %v", running, err)
	}
	ev := <-r.obs
	if !strings.Contains(ev.Content, "caught\ncaught\ntwice\nexited") {
		t.Errorf("content %q, want two catches then the end", ev.Content)
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
