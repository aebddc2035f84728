package actors

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/eventbus"
	"corral/metrics"
	"corral/runtimes"
	"corral/transport/agentwire"
)

// SessionSpec describes a session to create.
type SessionSpec struct {
	ID               string            // empty: the engine picks one
	Runtime          string            // registry name; empty: Config.DefaultRuntime
	Workspace        string            // host directory; empty: backend default
	Env              map[string]string // exported in the sandbox shell after start
	Image            string            // docker image
	Repository       string            // git URL cloned into the workspace
	Branch           string            // branch to check out after cloning
	KeepRuntimeAlive bool              // leave the sandbox running after Stop
	Attach           *runtimes.Handle  // re-attach to this sandbox instead of starting one
	Labels           map[string]string
	SkipGitConfig    bool // do not run `git config --global`
}

// SessionInfo is a session's state as the Manager knows it.
type SessionInfo struct {
	ID            string
	Runtime       string
	State         string // StateQueued, StateStarting, StateRunning, StatePaused, StateStopping, StateStopped, StateError
	RuntimeStatus string // last STATUS$... id
	QueuePosition int    // 1-based while State == StateQueued
	Workspace     string
	Created       time.Time
	Error         string           // why the session failed (StateError)
	Handle        *runtimes.Handle // the sandbox, once started
	Restarts      int              // runtime restarts so far
}

// Error is an engine refusal; compare with errors.Is against ErrNotFound,
// ErrQueueFull, ....
type Error struct {
	Code    actorpb.ErrorCode
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Message
}

// Is matches errors of the same code, so errors.Is(err, ErrQueueFull) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrNotFound       = &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_FOUND}
	ErrQueueFull      = &Error{Code: actorpb.ErrorCode_ERROR_CODE_QUEUE_FULL}
	ErrInvalid        = &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID}
	ErrNotRunning     = &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING}
	ErrAlreadyExists  = &Error{Code: actorpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS}
	ErrUnknownRuntime = &Error{Code: actorpb.ErrorCode_ERROR_CODE_UNKNOWN_RUNTIME}
	ErrNotSupported   = &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED}
	ErrShuttingDown   = &Error{Code: actorpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN}
)

func fromPB(e *actorpb.Error) error {
	if e == nil {
		return nil
	}
	return &Error{Code: e.Code, Message: e.Message}
}

// Engine runs sessions on this node. It hides the actor tree: every method
// is safe for concurrent use and honours ctx.
type Engine struct {
	cfg           Config
	registry      *runtimes.Registry
	store         *eventbus.Store
	ownStore      string // temp dir of a store the engine created itself
	dialers       map[string]Dialer
	defaultDialer Dialer
	cliRuntimes   map[string]bool
	logger        *slog.Logger
	hostEnv       []string
	metrics       *metrics.Registry // nil: record nothing

	sys     *actor.ActorSystem
	manager *actor.PID

	mu   sync.RWMutex
	refs map[string]*sessionRef

	wg     sync.WaitGroup // goroutines the engine started (writers, backend calls)
	closed atomic.Bool
}

// Option configures NewEngine.
type Option func(*Engine)

// WithLogger sends the engine's and protoactor's logs to l. The default
// writes WARN and above to stderr.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.logger = l } }

// WithStore sets the event store sessions are persisted in. Without it the
// engine creates one in a temporary directory and removes it at Shutdown
// (right for `corral exec`, tests and benchmarks, not for a server).
func WithStore(s *eventbus.Store) Option { return func(e *Engine) { e.store = s } }

// WithDialer sets how sessions of the named runtime connect to their agent.
func WithDialer(runtime string, d Dialer) Option {
	return func(e *Engine) { e.dialers[runtime] = d }
}

// GracePeriod is the configured agent reconnect grace period, for dialers
// built outside the engine.
func (e *Engine) GracePeriod() time.Duration { return e.cfg.AgentGracePeriod.D() }

// WithDefaultDialer sets the dialer of runtimes without their own
// (normally agentwire).
func WithDefaultDialer(d Dialer) Option { return func(e *Engine) { e.defaultDialer = d } }

