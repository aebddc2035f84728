package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"corral/actors"
	"corral/eventbus"
	"corral/transport/agentwire"
)

// EngineAdapter binds the server to the real engine (corral/actors).
type EngineAdapter struct {
	eng   *actors.Engine
	store *eventbus.Store // the engine's store, to find sessions of earlier runs; may be nil
	dial  func(ctx context.Context, addr, token string) (fileClient, error)

	mu    sync.Mutex
	known map[string]*knownSession // sessions created through this adapter
}

// knownSession is what the API reports that the engine does not keep.
type knownSession struct {
	image        string
	lastActivity time.Time
	last         Session // the last state seen, reported once the engine forgets it
}

// fileClient is the part of an agentwire client the file endpoints use.
type fileClient interface {
	ListFiles(ctx context.Context, path string) ([]string, error)
	Upload(ctx context.Context, dest string, r io.Reader, filename string, recursive bool) error
	Download(ctx context.Context, path string, w io.Writer) error
	Close() error
}

// NewEngineAdapter returns an Engine over eng. store is the event store the
// engine was built with (actors.WithStore); with it, sessions of earlier
// runs stay readable (events, WebSocket replay).
func NewEngineAdapter(eng *actors.Engine, store *eventbus.Store) *EngineAdapter {
	return &EngineAdapter{eng: eng, store: store, known: map[string]*knownSession{},
		dial: func(ctx context.Context, addr, token string) (fileClient, error) {
			return agentwire.Dial(ctx, addr, token)
		}}
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
	} {
		if errors.Is(err, m.from) {
			return &engineErr{api: m.to, err: err}
		}
	}
	return err
}

func (a *EngineAdapter) toSession(info actors.SessionInfo) Session {
	s := Session{ID: info.ID, Status: info.State, Backend: info.Runtime, RuntimeStatus: info.RuntimeStatus,
		Workspace: info.Workspace, Created: info.Created.UTC(), LastActivity: info.Created.UTC(),
		QueuePosition: info.QueuePosition, Restarts: info.Restarts, Error: info.Error}
	a.mu.Lock()
	defer a.mu.Unlock()
	if k := a.known[info.ID]; k != nil {
		s.Image = k.image
		if k.lastActivity.After(s.LastActivity) {
			s.LastActivity = k.lastActivity
		}
		k.last = s
	}
	return s
}

func (a *EngineAdapter) touch(id string) {
	a.mu.Lock()
	if k := a.known[id]; k != nil {
		k.lastActivity = time.Now().UTC()
	}
	a.mu.Unlock()
}

// CreateSession implements Engine.
func (a *EngineAdapter) CreateSession(ctx context.Context, req SessionRequest) (Session, error) {
	if req.Resources != (Resources{}) {
		return Session{}, fmt.Errorf("%w: the engine does not take per-session resource limits yet; leave \"resources\" out (limits come from the runtime's configuration)", ErrNotSupported)
	}
	info, err := a.eng.CreateSession(ctx, actors.SessionSpec{ID: req.ID, Runtime: req.Runtime, Image: req.Image,
		Workspace: req.Workspace, Env: req.Env})
	if err != nil {
		return Session{}, mapErr(err)
	}
	a.mu.Lock()
	a.known[info.ID] = &knownSession{image: req.Image, lastActivity: time.Now().UTC()}
	a.mu.Unlock()
	return a.toSession(info), nil
}

