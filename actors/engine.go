package actors

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/eventbus"
	"corral/metrics"
	"corral/runtimes"
)

// SessionSpec describes a session to create. It is stored with the
// session (its record), so a restarted engine rebuilds the same session.
type SessionSpec struct {
	ID               string             `json:"id"`                  // empty: the engine picks one
	Runtime          string             `json:"runtime"`             // registry name; empty: Config.DefaultRuntime
	Workspace        string             `json:"workspace,omitempty"` // host directory; empty: backend default
	Env              map[string]string  `json:"env,omitempty"`       // exported in the sandbox shell after start
	Image            string             `json:"image,omitempty"`     // docker image
	Repository       string             `json:"repository,omitempty"`
	Branch           string             `json:"branch,omitempty"`
	KeepRuntimeAlive bool               `json:"keep_runtime_alive,omitempty"`
	Attach           *runtimes.Handle   `json:"-"` // re-attach to this sandbox instead of starting one
	Labels           map[string]string  `json:"labels,omitempty"`
	SkipGitConfig    bool               `json:"skip_git_config,omitempty"` // do not run `git config --global`
	Resources        runtimes.Resources `json:"resources,omitzero"`        // refused where the backend cannot enforce them
	// MCP is the MCP servers the sandbox's agent serves to call_tool_mcp,
	// applied on every (re)connect; nil: the engine's default (WithDefaultMCP).
	MCP *eventbus.MCPConfig `json:"mcp_config,omitempty"`
}

// SessionInfo is a session's state as the Manager knows it.
type SessionInfo struct {
	ID            string
	Runtime       string
	State         string // StateQueued, StateStarting, StateRunning, StatePaused, StateStopping, StateStopped, StateError
	RuntimeStatus string // last STATUS$... id
	QueuePosition int    // 1-based while State == StateQueued
	Workspace     string
	Image         string
	Created       time.Time
	LastActivity  time.Time        // last event stored (this process run) or Created
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
// is safe for concurrent use and honours ctx. It keeps no session state of
// its own: every call is a message to the Manager, which forwards it to the
// session's owner, the Session actor.
type Engine struct {
	cfg      Config
	registry *runtimes.Registry
	store    *eventbus.Store
	ownStore string // temp dir of a store the engine created itself
	owner    runtimes.Owner
	logger   *slog.Logger
	hostEnv  []string
	metrics  *metrics.Registry // nil: record nothing
	// defaultMCP is given to sessions whose spec has no MCP config.
	defaultMCP *eventbus.MCPConfig

	sys     *actor.ActorSystem
	manager *actor.PID

	wg     sync.WaitGroup // goroutines the engine started (writers, backend calls)
	closed atomic.Bool

	// Cluster mode (adopt.go): where sessions are taken over from, this
	// node's id, the sessions the Manager holds (SessionCount) and the
	// Adopt calls' tokens.
	cluster  ReplicaSource
	nodeID   string
	owned    atomic.Int64
	adoptSeq atomic.Uint64
}

// Option configures NewEngine.
type Option func(*Engine)

// WithLogger sends the engine's and protoactor's logs to l. The default
// writes WARN and above to stderr.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.logger = l } }

// WithStore sets the event store sessions are persisted in, and makes the
// engine a durable owner: its sessions and sandboxes outlive the process and
// are recovered by Recover in the next process on the same store. Without
// it the engine creates a store in a temporary directory, removes it at
// Shutdown and its sandboxes are reaped once it is gone (right for `corral
// exec`, farms, tests and benchmarks, not for a server).
func WithStore(s *eventbus.Store) Option { return func(e *Engine) { e.store = s } }

// WithHostEnv sets the environment SANDBOX_ENV_<X> variables are read from
// (default os.Environ()).
func WithHostEnv(env []string) Option { return func(e *Engine) { e.hostEnv = env } }

// WithMetrics records the engine's sessions (by state and backend), admission
// queue length, answered actions (by type and outcome, with their latency
// from the action stored to its observation stored), runtime starts, start
// failures and restarts, and event appends in m. A nil m records nothing
// (the default).
func WithMetrics(m *metrics.Registry) Option { return func(e *Engine) { e.metrics = m } }

// WithDefaultMCP gives every new session whose SessionSpec.MCP is nil
// these MCP servers ([mcp] in corral.toml). A session's own config, even an
// empty one, replaces the default as a whole. The default is stored with
// each session, so changing it later leaves existing sessions as they were.
func WithDefaultMCP(c eventbus.MCPConfig) Option {
	return func(e *Engine) {
		if c.IsZero() {
			e.defaultMCP = nil
			return
		}
		e.defaultMCP = &c
	}
}

// NewEngine starts an engine over the backends of registry. With a durable
// store (WithStore) it knows every session of the store at once (List, Get,
// History); call Recover to bring back the ones that were running.
func NewEngine(cfg Config, registry *runtimes.Registry, opts ...Option) (*Engine, error) {
	if registry == nil {
		return nil, errors.New("actors: NewEngine needs a runtimes.Registry with at least one backend")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("actors: %w", err)
	}
	e := &Engine{cfg: cfg.withDefaults(), registry: registry}
	for _, o := range opts {
		o(e)
	}
	if e.logger == nil {
		e.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if e.hostEnv == nil {
		e.hostEnv = os.Environ()
	}
	if e.defaultMCP != nil {
		if err := e.defaultMCP.Validate(); err != nil {
			return nil, fmt.Errorf("actors: the default MCP configuration ([mcp]): %w", err)
		}
	}
	if err := e.validateCluster(); err != nil {
		return nil, err
	}
	durable := e.store != nil
	if e.store == nil {
		if err := e.openTempStore(); err != nil {
			return nil, err
		}
	}
	e.owner = StoreOwner(e.store, durable)
	records := map[string]*sessionRecord{}
	// In cluster mode the local store is a cache: what it holds may be
	// owned by another node now. Sessions come by Adopt instead.
	if durable && e.cluster == nil {
		var errs []error
		records, errs = loadRecords(e.store)
		for _, err := range errs {
			e.logger.Error("a stored session cannot be rebuilt", "err", err)
		}
	}
	actorLogger := e.logger.With("component", "protoactor")
	e.sys = actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return actorLogger }),
		actor.WithDeadLetterRequestLogging(false),
	)
	mgr := newManager(e, records)
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