// WithInProcessRuntime marks a runtime whose executor runs inside this
// process (OpenHands' cli runtime): `git config --global` is skipped there.
func WithInProcessRuntime(runtime string) Option {
	return func(e *Engine) { e.cliRuntimes[runtime] = true }
}

// WithHostEnv sets the environment SANDBOX_ENV_<X> variables are read from
// (default os.Environ()).
func WithHostEnv(env []string) Option { return func(e *Engine) { e.hostEnv = env } }

// WithMetrics records the engine's sessions (by state and backend), admission
// queue length, answered actions (by type and outcome, with their latency
// from the action stored to its observation stored), runtime starts, start
// failures and restarts, and event appends in m. A nil m records nothing
// (the default).
func WithMetrics(m *metrics.Registry) Option { return func(e *Engine) { e.metrics = m } }

// NewEngine starts an engine over the backends of registry.
func NewEngine(cfg Config, registry *runtimes.Registry, opts ...Option) (*Engine, error) {
	if registry == nil {
		return nil, errors.New("actors: NewEngine needs a runtimes.Registry with at least one backend")
	}
	e := &Engine{cfg: cfg.withDefaults(), registry: registry, dialers: map[string]Dialer{},
		cliRuntimes: map[string]bool{}, refs: map[string]*sessionRef{}}
	for _, o := range opts {
		o(e)
	}
	if e.logger == nil {
		e.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if e.hostEnv == nil {
		e.hostEnv = os.Environ()
	}
	if e.defaultDialer == nil {
		e.defaultDialer = AgentwireDialer(agentwire.WithClientLogger(e.logger), agentwire.WithGracePeriod(e.cfg.AgentGracePeriod.D()))
	}
	if e.store == nil {
		dir, err := os.MkdirTemp("", "corral-engine-")
		if err != nil {
			return nil, fmt.Errorf("actors: create a temporary event store (or pass actors.WithStore): %w", err)
		}
		cfg := eventbus.DefaultConfig()
		cfg.StoreDir, cfg.Sync = dir, eventbus.SyncNever
		st, err := eventbus.OpenStore(cfg, eventbus.WithLogger(e.logger))
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("actors: open a temporary event store: %w", err)
		}
		e.store, e.ownStore = st, dir
	}
	actorLogger := e.logger.With("component", "protoactor")
	e.sys = actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return actorLogger }),
		actor.WithDeadLetterRequestLogging(false),
	)
	mgr := newManager(e)
	// The guardian resumes the Manager (its state lives in mgr, which the
	// producer returns on every incarnation) and never escalates: escalating
	// from a guardian panics the process.
	guardian := actor.NewOneForOneStrategy(10, 10*time.Second, func(reason any) actor.Directive {
		e.logger.Error("manager actor failed; resuming it", "reason", fmt.Sprint(reason))
		return actor.ResumeDirective
	})
	pid, err := e.sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return mgr }, actor.WithGuardian(guardian)), "manager")
	if err != nil {
		return nil, fmt.Errorf("actors: spawn manager: %w", err)
	}
	e.manager = pid
	return e, nil
}

func (e *Engine) newSession(manager *actor.PID, ps *actorpb.SessionSpec) (*sessionActor, error) {
	backend, err := e.registry.Get(ps.Runtime)
	if err != nil {
		return nil, err
	}
	dial := e.dialers[ps.Runtime]
	if dial == nil {
		dial = e.defaultDialer
	}
	if dial == nil {
		return nil, fmt.Errorf("no agent dialer for runtime %q: build the engine with actors.WithDialer or WithDefaultDialer", ps.Runtime)
	}
	spec := specFromPB(ps)
	memo := &runtimeMemo{}
	if spec.Attach != nil {
		memo.handle = spec.Attach
		memo.setupFor = spec.Attach.ID // attaching: the sandbox is set up already
	}
	ref := &sessionRef{chunks: &chunkHub{}}
	ref.writer = newStreamWriter(e.store, spec.ID, e.sys, e.logger, &e.wg, e.metrics)
	env := &runtimeEnv{sid: spec.ID, backend: backend, dial: dial, spec: spec, cfg: e.cfg, manager: manager,
		hostEnv: e.hostEnv, logger: e.logger, chunks: ref.chunks, wg: &e.wg, memo: memo,
		isCLI: e.cliRuntimes[ps.Runtime], permitOK: true, metrics: e.metrics}
	return &sessionActor{sid: spec.ID, spec: spec, cfg: e.cfg, env: env, ref: ref, store: e.store, sys: e.sys,
		logger: e.logger, manager: manager, created: time.Now(), onEnd: func() { e.dropRef(spec.ID) },
		metrics: e.metrics}, nil
}

