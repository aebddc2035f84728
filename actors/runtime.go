package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/eventbus"
	"corral/metrics"
	"corral/runtimes"
)

// Runtime actor messages. They carry Go values (connections, handles) and
// never leave the node: the sandbox is where the Runtime is.
type (
	// execRequest asks the Runtime to run one action (the Session sends at
	// most one at a time, only when the runtime is READY).
	execRequest struct {
		action *eventbus.Event
		reqID  string // the agent's request id (requestID)
	}
	// controlRequest pauses or resumes the sandbox.
	controlRequest struct{ op actorpb.ControlOp }

	// Runtime -> Session.
	// runtimeStatus reports a status change; with READY, attached says the
	// runtime re-attached to a sandbox that survived and setupFor is the
	// handle id whose set-up holds.
	runtimeStatus struct {
		status, level, msg string
		attached           bool
		setupFor           string
	}
	actionResult  struct{ obs *eventbus.Event }
	recordPair    struct{ action, obs *eventbus.Event }
	controlResult struct {
		op  actorpb.ControlOp
		err error
	}

	// Runtime -> itself, from its goroutines; gen tells stale results of a
	// previous incarnation apart (a restarted actor keeps its PID).
	provisioned struct {
		gen      uint64
		handle   *runtimes.Handle
		conn     runtimes.AgentConn
		attached bool
		fresh    bool // a new, empty workspace the backend created
		err      error
	}
	setupNote struct {
		gen         uint64
		status, msg string
	}
	setupFinished struct {
		gen    uint64
		record *setupRecord
		err    error
		// mcpUnavailable says why call_tool_mcp cannot work on this
		// connection ("" when it can; see applyMCP).
		mcpUnavailable string
	}
	execFinished struct {
		gen uint64
		obs *eventbus.Event
		err error
	}
	connLost struct {
		gen    uint64
		reason string
	}
	deadlineHit struct {
		gen    uint64
		status string
	}
)

// runtimeFailure is the panic value a Runtime fails with; its Session's
// supervisor strategy decides between restart and giving up.
type runtimeFailure struct{ reason string }

func (f *runtimeFailure) String() string { return f.reason }

// runtimeEnv is what every incarnation of a session's Runtime shares; it is
// immutable after the session starts.
type runtimeEnv struct {
	sid      string
	backend  runtimes.Backend
	spec     SessionSpec
	cfg      Config
	manager  *actor.PID
	owner    runtimes.Owner
	hostEnv  []string
	logger   *slog.Logger
	chunks   *chunkHub
	wg       *sync.WaitGroup
	memo     *runtimeMemo
	hostGit  bool // the sandbox uses the host user's git config: never change it
	permitOK bool // backend starts are bounded by Manager permits
	metrics  *metrics.Registry
	// onHandle tells the Session that the sandbox changed, so its record
	// names the sandbox before anything else happens in it.
	onHandle func(*runtimes.Handle)
}

// runtimeMemo survives Runtime restarts: the sandbox to re-attach to.
type runtimeMemo struct {
	mu        sync.Mutex
	handle    *runtimes.Handle
	gen       uint64
	setupFor  string // handle id whose workspace set-up completed
	everReady bool
}

func (m *runtimeMemo) nextGen() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	return m.gen
}

func (m *runtimeMemo) get() (*runtimes.Handle, string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handle, m.setupFor, m.everReady
}

func (m *runtimeMemo) setHandle(h *runtimes.Handle) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := m.handle == nil || h == nil || m.handle.ID != h.ID
	m.handle = h
	return changed
}

func (m *runtimeMemo) markReady(handleID string) {
	m.mu.Lock()
	m.setupFor, m.everReady = handleID, true
	m.mu.Unlock()
}

// runtimeActor is the Runtime <id> actor: a status machine around one
// sandbox and its agent connection. Everything slow runs in goroutines
// bound to ctx, cancelled when this incarnation ends.
type runtimeActor struct {
	env    *runtimeEnv
	gen    uint64
	ctx    context.Context
	cancel context.CancelFunc
	status string
	timer  *time.Timer

	waitingPermit, holdingPermit bool
	handle                       *runtimes.Handle
	conn                         runtimes.AgentConn
	ready                        bool
	busy                         bool
	mcpUnavailable               string // why call_tool_mcp cannot work here (see applyMCP)
	cleaned                      bool
	detached                     bool // ending without touching the sandbox or its running action

	// startedAt is when this incarnation began provisioning (after its
	// start permit); attached says it re-attached rather than started a
	// sandbox. Both feed the runtime start metrics.
	startedAt time.Time
	attached  bool
}