// ListSessions implements Engine: the engine's queued and running sessions,
// and those created here that have ended since.
func (a *EngineAdapter) ListSessions(ctx context.Context) ([]Session, error) {
	infos, err := a.eng.List(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]Session, 0, len(infos))
	seen := map[string]bool{}
	for _, info := range infos {
		out = append(out, a.toSession(info))
		seen[info.ID] = true
	}
	a.mu.Lock()
	var gone []string
	for id := range a.known {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	a.mu.Unlock()
	slices.Sort(gone)
	for _, id := range gone {
		s, err := a.GetSession(ctx, id)
		if err == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// GetSession implements Engine. A session the engine no longer knows is
// reported from what was last seen, or as STOPPED when only its events
// remain in the store.
func (a *EngineAdapter) GetSession(ctx context.Context, id string) (Session, error) {
	info, err := a.eng.Get(ctx, id)
	if err == nil {
		return a.toSession(info), nil
	}
	if !errors.Is(err, actors.ErrNotFound) {
		return Session{}, mapErr(err)
	}
	a.mu.Lock()
	k := a.known[id]
	a.mu.Unlock()
	if k != nil && k.last.ID != "" {
		s := k.last
		if s.Status != actors.StateError {
			s.Status = actors.StateStopped
		}
		return s, nil
	}
	if a.stored(id) {
		return Session{ID: id, Status: actors.StateStopped}, nil
	}
	return Session{}, mapErr(err)
}

// stored reports whether the store holds events of session id.
func (a *EngineAdapter) stored(id string) bool {
	if a.store == nil {
		return false
	}
	ids, err := a.store.Sessions()
	return err == nil && slices.Contains(ids, id)
}

// DeleteSession implements Engine (actors' Stop).
func (a *EngineAdapter) DeleteSession(ctx context.Context, id string) (Session, error) {
	info, err := a.eng.Stop(ctx, id)
	if err != nil {
		if errors.Is(err, actors.ErrNotFound) || errors.Is(err, actors.ErrNotRunning) {
			if s, gerr := a.GetSession(ctx, id); gerr == nil && s.Status == actors.StateStopped {
				return s, nil // already stopped: deleting again is not an error
			}
		}
		return Session{}, mapErr(err)
	}
	return a.toSession(info), nil
}

// PauseSession implements Engine.
func (a *EngineAdapter) PauseSession(ctx context.Context, id string) (Session, error) {
	info, err := a.eng.Pause(ctx, id)
	if err != nil {
		return Session{}, mapErr(err)
	}
	a.touch(id)
	return a.toSession(info), nil
}

// ResumeSession implements Engine.
func (a *EngineAdapter) ResumeSession(ctx context.Context, id string) (Session, error) {
	info, err := a.eng.Resume(ctx, id)
	if err != nil {
		return Session{}, mapErr(err)
	}
	a.touch(id)
	return a.toSession(info), nil
}

// Submit implements Engine.
func (a *EngineAdapter) Submit(ctx context.Context, id string, action *eventbus.Event) (int64, error) {
	eid, err := a.eng.Submit(ctx, id, action)
	if err != nil {
		return eventbus.InvalidID, mapErr(err)
	}
	a.touch(id)
	return eid, nil
}

// Run implements Engine.
func (a *EngineAdapter) Run(ctx context.Context, id string, action *eventbus.Event) (int64, *eventbus.Event, error) {
	eid, err := a.Submit(ctx, id, action)
	if err != nil {
		return eventbus.InvalidID, nil, err
	}
	if !actors.ExpectsObservation(action) {
		return eid, nil, nil
	}
	obs, err := a.eng.WaitObservation(ctx, id, eid)
	if err != nil {
		return eid, nil, mapErr(err)
	}
	a.touch(id)
	return eid, obs, nil
}

// Confirm implements Engine.
func (a *EngineAdapter) Confirm(ctx context.Context, id string, eid int64) (int64, error) {
	n, err := a.eng.Confirm(ctx, id, eid)
	a.touch(id)
	return n, mapErr(err)
}

// Reject implements Engine.
func (a *EngineAdapter) Reject(ctx context.Context, id string, eid int64) (int64, error) {
	n, err := a.eng.Reject(ctx, id, eid)
	a.touch(id)
	return n, mapErr(err)
}

// exists fails with ErrNotFound for a session neither the engine nor the
// store knows (History would otherwise create an empty log for it).
func (a *EngineAdapter) exists(ctx context.Context, id string) error {
	_, err := a.GetSession(ctx, id)
	return err
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

// sandbox connects to the session's agent for a file operation.
func (a *EngineAdapter) sandbox(ctx context.Context, id string) (fileClient, error) {
	info, err := a.eng.Get(ctx, id)
	if err != nil {
		return nil, mapErr(err)
	}
	if info.State != actors.StateRunning || info.Handle == nil || info.Handle.AgentAddr == "" {
		return nil, fmt.Errorf("session %s is %s and has no running sandbox to reach: %w", id, info.State, ErrNotRunning)
	}
	c, err := a.dial(ctx, info.Handle.AgentAddr, info.Handle.Token)
	if err != nil {
		return nil, fmt.Errorf("connect to the sandbox of session %s: %w", id, err)
	}
	return c, nil
}

// ListFiles implements Engine.
func (a *EngineAdapter) ListFiles(ctx context.Context, id, path string) ([]string, error) {
	c, err := a.sandbox(ctx, id)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ListFiles(ctx, path)
}

// Upload implements Engine.
func (a *EngineAdapter) Upload(ctx context.Context, id, dest, name string, r io.Reader) error {
	c, err := a.sandbox(ctx, id)
	if err != nil {
		return err
	}
	defer c.Close()
	// As in OpenHands, the agent unpacks a file whose name ends in .zip
	// into dest; any other file is saved as dest/name.
	if err := c.Upload(ctx, dest, r, name, false); err != nil {
		return err
	}
	a.touch(id)
	return nil
}

// Download implements Engine.
func (a *EngineAdapter) Download(ctx context.Context, id, path string, w io.Writer) error {
	c, err := a.sandbox(ctx, id)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Download(ctx, path, w)
}

// Ready implements Engine: the engine answers.
func (a *EngineAdapter) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := a.eng.List(ctx)
	return mapErr(err)
}