func specToPB(s SessionSpec) *actorpb.SessionSpec {
	p := &actorpb.SessionSpec{SessionId: s.ID, Runtime: s.Runtime, Workspace: s.Workspace, Env: maps.Clone(s.Env),
		Image: s.Image, Repository: s.Repository, Branch: s.Branch, KeepRuntimeAlive: s.KeepRuntimeAlive,
		Labels: maps.Clone(s.Labels), SkipGitConfig: s.SkipGitConfig}
	if s.Attach != nil {
		p.AttachHandleJson, _ = json.Marshal(s.Attach)
	}
	return p
}

func specFromPB(p *actorpb.SessionSpec) SessionSpec {
	return SessionSpec{ID: p.SessionId, Runtime: p.Runtime, Workspace: p.Workspace, Env: p.Env, Image: p.Image,
		Repository: p.Repository, Branch: p.Branch, KeepRuntimeAlive: p.KeepRuntimeAlive,
		Attach: handleFromJSON(p.AttachHandleJson), Labels: p.Labels, SkipGitConfig: p.SkipGitConfig}
}

func infoFromPB(p *actorpb.SessionInfo) SessionInfo {
	if p == nil {
		return SessionInfo{}
	}
	return SessionInfo{ID: p.SessionId, Runtime: p.Runtime, State: p.State, RuntimeStatus: p.RuntimeStatus,
		QueuePosition: int(p.QueuePosition), Workspace: p.Workspace, Created: time.UnixMilli(p.CreatedUnixMs),
		Error: p.Error, Handle: handleFromJSON(p.HandleJson), Restarts: int(p.Restarts)}
}

func (e *Engine) addRef(sid string, r *sessionRef) {
	e.mu.Lock()
	e.refs[sid] = r
	e.mu.Unlock()
}

func (e *Engine) dropRef(sid string) {
	e.mu.Lock()
	delete(e.refs, sid)
	e.mu.Unlock()
}

func (e *Engine) ref(ctx context.Context, sid string) (*sessionRef, error) {
	e.mu.RLock()
	r := e.refs[sid]
	e.mu.RUnlock()
	if r != nil {
		return r, nil
	}
	info, err := e.Get(ctx, sid)
	if err != nil {
		return nil, err
	}
	return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
		Message: fmt.Sprintf("session %s is %s", sid, info.State)}
}

// futureCanceled completes a future whose caller's ctx ended.
type futureCanceled struct{}

// ask sends msg to pid and waits for the reply or ctx.
func (e *Engine) ask(ctx context.Context, pid *actor.PID, msg any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The future's own timeout is a backstop only: ctx ends the wait first
	// (AfterFunc below), so the caller sees ctx's error.
	timeout := 24 * time.Hour
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl) + 5*time.Second
	}
	f := actor.NewFuture(e.sys, timeout)
	stop := context.AfterFunc(ctx, func() { e.sys.Root.Send(f.PID(), &futureCanceled{}) })
	defer stop()
	e.sys.Root.RequestWithCustomSender(pid, msg, f.PID())
	res, err := f.Result()
	if _, ok := res.(*futureCanceled); ok || ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("engine did not answer: %w", err)
	}
	return res, nil
}

