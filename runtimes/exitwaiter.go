package runtimes

import "sync"

// ExitWaiter is the channel of one Backend.Wait call: it receives at most
// one Exit and is then closed, however many times and from wherever
// Finish is called (a die event, the caller's ctx, Destroy, Close).
// Backends keep their waiters in their own watcher; this is only the
// once-only delivery they all need.
type ExitWaiter struct {
	ch   chan Exit
	once sync.Once
	// Stop unregisters the callback that finishes the waiter when the
	// Wait call's ctx ends (context.AfterFunc's stop); called by Finish.
	// Set it before the waiter can be finished, or under the lock its
	// finishers hold.
	Stop func() bool
}

// NewExitWaiter returns a waiter whose channel has room for its one Exit,
// so Finish never blocks.
func NewExitWaiter() *ExitWaiter { return &ExitWaiter{ch: make(chan Exit, 1)} }

// C is the channel Wait returns.
func (w *ExitWaiter) C() <-chan Exit { return w.ch }

// Finish sends e (when not nil) and closes the channel; later calls do
// nothing.
func (w *ExitWaiter) Finish(e *Exit) {
	w.once.Do(func() {
		if w.Stop != nil {
			w.Stop()
		}
		if e != nil {
			w.ch <- *e
		}
		close(w.ch)
	})
}