func (e *Engine) openTempStore() error {
	dir, err := os.MkdirTemp("", "corral-engine-")
	if err != nil {
		return fmt.Errorf("actors: create a temporary event store (or pass actors.WithStore): %w", err)
	}
	cfg := eventbus.DefaultConfig()
	cfg.StoreDir, cfg.Sync = dir, eventbus.SyncNever
	st, err := eventbus.OpenStore(cfg, eventbus.WithLogger(e.logger))
	if err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("actors: open a temporary event store: %w", err)
	}
	e.store, e.ownStore = st, dir
	return nil
}

// StoreOwner is the identity an engine on st records on its sandboxes: the
// store's, so that the next process on the same store is the same owner.
// durable: the store outlives the process (`corral serve`). Backends built
// before the engine (a warm pool) record the same owner.
func StoreOwner(st *eventbus.Store, durable bool) runtimes.Owner {
	return runtimes.Owner{ID: st.ID(), Instance: st.InstanceID(), Host: runtimes.Hostname(), LockPath: st.LockPath(), Durable: durable}
}

// Owner is the identity recorded on this engine's sandboxes.
func (e *Engine) Owner() runtimes.Owner { return e.owner }

// GracePeriod is the configured agent reconnect grace period.
func (e *Engine) GracePeriod() time.Duration { return e.cfg.AgentGracePeriod.D() }

// sessionProps is the Props producer of Session actors, keyed by session
// id: everything a Session is made of comes from its record, so the same
// producer serves a new session, a recovered one and a restarted one (and
// can become a cluster Kind).
func (e *Engine) sessionProps(rec *sessionRecord, mode startMode, admit admitWaiter) (*actor.Props, error) {
	backend, err := e.registry.Get(rec.Spec.Runtime)
	if err != nil {
		return nil, err
	}
	s := newSessionActor(e, backend, rec, mode, admit)
	return actor.PropsFromProducer(func() actor.Actor { return s }), nil
}

// replyProcess receives the one reply of an ask. It is a plain process,
// not a protoactor Future: a Future's result is written without a lock, so
// completing it from the caller's cancellation while the reply arrives is a
// data race; here the reply goes into a channel and cancellation only stops
// the wait.
type replyProcess struct{ ch chan any }

func (p *replyProcess) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	select {
	case p.ch <- msg:
	default: // a second reply: only the first counts
	}
}

func (p *replyProcess) SendSystemMessage(*actor.PID, any) {}
func (p *replyProcess) Stop(*actor.PID)                   {}