// CreateSession admits a session and starts its sandbox. When the node is
// at max_sessions the call waits in a FIFO queue (Get shows the position)
// until admitted or ctx ends; a full queue fails at once with ErrQueueFull.
// It returns once the session is admitted; statuses follow on its stream
// (WaitReady waits for STATUS$READY).
func (e *Engine) CreateSession(ctx context.Context, spec SessionSpec) (SessionInfo, error) {
	if e.closed.Load() {
		return SessionInfo{}, &Error{Code: actorpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: "the engine is shut down"}
	}
	if spec.ID == "" {
		spec.ID = newSessionID()
	}
	if err := eventbus.ValidateSessionID(spec.ID); err != nil {
		return SessionInfo{}, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: err.Error()}
	}
	res, err := e.ask(ctx, e.manager, &actorpb.CreateSession{Spec: specToPB(spec)})
	if err != nil {
		e.sys.Root.Send(e.manager, &actorpb.CancelCreate{SessionId: spec.ID})
		return SessionInfo{}, err
	}
	r := res.(*actorpb.CreateSessionReply)
	if r.Error != nil {
		return SessionInfo{}, fromPB(r.Error)
	}
	return infoFromPB(r.Info), nil
}

func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// WaitReady waits until the session's runtime reports STATUS$READY, and
// fails with the status message when it reports STATUS$ERROR or the session
// ends first.
func (e *Engine) WaitReady(ctx context.Context, sid string) error {
	errReady := errors.New("ready")
	var failure error
	err := e.scan(ctx, sid, 0, func(ev *eventbus.Event) error {
		if st, ok := ev.Observation.(*eventbus.RuntimeStatusObservation); ok {
			switch st.Status {
			case eventbus.StatusReady:
				return errReady
			case eventbus.StatusError:
				failure = fmt.Errorf("session %s failed to start: %s", sid, ev.Content)
				return failure
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errReady):
		return nil
	case failure != nil:
		return failure
	case err != nil:
		return err
	}
	return fmt.Errorf("session %s ended before its runtime was ready", sid)
}

// scan runs fn over the session's events from id from, live, until fn
// returns an error, ctx ends or the stream closes.
func (e *Engine) scan(ctx context.Context, sid string, from int64, fn func(*eventbus.Event) error) error {
	sub, err := e.Subscribe(ctx, sid, from)
	if errors.Is(err, eventbus.ErrStreamClosed) || errors.Is(err, ErrNotRunning) {
		// The session ended already: its history is all there is.
		items, herr := e.History(ctx, sid, from)
		if herr != nil {
			return err
		}
		for _, it := range items {
			ev, err := it.Event()
			if err != nil {
				return err
			}
			if err := fn(ev); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer sub.Close()
	next := from
	for it := range sub.C() {
		ev, err := it.Event()
		if err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
		next = it.ID + 1
	}
	if err := sub.Err(); !errors.Is(err, eventbus.ErrStreamClosed) {
		return err
	}
	// The session stopped: what the subscription had not delivered yet is
	// in the store.
	return e.scan(ctx, sid, next, fn)
}

// Submit stores an action on the session's stream and queues it; it
// returns the action's id once the action is persisted. Observations follow
// on the stream with cause = that id.
func (e *Engine) Submit(ctx context.Context, sid string, action *eventbus.Event) (int64, error) {
	if action == nil || !action.IsAction() {
		return eventbus.InvalidID, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: "Submit needs an action event"}
	}
	r, err := e.ref(ctx, sid)
	if err != nil {
		return eventbus.InvalidID, err
	}
	data, err := eventbus.Marshal(action)
	if err != nil {
		return eventbus.InvalidID, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: "encode action: " + err.Error()}
	}
	res, err := e.ask(ctx, r.pid, &actorpb.SubmitAction{SessionId: sid, EventJson: data})
	if err != nil {
		return eventbus.InvalidID, err
	}
	rep := res.(*actorpb.SubmitReply)
	if rep.Error != nil {
		return eventbus.InvalidID, fromPB(rep.Error)
	}
	return rep.EventId, nil
}

// ExpectsObservation reports whether the session will answer the action
// with an observation (runnable actions not awaiting confirmation, think and
// task_tracking); Run returns nil for the others.
func ExpectsObservation(action *eventbus.Event) bool {
	switch action.Action.(type) {
	case *eventbus.AgentThinkAction, *eventbus.TaskTrackingAction:
		return true
	}
	if !action.Action.Runnable() {
		return false
	}
	if c, ok := action.Action.(eventbus.Confirmable); ok && c.Confirmation() == eventbus.AwaitingConfirmation {
		return false
	}
	return true
}

// Run submits an action and waits for its observation (nil, nil when the
// action gets none; see ExpectsObservation). The session answers as soon as
// the observation is stored, without a stream subscription.
func (e *Engine) Run(ctx context.Context, sid string, action *eventbus.Event) (*eventbus.Event, error) {
	if action == nil || !action.IsAction() {
		return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: "Run needs an action event"}
	}
	r, err := e.ref(ctx, sid)
	if err != nil {
		return nil, err
	}
	data, err := eventbus.Marshal(action)
	if err != nil {
		return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: "encode action: " + err.Error()}
	}
	res, err := e.ask(ctx, r.pid, &actorpb.SubmitAction{SessionId: sid, EventJson: data, WaitObservation: true})
	if err != nil {
		return nil, err
	}
	rep := res.(*actorpb.SubmitReply)
	if rep.Error != nil {
		return nil, fromPB(rep.Error)
	}
	if len(rep.ObservationJson) == 0 {
		return nil, nil
	}
	return eventbus.Unmarshal(rep.ObservationJson)
}

