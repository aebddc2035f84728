package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"corral/actors"
	"corral/eventbus"
)

// EngineAdapter binds the server to the real engine (corral/actors). It
// keeps nothing of its own: every session's state is the engine's.
type EngineAdapter struct {
	eng *actors.Engine
}

// NewEngineAdapter returns an Engine over eng.
func NewEngineAdapter(eng *actors.Engine) *EngineAdapter {
	return &EngineAdapter{eng: eng}
}

// engineErr maps the engine's errors onto the API's sentinels; the result
// matches both.
type engineErr struct {
	api error
	err error
}

func (e *engineErr) Error() string   { return e.err.Error() }
func (e *engineErr) Unwrap() []error { return []error{e.api, e.err} }

func mapErr(err error) error {
	if err == nil {
		return nil
	}
	for _, m := range []struct{ from, to error }{
		{actors.ErrNotFound, ErrNotFound},
		{actors.ErrNotRunning, ErrNotRunning},
		{actors.ErrAlreadyExists, ErrConflict},
		{actors.ErrInvalid, ErrInvalid},
		{actors.ErrQueueFull, ErrQueueFull},
		{actors.ErrUnknownRuntime, ErrUnknownRuntime},
		{actors.ErrNotSupported, ErrNotSupported},
		{actors.ErrShuttingDown, ErrShuttingDown},
		{actors.ErrUnavailable, ErrUnavailable},
	} {
		if errors.Is(err, m.from) {
			return &engineErr{api: m.to, err: err}
		}
	}
	return err
}

func toSession(info actors.SessionInfo) Session {
	return Session{ID: info.ID, Status: info.State, Backend: info.Runtime, RuntimeStatus: info.RuntimeStatus,
		Image: info.Image, Workspace: info.Workspace, Created: info.Created.UTC(), LastActivity: info.LastActivity.UTC(),
		QueuePosition: info.QueuePosition, Restarts: info.Restarts, Error: info.Error, Node: nodeOf(info)}
}

func sessionResult(info actors.SessionInfo, err error) (Session, error) {
	if err != nil {
		return Session{}, mapErr(err)
	}
	return toSession(info), nil
}

// CreateSession implements Engine.
func (a *EngineAdapter) CreateSession(ctx context.Context, req SessionRequest) (Session, error) {
	return sessionResult(a.eng.CreateSession(ctx, actors.SessionSpec{ID: req.ID, Runtime: req.Runtime, Image: req.Image,
		Workspace: req.Workspace, Env: req.Env, Resources: req.Resources.toRuntimes(), MCP: req.MCP}))
}

// ListSessions implements Engine: every session the engine knows, running
// or not, forks with their forked_from as GetSession shows it.
func (a *EngineAdapter) ListSessions(ctx context.Context) ([]Session, error) {
	infos, err := a.eng.List(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]Session, 0, len(infos))
	for _, info := range infos {
		s := toSession(info)
		s.ForkedFrom = a.forkPoint(ctx, info.ID)
		out = append(out, s)
	}
	return out, nil
}

// GetSession implements Engine.
func (a *EngineAdapter) GetSession(ctx context.Context, id string) (Session, error) {
	s, err := sessionResult(a.eng.Get(ctx, id))
	if err == nil {
		s.ForkedFrom = a.forkPoint(ctx, id)
	}
	return s, err
}

// DeleteSession implements Engine (actors' Stop; stopping a stopped
// session again is not an error).
func (a *EngineAdapter) DeleteSession(ctx context.Context, id string) (Session, error) {
	return sessionResult(a.eng.Stop(ctx, id))
}

// StartSession implements Engine.
func (a *EngineAdapter) StartSession(ctx context.Context, id string) (Session, error) {
	return sessionResult(a.eng.Start(ctx, id))
}

// PauseSession implements Engine.
func (a *EngineAdapter) PauseSession(ctx context.Context, id string) (Session, error) {
	return sessionResult(a.eng.Pause(ctx, id))
}

// ResumeSession implements Engine.
func (a *EngineAdapter) ResumeSession(ctx context.Context, id string) (Session, error) {
	return sessionResult(a.eng.Resume(ctx, id))
}

// Submit implements Engine.
func (a *EngineAdapter) Submit(ctx context.Context, id string, action *eventbus.Event) (int64, error) {
	eid, err := a.eng.Submit(ctx, id, action)
	return eid, mapErr(err)
}

// Run implements Engine: the observation comes back on the engine's reply.
func (a *EngineAdapter) Run(ctx context.Context, id string, action *eventbus.Event) (int64, *eventbus.Event, error) {
	eid, obs, err := a.eng.Run(ctx, id, action)
	return eid, obs, mapErr(err)
}

// Confirm implements Engine.
func (a *EngineAdapter) Confirm(ctx context.Context, id string, eid int64) (int64, error) {
	n, err := a.eng.Confirm(ctx, id, eid)
	return n, mapErr(err)
}