// ask sends msg to pid and waits for the reply or ctx.
func (e *Engine) ask(ctx context.Context, pid *actor.PID, msg any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &replyProcess{ch: make(chan any, 1)}
	self, _ := e.sys.ProcessRegistry.Add(p, "ask$"+e.sys.ProcessRegistry.NextId())
	defer e.sys.ProcessRegistry.Remove(self)
	e.sys.Root.RequestWithCustomSender(pid, msg, self)
	select {
	case res := <-p.ch:
		if _, dead := res.(*actor.DeadLetterResponse); dead {
			return nil, errors.New("engine did not answer: the actor is gone (the engine is shutting down)")
		}
		return res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// toSession sends msg to the session sid through the Manager (which
// forwards it to the session's owner or answers that it is not running)
// and returns the reply.
func (e *Engine) toSession(ctx context.Context, sid string, msg any) (any, error) {
	return e.ask(ctx, e.manager, &toSession{sid: sid, msg: msg})
}

// CreateSession admits a session and starts its sandbox. When the node is
// at max_sessions the call waits in a FIFO queue (Get shows the position)
// until admitted or ctx ends; a full queue fails at once with ErrQueueFull.
// It returns once the session is admitted (WaitReady waits for its
// runtime).
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
	if spec.MCP == nil && e.defaultMCP != nil {
		spec.MCP = e.defaultMCP // copied into the message by specToPB
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

// WaitReady waits until the session's current runtime reports READY (a
// READY of an earlier run of the session never counts), and fails with the
// status message when the runtime fails to start or the session ends first.
func (e *Engine) WaitReady(ctx context.Context, sid string) error {
	_, err := e.control(ctx, sid, actorpb.ControlOp_CONTROL_OP_WAIT_READY)
	return err
}

// Submit stores an action on the session's stream and queues it; it
// returns the action's id once the action is persisted. Observations follow
// on the stream with cause = that id.
func (e *Engine) Submit(ctx context.Context, sid string, action *eventbus.Event) (int64, error) {
	id, _, err := e.submit(ctx, sid, action, false)
	return id, err
}

// Run submits an action and waits for its observation (nil obs when the
// action gets none; see ExpectsObservation). The session answers as soon as
// the observation is stored, on the reply: no subscription is involved.
func (e *Engine) Run(ctx context.Context, sid string, action *eventbus.Event) (int64, *eventbus.Event, error) {
	return e.submit(ctx, sid, action, true)
}

func (e *Engine) submit(ctx context.Context, sid string, action *eventbus.Event, wait bool) (int64, *eventbus.Event, error) {
	if action == nil || !action.IsAction() {
		return eventbus.InvalidID, nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: "only an action event can be run"}
	}
	if (action.Action == nil) == (action.Observation == nil) {
		return eventbus.InvalidID, nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: "encode action: exactly one of Action and Observation must be set"}
	}
	// Node-local: the Session gets its own copy of the event and answers
	// with the stored observation as an event (no JSON between the two;
	// the store encodes each event once). SubmitAction with JSON stays the
	// message for callers beyond this process.
	res, err := e.toSession(ctx, sid, &submitLocal{ev: action.Clone(), wait: wait})
	if err != nil {
		return eventbus.InvalidID, nil, err
	}
	switch rep := res.(type) {
	case *localObsReply:
		return rep.id, rep.obs, nil
	case *actorpb.SubmitReply:
		if rep.Error != nil {
			return rep.EventId, nil, fromPB(rep.Error)
		}
		if len(rep.ObservationJson) == 0 {
			return rep.EventId, nil, nil
		}
		obs, err := eventbus.Unmarshal(rep.ObservationJson)
		return rep.EventId, obs, err
	}
	return eventbus.InvalidID, nil, fmt.Errorf("actors: unexpected reply %T to an action", res)
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
	res, err := e.toSession(ctx, sid, &actorpb.DecideConfirmation{SessionId: sid, EventId: eventID, Confirm: confirm})
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
// event). For a session that is not running it fails with ErrNotRunning:
// use History.
func (e *Engine) Subscribe(ctx context.Context, sid string, fromID int64) (*eventbus.Subscription, error) {
	res, err := e.toSession(ctx, sid, &subscribeReq{ctx: ctx, from: fromID})
	if err != nil {
		return nil, err
	}
	r := res.(*subscribeReply)
	return r.sub, r.err
}

// History returns the stored events of a session with id >= fromID, running
// or not: a running session reads them from its own stream; the events of
// any other session are read from the store.
func (e *Engine) History(ctx context.Context, sid string, fromID int64) ([]*eventbus.Item, error) {
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: err.Error()}
	}
	res, err := e.toSession(ctx, sid, &historyReq{ctx: ctx, from: fromID})
	if err != nil {
		return nil, err
	}
	r := res.(*historyReply)
	if err = r.err; !errors.Is(err, ErrNotRunning) && !errors.Is(err, ErrNotFound) {
		return r.items, err
	}
	if errors.Is(err, ErrNotFound) && (e.cluster != nil || e.store.LastWrite(sid).IsZero()) {
		// No log: opening one would create it (a deleted session would
		// reappear). In cluster mode a local log of a session this node
		// does not own may be stale.
		return nil, err
	}
	st, oerr := e.store.Open(sid)
	if oerr != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, oerr
	}
	defer st.Close()
	return st.Search(ctx, eventbus.Filter{StartID: fromID})
}