func newRuntimeActor(env *runtimeEnv) actor.Actor { return &runtimeActor{env: env} }

func (r *runtimeActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		r.start(ctx)
	case *actorpb.StartPermitGranted:
		if !r.waitingPermit {
			return // a grant for an earlier request: we still hold it
		}
		r.waitingPermit, r.holdingPermit = false, true
		r.provision(ctx)
	case *provisioned:
		r.onProvisioned(ctx, m)
	case *setupNote:
		if m.gen == r.gen {
			r.setStatus(ctx, m.status, "info", m.msg)
		}
	case *setupFinished:
		r.onSetupFinished(ctx, m)
	case *execRequest:
		r.exec(ctx, m)
	case *fileReq:
		r.files(ctx, m)
	case *execFinished:
		if m.gen != r.gen {
			return
		}
		r.busy = false
		if m.err != nil {
			r.fail(fmt.Sprintf("agent connection failed while running the action: %v", m.err))
		}
		ctx.Send(ctx.Parent(), &actionResult{obs: m.obs})
	case *controlRequest:
		r.control(ctx, m.op)
	case *detachSession:
		r.detached = true
		ctx.Stop(ctx.Self())
	case *connLost:
		if m.gen == r.gen {
			r.fail(m.reason)
		}
	case *deadlineHit:
		if m.gen == r.gen && m.status == r.status && !r.ready {
			r.fail(fmt.Sprintf("runtime stuck in %s past its deadline", m.status))
		}
	case *actor.Restarting, *actor.Stopping:
		r.cleanup(ctx)
	case *actor.Stopped:
		r.cleanup(ctx)
	}
}

func (r *runtimeActor) start(ctx actor.Context) {
	r.gen = r.env.memo.nextGen()
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.cleaned = false
	if r.env.permitOK {
		r.waitingPermit = true
		ctx.Request(r.env.manager, &actorpb.AcquireStartPermit{Backend: r.env.backend.Name(), SessionId: r.env.sid})
		return
	}
	r.provision(ctx)
}

// provision starts (or re-attaches to) the sandbox off the actor goroutine.
func (r *runtimeActor) provision(ctx actor.Context) {
	old, _, _ := r.env.memo.get()
	msg := ""
	if old != nil {
		msg = "Re-attaching to the runtime..."
	}
	r.setStatus(ctx, eventbus.StatusStartingRuntime, "info", msg)
	r.startedAt = time.Now()
	self, gen, env, rctx := ctx.Self(), r.gen, r.env, r.ctx
	sys := ctx.ActorSystem()
	env.wg.Add(1)
	go func() {
		defer env.wg.Done()
		sys.Root.Send(self, provisionSandbox(rctx, env, old, gen))
	}()
}

