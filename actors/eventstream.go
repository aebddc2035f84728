package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"corral/eventbus"
	"corral/metrics"
)

// appendReq asks the EventStream actor to persist an event. The result
// comes back to the requester as an *appended carrying the same tag.
type appendReq struct {
	ev  *eventbus.Event
	tag any
	// pairWith, when set, is an observation appended right after ev with its
	// cause set to ev's new id (an action recorded with its answer).
	pairWith *eventbus.Event
}

// appended is the result of an appendReq.
type appended struct {
	ev   *eventbus.Event // stored event (id set); nil on error
	pair *eventbus.Event // stored pairWith, if any
	err  error
	tag  any
}

// streamWriter serialises appends to one session's eventbus.Stream in
// submission order, on a goroutine that exists only while there is work:
// an idle session owns no goroutine here, and an fsync never blocks an
// actor's Receive.
type streamWriter struct {
	store  *eventbus.Store
	sid    string
	sys    *actor.ActorSystem
	logger *slog.Logger
	wg     *sync.WaitGroup // the engine's: Shutdown waits for writers
	met    *metrics.Registry

	mu       sync.Mutex
	queue    []writeJob
	running  bool
	closing  bool
	finished bool
	stream   *eventbus.Stream
	openErr  error
	opened   chan struct{} // closed once the stream is open (or failed to)
	closed   chan struct{} // closed once the stream is closed

	// Replicated store (cluster mode; eventstream_replica.go).
	hooks     writerHooks
	fencedErr error         // set once an append was fenced: nothing more is written
	down      bool          // a write is being retried because the replica has no quorum
	wake      chan struct{} // cuts a retry's backoff short when the writer is closed
}

// writeJob is an append (req) or, with meta set, a save of the session's
// record; both run in queue order.
type writeJob struct {
	req   appendReq
	reply *actor.PID // the appended result; with meta: a recordSaved (nil: nobody)
	meta  []byte
}

// recordSaved tells a session its record is durable.
type recordSaved struct{ err error }

func newStreamWriter(store *eventbus.Store, sid string, sys *actor.ActorSystem, logger *slog.Logger, wg *sync.WaitGroup, met *metrics.Registry) *streamWriter {
	w := &streamWriter{store: store, sid: sid, sys: sys, logger: logger, wg: wg, met: met,
		opened: make(chan struct{}), closed: make(chan struct{}), wake: make(chan struct{}, 1)}
	// The stream is opened by the first drain, after the session's first
	// record is saved (see drain).
	return w
}

// enqueue adds a job; it never blocks on IO.
func (w *streamWriter) enqueue(j writeJob) {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		w.sys.Root.Send(j.reply, &appended{err: fmt.Errorf("session %s: %w", w.sid, eventbus.ErrStreamClosed), tag: j.req.tag})
		return
	}
	w.queue = append(w.queue, j)
	w.mu.Unlock()
	w.kick()
}

// saveMeta queues a save of the session's record behind the queued
// appends. A record saved after close is dropped (the session ended).
func (w *streamWriter) saveMeta(data []byte, notify *actor.PID) {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return
	}
	w.queue = append(w.queue, writeJob{meta: data, reply: notify})
	w.mu.Unlock()
	w.kick()
}

func (w *streamWriter) isClosing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closing
}

// readClosed waits until the stream is closed, then reads the session's
// events with id >= from from the store.
func (w *streamWriter) readClosed(ctx context.Context, from int64) ([]*eventbus.Item, error) {
	select {
	case <-w.closed:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st, err := w.store.Open(w.sid)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.Search(ctx, eventbus.Filter{StartID: from})
}

// close lets queued appends finish, then closes the stream; closed() is
// closed after that.
func (w *streamWriter) close() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	w.kick()
}

func (w *streamWriter) kick() {
	w.mu.Lock()
	if w.running || w.finished {
		w.mu.Unlock()
		return
	}
	w.running = true
	w.mu.Unlock()
	w.wg.Add(1)
	go w.drain()
}