// WaitObservation waits for the observation answering action id.
func (e *Engine) WaitObservation(ctx context.Context, sid string, id int64) (*eventbus.Event, error) {
	var obs *eventbus.Event
	errFound := errors.New("found")
	err := e.scan(ctx, sid, id+1, func(ev *eventbus.Event) error {
		if !ev.IsAction() && ev.Cause != nil && *ev.Cause == id {
			obs = ev
			return errFound
		}
		return nil
	})
	if obs != nil {
		return obs, nil
	}
	if err == nil {
		err = fmt.Errorf("session %s ended before action %d was answered", sid, id)
	}
	return nil, err
}

// Confirm lets an action waiting for confirmation run: like OpenHands, the
// action is re-added to the stream with confirmation_state "confirmed"; the
// new event's id is returned.
func (e *Engine) Confirm(ctx context.Context, sid string, eventID int64) (int64, error) {
	return e.decide(ctx, sid, eventID, true)
}

// Reject answers an action waiting for confirmation with user_rejected (it
// is re-added with confirmation_state "rejected"; the new id is returned).
func (e *Engine) Reject(ctx context.Context, sid string, eventID int64) (int64, error) {
	return e.decide(ctx, sid, eventID, false)
}

func (e *Engine) decide(ctx context.Context, sid string, eventID int64, confirm bool) (int64, error) {
	r, err := e.ref(ctx, sid)
	if err != nil {
		return eventbus.InvalidID, err
	}
	res, err := e.ask(ctx, r.pid, &actorpb.DecideConfirmation{SessionId: sid, EventId: eventID, Confirm: confirm})
	if err != nil {
		return eventbus.InvalidID, err
	}
	rep := res.(*actorpb.SubmitReply)
	if rep.Error != nil {
		return eventbus.InvalidID, fromPB(rep.Error)
	}
	return rep.EventId, nil
}

// Subscribe streams a running session's events with id >= fromID in id
// order: stored ones first, then live ones (see eventbus.Subscription; the
// items carry the stored OpenHands JSON). It ends when ctx ends, on Close,
// or when the session stops (eventbus.ErrStreamClosed, after its last
// event). For a session that is no longer running use History.
func (e *Engine) Subscribe(ctx context.Context, sid string, fromID int64) (*eventbus.Subscription, error) {
	r, err := e.ref(ctx, sid)
	if err != nil {
		return nil, err
	}
	st, err := r.writer.openStream(ctx)
	if err != nil {
		return nil, err
	}
	return st.Subscribe(ctx, fromID)
}

// History returns the stored events of a session with id >= fromID, running
// or not.
func (e *Engine) History(ctx context.Context, sid string, fromID int64) ([]*eventbus.Item, error) {
	e.mu.RLock()
	r := e.refs[sid]
	e.mu.RUnlock()
	if r != nil {
		st, err := r.writer.openStream(ctx)
		if err != nil {
			return nil, err
		}
		items, err := st.Search(ctx, eventbus.Filter{StartID: fromID})
		if err == nil {
			return items, nil
		}
		// The stream is being closed (the session is stopping): once it is,
		// read the session from the store.
		select {
		case <-r.writer.closed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: err.Error()}
	}
	st, err := e.store.Open(sid)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.Search(ctx, eventbus.Filter{StartID: fromID})
}