// Reject implements Engine.
func (a *EngineAdapter) Reject(ctx context.Context, id string, eid int64) (int64, error) {
	n, err := a.eng.Reject(ctx, id, eid)
	return n, mapErr(err)
}

// exists fails with ErrNotFound for a session the engine does not know
// (History would otherwise create an empty log for it).
func (a *EngineAdapter) exists(ctx context.Context, id string) error {
	_, err := a.eng.Get(ctx, id)
	return mapErr(err)
}

// Events implements Engine by filtering the session's history.
func (a *EngineAdapter) Events(ctx context.Context, id string, f eventbus.Filter) ([]*eventbus.Item, error) {
	if err := a.exists(ctx, id); err != nil {
		return nil, err
	}
	items, err := a.eng.History(ctx, id, f.StartID)
	if err != nil {
		return nil, mapErr(err)
	}
	out := items[:0]
	for _, it := range items {
		if f.EndID != nil && it.ID > *f.EndID {
			break
		}
		ev, err := it.Event()
		if err != nil {
			return nil, fmt.Errorf("session %s: stored event %d does not decode: %w", id, it.ID, err)
		}
		if f.Include(ev, it.JSON) {
			out = append(out, it)
			if f.Limit > 0 && len(out) == f.Limit {
				break
			}
		}
	}
	return out, nil
}

// Subscribe implements Engine. A session that is not running replays its
// history and then ends, as its stream has.
func (a *EngineAdapter) Subscribe(ctx context.Context, id string, from int64) (EventSubscription, error) {
	sub, err := a.eng.Subscribe(ctx, id, from)
	if err == nil {
		return sub, nil
	}
	if !errors.Is(err, actors.ErrNotRunning) && !errors.Is(err, actors.ErrNotFound) {
		return nil, mapErr(err)
	}
	if err := a.exists(ctx, id); err != nil {
		return nil, err
	}
	items, herr := a.eng.History(ctx, id, from)
	if herr != nil {
		return nil, mapErr(herr)
	}
	return newReplaySub(ctx, items, fmt.Errorf("session %s is not running: %w", id, eventbus.ErrStreamClosed)), nil
}

// replaySub delivers a fixed list of items and then ends with err.
type replaySub struct {
	ch     chan *eventbus.Item
	err    error
	stop   chan struct{}
	once   sync.Once
	done   chan struct{}
	endErr error
}

func newReplaySub(ctx context.Context, items []*eventbus.Item, err error) *replaySub {
	s := &replaySub{ch: make(chan *eventbus.Item), stop: make(chan struct{}), done: make(chan struct{}), endErr: err}
	go func() {
		// done closes before ch, so Err is set once a reader sees C closed.
		defer close(s.ch)
		defer close(s.done)
		for _, it := range items {
			select {
			case s.ch <- it:
			case <-s.stop:
				return
			case <-ctx.Done():
				s.err = ctx.Err()
				return
			}
		}
		s.err = s.endErr
	}()
	return s
}

func (s *replaySub) C() <-chan *eventbus.Item { return s.ch }

// Err is valid once C is closed (the goroutine wrote it before closing).
func (s *replaySub) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

func (s *replaySub) Close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// SubscribeOutput implements Engine.
func (a *EngineAdapter) SubscribeOutput(ctx context.Context, id string) (<-chan OutputChunk, func(), error) {
	cctx, cancel := context.WithCancel(ctx)
	src, err := a.eng.SubscribeChunks(cctx, id)
	if err != nil {
		cancel()
		return nil, nil, mapErr(err)
	}
	out := make(chan OutputChunk, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for c := range src { // closed when cctx ends or the session stops
			select {
			case out <- OutputChunk{ActionID: c.ActionID, Seq: c.Seq, Data: c.Data}:
			default: // chunks are lossy by contract; never hold up the engine
			}
		}
	}()
	return out, func() { cancel(); <-done }, nil
}

// ListFiles implements Engine.
func (a *EngineAdapter) ListFiles(ctx context.Context, id, path string) ([]string, error) {
	out, err := a.eng.ListFiles(ctx, id, path)
	return out, mapErr(err)
}

// Upload implements Engine. As in OpenHands, the agent unpacks a file whose
// name ends in .zip into dest; any other file is saved as dest/name.
func (a *EngineAdapter) Upload(ctx context.Context, id, dest, name string, r io.Reader) error {
	return mapErr(a.eng.Upload(ctx, id, dest, name, r, false))
}

// Download implements Engine.
func (a *EngineAdapter) Download(ctx context.Context, id, path string, w io.Writer) error {
	return mapErr(a.eng.Download(ctx, id, path, w))
}

// Ready implements Engine: the engine answers.
func (a *EngineAdapter) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := a.eng.List(ctx)
	return mapErr(err)
}
