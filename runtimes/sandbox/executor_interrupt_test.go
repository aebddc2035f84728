package sandbox

import (
	"context"
	"strings"
	"sync"
	"testing"

	"corral/eventbus"
)

// execLive runs a on x on a goroutine; the returned channel closes once
// the live output contains want, obs receives the observation.
func execLive(x *Executor, a eventbus.Action, timeout float64, want string) (seen <-chan struct{}, obs <-chan *eventbus.Event) {
	s, o := make(chan struct{}), make(chan *eventbus.Event, 1)
	var mu sync.Mutex
	var out strings.Builder
	var once sync.Once
	ev := xAct(9, a)
	ev.Timeout = &timeout
	go func() {
		o <- x.Execute(context.Background(), ev, func(p []byte) {
			mu.Lock()
			defer mu.Unlock()
			out.Write(p)
			if strings.Contains(out.String(), want) {
				once.Do(func() { close(s) })
			}
		})
	}()
	return s, o
}

func TestExecutorInterruptReachesTheRunningCommand(t *testing.T) {
	x, _ := newTestExecutor(t)
	seen, obs := execLive(x, &eventbus.CmdRunAction{Command: "echo started; sleep 100", Blocking: true}, 60, "started")
	<-seen
	if running, err := x.Interrupt(); err != nil || !running {
		t.Fatalf("Interrupt = %v, %v; want true, nil", running, err)
	}
	ev := <-obs
	o, ok := ev.Observation.(*eventbus.CmdOutputObservation)
	if !ok || o.Metadata.ExitCode != 130 || o.Metadata.Suffix != ctrlCSuffix(130) {
		t.Fatalf("got %s %q %+v; want exit 130 with the C-c suffix", ev.Type(), ev.Content, ev.Observation)
	}
	if ev.Cause == nil || *ev.Cause != 9 {
		t.Errorf("the interrupted action's observation has cause %v, want 9", ev.Cause)
	}
	if running, err := x.Interrupt(); err != nil || running {
		t.Errorf("Interrupt with nothing running = %v, %v; want false, nil", running, err)
	}
	xRun(t, x, "echo usable")
}

// A cell gets Jupyter's interrupt: KeyboardInterrupt, its traceback in the
// output, and the interpreter (with its variables) goes on.
func TestExecutorInterruptStopsAPythonCell(t *testing.T) {
	x, _ := newTestExecutor(t)
	cell(t, x, "kept = 41", 30, false)
	code := "import time\nprint('started', flush=True)\ntime.sleep(100)"
	seen, obs := execLive(x, &eventbus.IPythonRunCellAction{Code: code}, 60, "started")
	<-seen
	if running, err := x.Interrupt(); err != nil || !running {
		t.Fatalf("Interrupt = %v, %v; want true, nil", running, err)
	}
	ev := <-obs
	if _, ok := ev.Observation.(*eventbus.IPythonRunCellObservation); !ok || !strings.Contains(ev.Content, "KeyboardInterrupt") || !strings.HasPrefix(ev.Content, "started") {
		t.Fatalf("got %s %q; want the cell's output and a KeyboardInterrupt traceback", ev.Type(), ev.Content)
	}
	if got := cell(t, x, "kept + 1", 30, false); got != "42" {
		t.Errorf("after the interrupt: %q, want 42 (variables kept)", got)
	}
}

// A SIGINT that lands just before a blocking call is handled only when the
// call returns (CPython's signal race, widened on a loaded machine). The
// cell here swallows the first SIGINT the same way; the interrupt's chase
// sends another, which stops it.
func TestExecutorInterruptChasesACellThatMissedTheFirstSIGINT(t *testing.T) {
	x, _ := newTestExecutor(t)
	code := strings.Join([]string{
		"import signal, time",
		"driver = signal.getsignal(signal.SIGINT)",
		"def swallow(sig, frame):",
		"    signal.signal(signal.SIGINT, driver)",
		"signal.signal(signal.SIGINT, swallow)",
		"print('started', flush=True)",
		"time.sleep(100)",
	}, "\n")
	seen, obs := execLive(x, &eventbus.IPythonRunCellAction{Code: code}, 60, "started")
	<-seen
	if running, err := x.Interrupt(); err != nil || !running {
		t.Fatalf("Interrupt = %v, %v; want true, nil", running, err)
	}
	ev := <-obs
	if !strings.Contains(ev.Content, "KeyboardInterrupt") {
		t.Fatalf("got %s %q; want a KeyboardInterrupt from the chase's second SIGINT", ev.Type(), ev.Content)
	}
}

func TestExecutorInterruptAfterCloseIsAnError(t *testing.T) {
	x, _ := newTestExecutor(t)
	x.Close()
	if _, err := x.Interrupt(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Interrupt after Close: %v, want an error saying the executor is closed", err)
	}
}