// SubscribeChunks streams live output chunks of the session's running
// actions. Chunks are not stored; a slow reader misses chunks, never
// events. The channel closes when ctx ends or the session stops.
func (e *Engine) SubscribeChunks(ctx context.Context, sid string) (<-chan Chunk, error) {
	r, err := e.ref(ctx, sid)
	if err != nil {
		return nil, err
	}
	ch := r.chunks.subscribe(256)
	context.AfterFunc(ctx, func() { r.chunks.unsubscribe(ch) })
	return ch, nil
}

func (e *Engine) control(ctx context.Context, sid string, op actorpb.ControlOp) (SessionInfo, error) {
	res, err := e.ask(ctx, e.manager, &actorpb.SessionControl{SessionId: sid, Op: op})
	if err != nil {
		return SessionInfo{}, err
	}
	rep := res.(*actorpb.ControlReply)
	if rep.Error != nil {
		return infoFromPB(rep.Info), fromPB(rep.Error)
	}
	return infoFromPB(rep.Info), nil
}

// Pause freezes the session's sandbox (ErrNotSupported where the backend
// cannot); queued actions wait until Resume.
func (e *Engine) Pause(ctx context.Context, sid string) (SessionInfo, error) {
	return e.control(ctx, sid, actorpb.ControlOp_CONTROL_OP_PAUSE)
}

// Resume thaws a paused session.
func (e *Engine) Resume(ctx context.Context, sid string) (SessionInfo, error) {
	return e.control(ctx, sid, actorpb.ControlOp_CONTROL_OP_RESUME)
}

// Stop ends the session: actions that will not run get an error
// observation, the sandbox is released (unless kept alive), STATUS$STOPPED
// is recorded, and the call returns once all of it is stored.
func (e *Engine) Stop(ctx context.Context, sid string) (SessionInfo, error) {
	return e.control(ctx, sid, actorpb.ControlOp_CONTROL_OP_STOP)
}

// Get returns a session's state (also for queued and recently ended ones).
func (e *Engine) Get(ctx context.Context, sid string) (SessionInfo, error) {
	res, err := e.ask(ctx, e.manager, &actorpb.GetSession{SessionId: sid})
	if err != nil {
		return SessionInfo{}, err
	}
	rep := res.(*actorpb.ControlReply)
	if rep.Error != nil {
		return SessionInfo{}, fromPB(rep.Error)
	}
	return infoFromPB(rep.Info), nil
}

// List returns the queued and running sessions, oldest first.
func (e *Engine) List(ctx context.Context) ([]SessionInfo, error) {
	res, err := e.ask(ctx, e.manager, &actorpb.ListSessions{})
	if err != nil {
		return nil, err
	}
	rep := res.(*actorpb.ListSessionsReply)
	out := make([]SessionInfo, len(rep.Sessions))
	for i, s := range rep.Sessions {
		out[i] = infoFromPB(s)
	}
	return out, nil
}

// Shutdown stops every session (as Stop does), then the actor system, and
// waits for the engine's goroutines; ctx bounds the wait.
func (e *Engine) Shutdown(ctx context.Context) error {
	if e.closed.Swap(true) {
		return nil
	}
	if _, err := e.ask(ctx, e.manager, &actorpb.ShutdownEngine{}); err != nil {
		return fmt.Errorf("stop sessions: %w", err)
	}
	if err := e.sys.Root.StopFuture(e.manager).Wait(); err != nil {
		return fmt.Errorf("stop manager: %w", err)
	}
	e.sys.Shutdown()
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		if e.ownStore != "" {
			err := e.store.Close()
			if rerr := os.RemoveAll(e.ownStore); err == nil {
				err = rerr
			}
			return err
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("engine goroutines still running at shutdown deadline: %w", ctx.Err())
	}
}