func (w *streamWriter) drain() {
	defer w.wg.Done()
	select {
	case <-w.opened:
	default:
		// Records queued before the first event are saved before the log
		// is created: a crash in between must not leave a log without a
		// record (read back as a stopped session that cannot start).
		for {
			w.mu.Lock()
			if len(w.queue) == 0 || w.queue[0].meta == nil {
				w.mu.Unlock()
				break
			}
			j := w.queue[0]
			w.queue = w.queue[1:]
			w.mu.Unlock()
			w.save(j)
		}
		s, err := w.store.Open(w.sid)
		if err != nil {
			err = fmt.Errorf("open the event stream of session %s: %w", w.sid, err)
		}
		w.mu.Lock()
		w.stream, w.openErr = s, err
		w.mu.Unlock()
		close(w.opened)
	}
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.running = false
			if !w.closing {
				w.mu.Unlock()
				return
			}
			w.finished = true
			s := w.stream
			w.mu.Unlock()
			if s != nil {
				if err := s.Close(); err != nil {
					w.logger.Error("closing event stream", "session", w.sid, "err", err)
				}
			}
			close(w.closed)
			return
		}
		j := w.queue[0]
		w.queue[0] = writeJob{}
		w.queue = w.queue[1:]
		w.mu.Unlock()
		if j.meta != nil {
			w.save(j)
			continue
		}
		w.sys.Root.Send(j.reply, w.write(j.req))
	}
}

// save writes a record job and tells its requester, if any. A record the
// replicated store cannot take yet is retried (see retry).
func (w *streamWriter) save(j writeJob) {
	err := w.retry(false, func() error { return w.store.SaveMeta(w.sid, j.meta) })
	if err != nil && !errors.Is(err, eventbus.ErrFenced) { // fenced: the Session says so once
		w.logger.Error("saving the session record", "session", w.sid, "err", err)
	}
	if j.reply != nil {
		w.sys.Root.Send(j.reply, &recordSaved{err: err})
	}
}

func (w *streamWriter) write(r appendReq) *appended {
	_, isSubmit := r.tag.(*tagSubmit)
	var ev *eventbus.Event
	err := w.retry(isSubmit, func() (err error) {
		ev, err = w.appendOne(r.ev)
		return err
	})
	if err != nil {
		return &appended{err: err, tag: r.tag}
	}
	res := &appended{ev: ev, tag: r.tag}
	if r.pairWith != nil {
		o := r.pairWith.Clone()
		id := ev.ID
		o.ID, o.Cause = eventbus.InvalidID, &id
		// Only the observation is retried: the action is stored already.
		res.err = w.retry(false, func() (err error) {
			res.pair, err = w.appendOne(o)
			return err
		})
	}
	return res
}

// appendOne stores ev on the session's stream.
func (w *streamWriter) appendOne(ev *eventbus.Event) (*eventbus.Event, error) {
	if w.openErr != nil {
		return nil, w.openErr
	}
	start := time.Now()
	stored, err := w.stream.Append(context.Background(), ev)
	if err != nil {
		return nil, fmt.Errorf("store %s event of session %s: %w", ev.Type(), w.sid, err)
	}
	w.met.ObserveAppend(1, time.Since(start))
	return stored, nil
}

// openStream waits until the stream is open.
func (w *streamWriter) openStream(ctx context.Context) (*eventbus.Stream, error) {
	select {
	case <-w.opened:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stream, w.openErr
}

// eventStreamActor is the EventStream <id> actor: it owns the session's
// writer. Its Receive only queues work.
type eventStreamActor struct{ w *streamWriter }

func (a *eventStreamActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *appendReq:
		a.w.enqueue(writeJob{req: *m, reply: ctx.Sender()})
	case *actor.Stopped:
		a.w.close()
	}
}