func provisionSandbox(ctx context.Context, env *runtimeEnv, old *runtimes.Handle, gen uint64) *provisioned {
	b := env.backend
	if old != nil {
		if h, err := b.Recover(ctx, old); err == nil {
			conn, derr := b.Connect(ctx, h)
			if derr == nil {
				return &provisioned{gen: gen, handle: h, conn: conn, attached: true}
			}
			env.logger.Warn("sandbox alive but its agent is unreachable; provisioning a new one", "session", env.sid, "err", derr)
		} else if !errors.Is(err, runtimes.ErrNotFound) && !errors.Is(err, runtimes.ErrNotSupported) {
			env.logger.Warn("re-attaching to the sandbox failed; provisioning a new one", "session", env.sid, "err", err)
		}
		if ctx.Err() != nil {
			return &provisioned{gen: gen, err: ctx.Err()}
		}
		// Release what the dead sandbox held, but keep its workspace: the new
		// sandbox works in the same directory.
		gone := *old
		gone.Meta = maps.Clone(old.Meta)
		delete(gone.Meta, runtimes.MetaOwnsWorkspace)
		dctx, cancel := context.WithTimeout(context.Background(), env.cfg.StopTimeout.D())
		if err := b.Destroy(dctx, &gone); err != nil {
			env.logger.Warn("cleaning up the lost sandbox", "session", env.sid, "err", err)
		}
		cancel()
	}
	spec := runtimes.Spec{
		SessionID: env.sid,
		Image:     env.spec.Image,
		Workspace: env.spec.Workspace,
		Env:       maps.Clone(env.spec.Env),
		Labels:    maps.Clone(env.spec.Labels),
		Resources: env.spec.Resources,
		Owner:     env.owner,
	}
	if old != nil {
		spec.Workspace = old.Workspace
		if old.Meta[runtimes.MetaOwnsWorkspace] == "true" {
			if spec.Labels == nil {
				spec.Labels = map[string]string{}
			}
			spec.Labels[runtimes.MetaOwnsWorkspace] = "true"
		}
	}
	h, err := b.Start(ctx, spec)
	if err != nil && old != nil && env.spec.Workspace == "" && spec.Workspace != "" && ctx.Err() == nil {
		// The lost sandbox's own workspace may have gone with it: the
		// session goes on in a fresh one rather than not at all.
		env.logger.Warn("the lost sandbox's workspace cannot be reused; starting with a new one", "session", env.sid, "err", err)
		spec.Workspace = ""
		delete(spec.Labels, runtimes.MetaOwnsWorkspace)
		h, err = b.Start(ctx, spec)
	}
	if err != nil {
		return &provisioned{gen: gen, err: fmt.Errorf("start a %s sandbox: %w", b.Name(), err)}
	}
	// Remember the handle at once so the session's teardown finds the
	// sandbox even if this incarnation is gone by the time we return.
	if env.memo.setHandle(h) && env.onHandle != nil {
		env.onHandle(h)
	}
	conn, err := b.Connect(ctx, h)
	if err != nil {
		return &provisioned{gen: gen, handle: h, err: fmt.Errorf("connect to the agent at %s: %w", h.AgentAddr, err)}
	}
	if ctx.Err() != nil {
		_ = conn.Close()
		return &provisioned{gen: gen, handle: h, err: ctx.Err()}
	}
	fresh := old == nil && env.spec.Workspace == "" && h.Meta[runtimes.MetaOwnsWorkspace] == "true"
	return &provisioned{gen: gen, handle: h, conn: conn, fresh: fresh}
}

func (r *runtimeActor) onProvisioned(ctx actor.Context, m *provisioned) {
	if m.gen != r.gen {
		if m.conn != nil { // a late result of an earlier incarnation
			r.closeConn(m.conn)
		}
		return
	}
	r.releasePermit(ctx)
	if m.handle != nil {
		r.handle = m.handle
		if r.env.memo.setHandle(m.handle) && r.env.onHandle != nil {
			r.env.onHandle(m.handle)
		}
	}
	if m.err != nil {
		r.fail(m.err.Error())
	}
	r.conn = m.conn
	r.attached = m.attached
	r.setStatus(ctx, eventbus.StatusRuntimeStarted, "info", "")
	r.watch(ctx)
	_, setupFor, _ := r.env.memo.get()
	self, gen, sys, rctx, env, conn := ctx.Self(), r.gen, ctx.ActorSystem(), r.ctx, r.env, r.conn
	// The MCP servers run in the sandbox's agent: every connection, a
	// re-attached one too, gets the session's configuration again (a
	// restarted agent has none). Set-up runs first so that a setup script
	// can install what a stdio server needs.
	mcp := func() string { return applyMCP(rctx, conn, env.spec.MCP, env.backend.Name(), env.sid, env.logger) }
	if m.attached && setupFor == r.handle.ID {
		// Same sandbox, same shell: its set-up still holds.
		if env.spec.MCP == nil || env.spec.MCP.IsZero() {
			r.becomeReady(ctx)
			return
		}
		env.wg.Add(1)
		go func() {
			defer env.wg.Done()
			sys.Root.Send(self, &setupFinished{gen: gen, mcpUnavailable: mcp()})
		}()
		return
	}
	r.setStatus(ctx, eventbus.StatusSettingUpWorkspace, "info", "Setting up workspace...")
	ws := &workspaceSetup{conn: r.conn, cfg: r.env.cfg, spec: r.env.spec, hostEnv: r.env.hostEnv, hostGit: r.env.hostGit, fresh: m.fresh,
		status: func(status, msg string) { sys.Root.Send(self, &setupNote{gen: gen, status: status, msg: msg}) }}
	env.wg.Add(1)
	go func() {
		defer env.wg.Done()
		rec, err := ws.run(rctx)
		done := &setupFinished{gen: gen, record: rec, err: err}
		if err == nil {
			done.mcpUnavailable = mcp()
		}
		sys.Root.Send(self, done)
	}()
}

