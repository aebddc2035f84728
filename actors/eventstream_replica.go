package actors

import (
	"errors"
	"fmt"
	"time"

	"corral/eventbus"
)

// What a session's writer does when its store copies every write to a
// replicated store (cluster mode, eventbus.WithReplica):
//
//   - eventbus.ErrFenced: another node took the session over. The writer
//     writes nothing more (every later job fails with the same error) and
//     tells the Session once (writerHooks.fenced), which stops at once.
//   - eventbus.ErrReplicaUnavailable: no quorum stored the write, so it was
//     not stored locally either (the store cuts it back). A submitted
//     action is refused (its caller retries); anything else (an
//     observation, a status, a record) was already promised and is retried
//     with backoff until the replica takes it, holding the writes queued
//     behind it, so nothing is lost and the order is kept. While it
//     retries, queued submits are refused at once and the Session hears
//     the store is down (writerHooks.replica), pausing its queue.

// writerHooks are the Session's callbacks; they only send it a message.
type writerHooks struct {
	fenced  func(err error)
	replica func(down bool, err error)
}

// Retry bounds for writes the replica refused for lack of quorum.
const (
	replicaRetryInitial = 100 * time.Millisecond
	replicaRetryMax     = 5 * time.Second
	// replicaRetriesClosing is how many attempts a write still gets once
	// the session is closing (stop, release, engine shutdown): a closing
	// session must end even when the quorum never comes back.
	replicaRetriesClosing = 8
)

func (w *streamWriter) setHooks(h writerHooks) {
	w.mu.Lock()
	w.hooks = h
	w.mu.Unlock()
}

// fenced returns the error that fenced the writer, if any.
func (w *streamWriter) fenced() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fencedErr
}

func (w *streamWriter) setFenced(err error) {
	w.mu.Lock()
	first := w.fencedErr == nil
	if first {
		w.fencedErr = err
	}
	h := w.hooks.fenced
	w.mu.Unlock()
	if first && h != nil {
		h(err)
	}
}

func (w *streamWriter) setDown(down bool, err error) {
	w.mu.Lock()
	changed := w.down != down
	w.down = down
	h := w.hooks.replica
	w.mu.Unlock()
	if changed && h != nil {
		h(down, err)
	}
}

// retry runs op (one append or record save) until it is not refused for
// lack of quorum. A submit (isSubmit) is never retried: its caller gets
// the error. It returns op's last error.
func (w *streamWriter) retry(isSubmit bool, op func() error) error {
	for attempt := 1; ; attempt++ {
		if err := w.fenced(); err != nil {
			return err
		}
		err := op()
		switch {
		case err == nil:
			w.setDown(false, nil)
			return nil
		case errors.Is(err, eventbus.ErrFenced):
			w.setFenced(err)
			return err
		case !errors.Is(err, eventbus.ErrReplicaUnavailable) || isSubmit:
			return err
		}
		w.setDown(true, err)
		w.refuseQueuedSubmits(err)
		if !w.pause(attempt) {
			// The session is ending and the quorum did not come back: the
			// write is lost here, but it was never acknowledged or stored
			// anywhere. An action left without its observation is answered
			// by the session's next owner (it finds it unanswered).
			w.logger.Error("giving up a write the replicated store refused while the session closed", "session", w.sid, "attempts", attempt, "err", err)
			w.setDown(false, nil)
			return err
		}
	}
}

// pause waits before retry attempt+1; false: give up (closing, retries
// spent).
func (w *streamWriter) pause(attempt int) bool {
	if w.isClosing() && attempt >= replicaRetriesClosing {
		return false
	}
	t := time.NewTimer(backoff(replicaRetryInitial, replicaRetryMax, attempt))
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.wake:
	}
	return true
}

// refuseQueuedSubmits answers the submitted actions queued behind a write
// that waits for the replica: they were not stored, and their callers
// should hear so now rather than when the quorum is back.
func (w *streamWriter) refuseQueuedSubmits(cause error) {
	w.mu.Lock()
	var refused []writeJob
	kept := w.queue[:0]
	for _, j := range w.queue {
		if _, ok := j.req.tag.(*tagSubmit); ok && j.meta == nil {
			refused = append(refused, j)
			continue
		}
		kept = append(kept, j)
	}
	for i := len(kept); i < len(w.queue); i++ {
		w.queue[i] = writeJob{}
	}
	w.queue = kept
	w.mu.Unlock()
	for _, j := range refused {
		w.sys.Root.Send(j.reply, &appended{tag: j.req.tag,
			err: fmt.Errorf("session %s: the action was not stored: an earlier event of the session waits for the replicated store: %w", w.sid, cause)})
	}
}
