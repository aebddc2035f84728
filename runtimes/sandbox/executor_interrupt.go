package sandbox

import (
	"errors"
	"fmt"
	"time"
)

// Interrupt interrupts what runs in the sandbox now, out of band: it does
// not wait for the action lock, so the action in flight is interrupted,
// not queued behind. The command of the main bash session (and of any
// is_static shell) gets Ctrl-C (BashSession.Interrupt); a running Python
// cell gets SIGINT, which ends it with a KeyboardInterrupt traceback in its
// output (Jupyter's interrupt), its interpreter and variables kept; a
// browse action is cancelled, the browser kept. The
// interrupted action's observation follows as usual from Execute.
//
// It reports whether anything was running; with nothing running it does
// nothing and returns false, nil. An interrupt that reaches the sandbox
// while a Python interpreter is being started for a cell is lost (the cell
// starts afterwards).
func (x *Executor) Interrupt() (bool, error) {
	if x.isClosed() {
		return false, errors.New("the sandbox executor is closed; nothing to interrupt")
	}
	var errs []error
	hit := x.interruptBrowser()
	if x.inCell.Load() && x.pyMu.TryLock() {
		// TryLock: pyMu is held while an interpreter starts (up to 30 s);
		// then no cell code runs yet and there is nothing to interrupt.
		k := x.py
		x.pyMu.Unlock()
		if k.interruptIfAlive() {
			hit = true
			k.chaseInterrupt()
		}
	}
	shells := []shell{x.main}
	x.closeMu.Lock()
	for s := range x.statics {
		shells = append(shells, s)
	}
	x.closeMu.Unlock()
	for _, s := range shells {
		if s == nil {
			continue
		}
		ok, err := s.Interrupt()
		hit = hit || ok
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return hit, fmt.Errorf("interrupt: %w", err)
	}
	return hit, nil
}

// Python may take a SIGINT and still not stop: one that lands after the
// interpreter's last check for signals and before a blocking call (the
// sleep in `print(...); time.sleep(100)`) is handled only when that call
// returns. Like a person pressing Ctrl-C again, the chase sends SIGINT
// again while the same cell still runs.
const (
	pythonChaseEvery = 300 * time.Millisecond
	pythonChaseTimes = 5
)

// chaseInterrupt re-sends SIGINT while the cell that was interrupted is
// still running, up to pythonChaseTimes. Its goroutine ends at the next
// tick after that cell ends, and at once when the interpreter exits (close
// kills it), so it never outlives the kernel.
func (k *pythonKernel) chaseInterrupt() {
	cell := k.running.Load()
	if cell == 0 {
		return
	}
	go func() {
		tick := time.NewTicker(pythonChaseEvery)
		defer tick.Stop()
		for range pythonChaseTimes {
			select {
			case <-k.waited:
				return
			case <-tick.C:
			}
			if k.running.Load() != cell {
				return
			}
			k.interrupt()
		}
	}()
}

// interruptIfAlive sends SIGINT to a kernel whose process has not been
// reaped (a reaped pid may belong to another process by now).
func (k *pythonKernel) interruptIfAlive() bool {
	if k == nil || k.cmd == nil || k.cmd.Process == nil {
		return false
	}
	select {
	case <-k.waited:
		return false
	default:
	}
	k.interrupt()
	return true
}