// watch turns the sandbox's death or the connection's loss into a message.
func (r *runtimeActor) watch(ctx actor.Context) {
	self, gen, sys, rctx, conn, h, b := ctx.Self(), r.gen, ctx.ActorSystem(), r.ctx, r.conn, r.handle, r.env.backend
	r.env.wg.Add(1)
	go func() {
		defer r.env.wg.Done()
		exits, err := b.Wait(rctx, h)
		if err != nil {
			exits = nil // backends without Wait: rely on the connection alone
		}
		var reason string
		select {
		case <-rctx.Done():
			return
		case ex, ok := <-exits:
			if !ok {
				if rctx.Err() != nil {
					return
				}
				reason = "sandbox ended"
			} else {
				reason = exitText(ex)
			}
		case <-conn.Done():
			reason = fmt.Sprintf("agent connection lost: %v", conn.Err())
		}
		sys.Root.Send(self, &connLost{gen: gen, reason: reason})
	}()
}

func (r *runtimeActor) onSetupFinished(ctx actor.Context, m *setupFinished) {
	if m.gen != r.gen {
		return
	}
	if m.err != nil {
		r.fail(fmt.Sprintf("workspace set-up failed: %v", m.err))
	}
	if m.record != nil {
		ctx.Send(ctx.Parent(), &recordPair{action: m.record.action, obs: m.record.obs})
	}
	r.mcpUnavailable = m.mcpUnavailable
	r.becomeReady(ctx)
}

func (r *runtimeActor) becomeReady(ctx actor.Context) {
	r.ready = true
	if !r.attached && !r.startedAt.IsZero() {
		// A re-attach started no sandbox: only fresh starts are timed.
		r.env.metrics.RuntimeStarted(r.env.backend.Name(), time.Since(r.startedAt))
	}
	r.env.memo.markReady(r.handle.ID)
	r.status = eventbus.StatusReady
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	ctx.Send(ctx.Parent(), &runtimeStatus{status: eventbus.StatusReady, level: "info", attached: r.attached, setupFor: r.handle.ID})
}

func (r *runtimeActor) exec(ctx actor.Context, req *execRequest) {
	action := req.action
	if !r.ready || r.busy {
		// The Session only sends when READY and idle; answer anyway.
		ctx.Send(ctx.Parent(), &actionResult{obs: eventbus.NewError(action.ID, "AGENT_ERROR$RUNTIME_NOT_READY",
			"The runtime is not ready to run actions.")})
		return
	}
	if _, isMCP := action.Action.(*eventbus.MCPAction); isMCP && r.mcpUnavailable != "" {
		ctx.Send(ctx.Parent(), &actionResult{obs: mcpUnavailable(action, r.mcpUnavailable)})
		return
	}
	r.busy = true
	self, gen, sys, rctx, conn, chunks := ctx.Self(), r.gen, ctx.ActorSystem(), r.ctx, r.conn, r.env.chunks
	limit := 120.0
	if action.Timeout != nil && *action.Timeout > 0 {
		limit = *action.Timeout
	}
	r.env.wg.Add(1)
	go func() {
		defer r.env.wg.Done()
		// The agent enforces the hard timeout; this bound only catches an
		// agent that stopped answering.
		ectx, cancel := context.WithTimeout(rctx, time.Duration(limit*float64(time.Second))+time.Minute)
		defer cancel()
		id := action.ID
		obs, err := conn.Execute(ectx, req.reqID, action, func(seq uint64, data []byte) {
			chunks.publish(Chunk{ActionID: id, Seq: seq, Data: data})
		})
		if err == nil && obs == nil {
			err = errors.New("agent returned no observation")
		}
		sys.Root.Send(self, &execFinished{gen: gen, obs: obs, err: err})
	}()
}