// SubscribeChunks streams live output chunks of the session's running
// actions. Chunks are not stored; a slow reader misses chunks, never
// events. The channel closes when ctx ends or the session stops.
func (e *Engine) SubscribeChunks(ctx context.Context, sid string) (<-chan Chunk, error) {
	res, err := e.toSession(ctx, sid, &chunksReq{})
	if err != nil {
		return nil, err
	}
	r := res.(*chunksReply)
	if r.err != nil {
		return nil, r.err
	}
	ch := r.hub.subscribe(256)
	context.AfterFunc(ctx, func() { r.hub.unsubscribe(ch) })
	return ch, nil
}

// ListFiles lists a directory of the session's sandbox with OpenHands'
// list_files semantics (path "" = the working directory).
func (e *Engine) ListFiles(ctx context.Context, sid, path string) ([]string, error) {
	var out []string
	err := e.files(ctx, sid, func(ctx context.Context, c runtimes.AgentConn) (err error) {
		out, err = c.ListFiles(ctx, path)
		return err
	})
	return out, err
}

// Upload writes one file named name (a zip unpacked into dest when
// recursive) into directory dest of the session's sandbox.
func (e *Engine) Upload(ctx context.Context, sid, dest, name string, r io.Reader, recursive bool) error {
	return e.files(ctx, sid, func(ctx context.Context, c runtimes.AgentConn) error {
		return c.Upload(ctx, dest, r, name, recursive)
	})
}

// Download writes a zip of path in the session's sandbox to w.
func (e *Engine) Download(ctx context.Context, sid, path string, w io.Writer) error {
	return e.files(ctx, sid, func(ctx context.Context, c runtimes.AgentConn) error {
		return c.Download(ctx, path, w)
	})
}

// AgentHTTP runs do with an http.RoundTripper to the HTTP API of the
// session's agent (OpenHands' action-execution endpoints), over the
// connection its Runtime holds (runtimes.HTTPAgent); the URL's host is
// ignored. do must be done with the response, body included, before it
// returns; its ctx ends when the caller's does or the runtime ends. It
// fails with ErrNotSupported where the connection has no HTTP API (the
// in-process cli runtime), ErrNotRunning until the sandbox is ready.
func (e *Engine) AgentHTTP(ctx context.Context, sid string, do func(ctx context.Context, rt http.RoundTripper) error) error {
	return e.files(ctx, sid, func(ctx context.Context, c runtimes.AgentConn) error {
		rt, ok := c.(runtimes.HTTPAgent)
		if !ok {
			return &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED,
				Message: fmt.Sprintf("the sandbox of session %s has no HTTP API (its runtime is not reached over HTTP, e.g. cli); use the session API", sid)}
		}
		return do(ctx, rt)
	})
}

// files runs op on the session's agent connection, which only its Runtime
// holds: the Runtime runs op off its goroutine and the result comes back on
// the reply.
func (e *Engine) files(ctx context.Context, sid string, op func(context.Context, runtimes.AgentConn) error) error {
	res, err := e.toSession(ctx, sid, &fileReq{ctx: ctx, op: op})
	if err != nil {
		return err
	}
	return res.(*fileReply).err
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

// Start runs a stopped (or failed) session again under the same id: its
// events are kept and new ones continue their ids; it gets a new sandbox
// (or re-attaches to the one kept alive). Starting a running session
// returns its state.
func (e *Engine) Start(ctx context.Context, sid string) (SessionInfo, error) {
	return e.control(ctx, sid, actorpb.ControlOp_CONTROL_OP_START)
}

// Get returns a session's state (any session of the store).
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

// List returns every session the engine knows, running or not (with a
// durable store: every session of the store), oldest first.
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
	return e.shutdown(ctx, false)
}

// Detach ends this engine without stopping its sessions: sandboxes keep
// running and every session stays recorded as running, so the next engine
// on the same store recovers them (what a crash does, but orderly: streams
// are flushed and closed). Used by `corral serve` when asked to restart.
func (e *Engine) Detach(ctx context.Context) error {
	return e.shutdown(ctx, true)
}

func (e *Engine) shutdown(ctx context.Context, detach bool) error {
	if e.closed.Swap(true) {
		return nil
	}
	var end any = &actorpb.ShutdownEngine{}
	if detach {
		end = &detachAll{} // sandboxes keep running, records stay RUNNING
	}
	if _, err := e.ask(ctx, e.manager, end); err != nil && !detach {
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