// files runs a file operation on the agent connection, off the actor
// goroutine, and answers the original requester.
func (r *runtimeActor) files(ctx actor.Context, m *fileReq) {
	if !r.ready || r.conn == nil {
		ctx.Respond(&fileReply{err: fromPB(&actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
			Message: "the session's sandbox is not ready; wait for STATUS$READY and retry"})})
		return
	}
	sender, sys, conn, rctx := ctx.Sender(), ctx.ActorSystem(), r.conn, r.ctx
	r.env.wg.Add(1)
	go func() {
		defer r.env.wg.Done()
		fctx, cancel := context.WithCancel(m.ctx)
		defer cancel()
		stop := context.AfterFunc(rctx, cancel) // the runtime ended: so does the operation
		defer stop()
		sys.Root.Send(sender, &fileReply{err: m.op(fctx, conn)})
	}()
}

func (r *runtimeActor) control(ctx actor.Context, op actorpb.ControlOp) {
	parent := ctx.Parent()
	if r.handle == nil {
		ctx.Send(parent, &controlResult{op: op, err: errors.New("the sandbox is not started yet")})
		return
	}
	sys, h, b := ctx.ActorSystem(), r.handle, r.env.backend
	r.env.wg.Add(1)
	go func() {
		defer r.env.wg.Done()
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		if op == actorpb.ControlOp_CONTROL_OP_PAUSE {
			err = b.Pause(cctx, h)
		} else {
			err = b.Resume(cctx, h)
		}
		sys.Root.Send(parent, &controlResult{op: op, err: err})
	}()
}

// setStatus records a status change and arms the deadline of transitional
// states.
func (r *runtimeActor) setStatus(ctx actor.Context, status, level, msg string) {
	if status == r.status {
		return
	}
	r.status = status
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	var d time.Duration
	switch status {
	case eventbus.StatusStartingRuntime, eventbus.StatusRuntimeStarted:
		d = r.env.cfg.StartTimeout.D()
	case eventbus.StatusSettingUpWorkspace, eventbus.StatusSettingUpGitHooks:
		d = r.env.cfg.SetupTimeout.D()
	}
	if d > 0 {
		self, gen, sys := ctx.Self(), r.gen, ctx.ActorSystem()
		r.timer = time.AfterFunc(d, func() { sys.Root.Send(self, &deadlineHit{gen: gen, status: status}) })
	}
	ctx.Send(ctx.Parent(), &runtimeStatus{status: status, level: level, msg: msg})
}

// fail hands the failure to the Session's supervisor strategy. Failing
// before READY is a failed start (provisioning, connecting, set-up or a
// start deadline).
func (r *runtimeActor) fail(reason string) {
	if !r.ready && !r.startedAt.IsZero() {
		r.env.metrics.RuntimeStartFailed(r.env.backend.Name())
	}
	panic(&runtimeFailure{reason: reason})
}

func (r *runtimeActor) releasePermit(ctx actor.Context) {
	if r.holdingPermit || r.waitingPermit {
		ctx.Send(r.env.manager, &actorpb.ReleaseStartPermit{Backend: r.env.backend.Name(), SessionId: r.env.sid})
		r.holdingPermit, r.waitingPermit = false, false
	}
}

func (r *runtimeActor) cleanup(ctx actor.Context) {
	if r.cleaned {
		return
	}
	r.cleaned = true
	if r.detached && r.conn != nil {
		// Detaching leaves the in-flight action running in the sandbox for
		// the next engine to collect: the connection goes away first, so
		// cancelling the exec below cannot send the agent a cancel.
		_ = r.conn.Close()
		r.conn = nil
	}
	if r.cancel != nil {
		r.cancel()
	}
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.releasePermit(ctx)
	if r.conn != nil {
		r.closeConn(r.conn)
		r.conn = nil
	}
	r.ready, r.busy = false, false
	r.mcpUnavailable = ""
}

func (r *runtimeActor) closeConn(c runtimes.AgentConn) {
	r.env.wg.Add(1)
	go func() {
		defer r.env.wg.Done()
		_ = c.Close()
	}()
}

// exitText describes how a sandbox ended.
func exitText(ex runtimes.Exit) string {
	var r string
	switch {
	case ex.OOMKilled:
		r = "sandbox was killed for lack of memory"
	case ex.Signal != 0:
		r = fmt.Sprintf("sandbox exited: killed by signal %d", ex.Signal)
	default:
		r = fmt.Sprintf("sandbox exited with code %d", ex.Code)
	}
	if ex.Reason != "" {
		r += " (" + ex.Reason + ")"
	}
	return r
}
