package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/eventbus"
	"corral/metrics"
	"corral/runtimes"
)

// Session states (SessionInfo.State).
const (
	StateQueued   = "QUEUED"
	StateStarting = "STARTING"
	StateRunning  = "RUNNING"
	StatePaused   = "PAUSED"
	StateStopping = "STOPPING"
	StateStopped  = "STOPPED"
	StateError    = "ERROR"
)

// Error ids of the error observations the engine itself emits.
const (
	ErrIDRuntimeRestarted = "AGENT_ERROR$RUNTIME_RESTARTED"
	ErrIDRuntimeFailed    = "AGENT_ERROR$RUNTIME_FAILED"
	ErrIDSessionStopped   = "AGENT_ERROR$SESSION_STOPPED"
	// ErrIDSandboxLost answers the action that was running when Corral's
	// process ended, when its sandbox did not survive either.
	ErrIDSandboxLost = "AGENT_ERROR$SANDBOX_LOST"
)

// Texts OpenHands' run_action answers with (reference §1.5).
const (
	thinkText    = "Your thought has been logged."
	rejectedText = "Action has been rejected by the user! Waiting for further user input."
)

// Tags of appendReq, saying what to do once the event is stored.
type (
	tagSubmit struct {
		reply *actor.PID
		wait  bool // reply with the observation (SubmitAction.wait_observation)
		local bool // submitLocal: reply with a localObsReply
	}
	tagObs   struct{}
	tagFinal struct{}
)

// Session-internal messages.
type (
	taskDone struct {
		content string
		obs     eventbus.Observation
	}
	teardownDone struct{ err error }
	streamClosed struct{}
	// handleChanged: the Runtime started or re-attached a sandbox.
	handleChanged struct{ h *runtimes.Handle }
	// scanned: the stored actions still unanswered when a recovered
	// session starts, in id order.
	scanned struct {
		unanswered []*eventbus.Event
		err        error
	}
)

// sessionActor is the Session <id> actor and the only owner of a
// session's state: OpenHands' controller + runtime dispatch (a FIFO of
// stored actions, one in flight, the confirmation gate), the supervisor of
// its Runtime, the owner of its stream writer, live output hub and record.
type sessionActor struct {
	sid     string
	node    string // cluster node id ("" outside a cluster)
	mode    startMode
	admit   admitWaiter   // answered once the first record is durable
	rec     sessionRecord // what is persisted; changed only here
	cfg     Config
	env     *runtimeEnv
	writer  *streamWriter
	chunks  *chunkHub
	store   *eventbus.Store
	logger  *slog.Logger
	manager *actor.PID
	metrics *metrics.Registry

	streamPID, runtimePID *actor.PID

	state         string
	runtimeStatus string
	lastActivity  time.Time
	ready         bool
	attached      bool // the current runtime re-attached to a sandbox that survived
	queue         []*eventbus.Event
	inflight      *eventbus.Event
	awaiting      map[int64]*eventbus.Event
	failures      int
	restartTimer  *time.Timer
	stopping      bool
	detaching     bool
	finalStatus   string
	stopWaiters   []*actor.PID
	readyWaiters  []*actor.PID
	ctlWaiters    map[actorpb.ControlOp][]*actor.PID
	obsWaiters    map[int64]obsWaiter // action id -> Run caller
	// recovering holds dispatch until the stored actions left unanswered
	// by the previous process are known (modeRecover only); unanswered
	// are those actions, the first of which may still be running in a
	// re-attached sandbox.
	recovering bool
	resumed    bool // resumeUnanswered ran (once per recovered session)
	unanswered []*eventbus.Event
	// pending times the stored actions that expect an observation, for
	// ObserveAction (only while a metrics registry is set).
	pending map[int64]actionMark
	// Cluster mode (session_fence.go): fenced, another node owns the
	// session; gone, what callers hear once it left this node (fenced or
	// released); replicaErr, why the replicated store refuses writes (the
	// queue is paused while set).
	fenced     bool
	gone       *actorpb.Error
	replicaErr error
}

// obsWaiter is a Run caller waiting for an action's observation; local
// callers (submitLocal) get it as an event, others as JSON.
type obsWaiter struct {
	pid   *actor.PID
	local bool
}

// actionMark is a stored action awaiting its observation.
type actionMark struct {
	typ    string
	stored time.Time
}

func newSessionActor(e *Engine, backend runtimes.Backend, rec *sessionRecord, mode startMode, admit admitWaiter) *sessionActor {
	s := &sessionActor{sid: rec.Spec.ID, node: e.nodeID, mode: mode, admit: admit, rec: *rec, cfg: e.cfg, chunks: &chunkHub{}, store: e.store,
		logger: e.logger, manager: e.manager, metrics: e.metrics}
	s.writer = newStreamWriter(e.store, s.sid, e.sys, e.logger, &e.wg, e.metrics)
	memo := &runtimeMemo{handle: rec.Handle, setupFor: rec.SetupFor}
	// A recovered or restarted session was ready before: its runtime is
	// restarted on failure like any other that was once ready.
	memo.everReady = mode != modeNew && rec.SetupFor != ""
	s.env = &runtimeEnv{sid: s.sid, backend: backend, spec: rec.Spec, cfg: e.cfg, manager: e.manager, owner: e.owner,
		hostEnv: e.hostEnv, logger: e.logger, chunks: s.chunks, wg: &e.wg, memo: memo,
		hostGit: backend.Capabilities().HostUser, permitOK: true, metrics: e.metrics}
	return s
}

func (s *sessionActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.started(ctx)
	case *fencedNotice:
		s.onFenced(ctx, m.err)
	case *replicaNotice:
		s.onReplica(ctx, m)
	case *releaseSession:
		s.onRelease(ctx)
	case *actorpb.SubmitAction:
		s.submit(ctx, m)
	case *submitLocal:
		s.submitEvent(ctx, m.ev, m.wait, true)
	case *actorpb.DecideConfirmation:
		s.decide(ctx, m)
	case *subscribeReq, *historyReq, *chunksReq, *fileReq:
		s.query(ctx, m)
	case *interruptReq:
		s.interrupt(ctx, m)
	case *logsReq:
		s.logs(ctx)
	case *forkReq:
		s.forkState(ctx)
	case *appended:
		s.onAppended(ctx, m)
	case *runtimeStatus:
		s.onRuntimeStatus(ctx, m)
	case *recordSaved:
		s.answerAdmission(ctx, m.err)
	case *handleChanged:
		s.rec.Handle = m.h
		s.saveRecord(ctx)
	case *scanned:
		s.onScanned(ctx, m)
	case *actionResult:
		if s.inflight != nil && !s.stopping {
			s.failures = 0
			s.complete(ctx, m.obs)
		}
	case *taskDone:
		if s.inflight != nil && !s.stopping {
			s.complete(ctx, eventbus.NewObservation(s.inflight.ID, m.content, m.obs))
		}
	case *recordPair:
		s.append(ctx, m.action, nil, m.obs)
	case *actorpb.SessionControl:
		s.control(ctx, m)
	case *controlResult:
		s.onControlResult(ctx, m)
	case *detachSession:
		s.detach(ctx)
	case *teardownDone:
		s.onTeardown(ctx, m)
	case *streamClosed:
		s.finish(ctx)
	case *actor.Stopped:
		s.chunks.closeAll()
		if s.restartTimer != nil {
			s.restartTimer.Stop()
		}
	}
}

func (s *sessionActor) started(ctx actor.Context) {
	s.state = StateStarting
	s.lastActivity = s.rec.lastActivityOrCreated()
	s.awaiting = map[int64]*eventbus.Event{}
	s.ctlWaiters = map[actorpb.ControlOp][]*actor.PID{}
	s.obsWaiters = map[int64]obsWaiter{}
	s.pending = map[int64]actionMark{}
	s.watchWriter(ctx)
	s.rec.State = StateStarting
	s.saveRecordNotify(ctx.Self())
	self, sys := ctx.Self(), ctx.ActorSystem()
	s.env.onHandle = func(h *runtimes.Handle) { sys.Root.Send(self, &handleChanged{h: h}) }
	s.streamPID = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return &eventStreamActor{w: s.writer} }))
	if s.mode == modeRecover {
		s.recovering = true
		s.scanUnanswered(ctx)
	}
	env := s.env
	s.runtimePID = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return newRuntimeActor(env) }))
	s.publishInfo(ctx)
}

// answerAdmission tells the CreateSession or Start caller that the session
// is admitted, once its record is durable.
func (s *sessionActor) answerAdmission(ctx actor.Context, err error) {
	w := s.admit
	if w.to == nil {
		return
	}
	s.admit = admitWaiter{}
	var perr *actorpb.Error
	if err != nil {
		perr = &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INTERNAL,
			Message: fmt.Sprintf("session %s started but its record could not be stored (it would not survive a restart): %v", s.sid, err)}
	}
	if w.start {
		ctx.Send(w.to, &actorpb.ControlReply{Info: s.info(), Error: perr})
		return
	}
	ctx.Send(w.to, &actorpb.CreateSessionReply{Info: s.info(), Error: perr})
}

// HandleFailure supervises the Runtime (and, defensively, the
// EventStream). It runs on this session's goroutine. It never escalates.
func (s *sessionActor) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ any) {
	if s.runtimePID == nil || !child.Equal(s.runtimePID) {
		s.logger.Error("session child failed; resuming it", "session", s.sid, "child", child.String(), "reason", fmt.Sprint(reason))
		sup.ResumeChildren(child)
		return
	}
	why := fmt.Sprint(reason)
	if f, ok := reason.(*runtimeFailure); ok {
		why = f.reason
	} else {
		why = "runtime panic: " + why
	}
	s.ready = false
	s.runtimeStatus = eventbus.StatusErrorRuntimeDisconnected
	_, _, everReady := s.env.memo.get()
	giveUp := s.stopping || !everReady || s.failures >= s.cfg.RestartMaxRetries
	ctx := sup.(actor.Context)
	if everReady && !s.stopping {
		s.appendStatus(ctx, eventbus.StatusErrorRuntimeDisconnected, "error", why, nil)
	}
	if s.inflight != nil && !s.stopping {
		id, content := ErrIDRuntimeRestarted, fmt.Sprintf("The runtime failed while running this action (%s) and is being restarted. The action may or may not have taken effect; check before retrying.", why)
		if giveUp {
			id, content = ErrIDRuntimeFailed, fmt.Sprintf("The runtime failed while running this action (%s) and could not be recovered.", why)
		}
		s.complete(ctx, eventbus.NewError(s.inflight.ID, id, content))
	}
	if giveUp {
		sup.StopChildren(child)
		s.runtimePID = nil
		if !s.stopping {
			if everReady {
				why = fmt.Sprintf("%s; gave up after %d restarts", why, s.rec.Restarts)
			}
			s.rec.Error = why
			s.beginStop(ctx, eventbus.StatusError)
		}
		return
	}
	s.failures++
	s.rec.Restarts++
	s.metrics.RuntimeRestarted(s.env.backend.Name())
	d := backoff(s.cfg.RestartInitialBackoff.D(), s.cfg.RestartMaxBackoff.D(), s.failures)
	s.logger.Warn("runtime failed; restarting", "session", s.sid, "reason", why, "attempt", s.failures, "backoff", d)
	s.restartTimer = time.AfterFunc(d, func() { sup.RestartChildren(child) })
	s.publishInfo(ctx)
}

func (s *sessionActor) submit(ctx actor.Context, m *actorpb.SubmitAction) {
	if s.stopping {
		ctx.Respond(&actorpb.SubmitReply{Error: s.notRunning()})
		return
	}
	ev, err := eventbus.Unmarshal(m.EventJson)
	if err != nil {
		ctx.Respond(&actorpb.SubmitReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: "submitted event is not valid OpenHands JSON: " + err.Error()}})
		return
	}
	s.submitEvent(ctx, ev, m.WaitObservation, false)
}

// submitEvent stores a submitted action (ev is the Session's own) and
// queues it.
func (s *sessionActor) submitEvent(ctx actor.Context, ev *eventbus.Event, wait, local bool) {
	reply := ctx.Sender()
	if s.stopping {
		ctx.Respond(&actorpb.SubmitReply{Error: s.notRunning()})
		return
	}
	if s.refuseWrites(ctx) {
		return
	}
	if !ev.IsAction() {
		ctx.Respond(&actorpb.SubmitReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID,
			Message: fmt.Sprintf("event is a %q observation; only actions can be submitted", ev.Type())}})
		return
	}
	ev.ID, ev.Cause = eventbus.InvalidID, nil
	if ev.Source == "" {
		ev.Source = eventbus.SourceAgent
	}
	s.append(ctx, ev, &tagSubmit{reply: reply, wait: wait, local: local}, nil)
}

func (s *sessionActor) decide(ctx actor.Context, m *actorpb.DecideConfirmation) {
	if s.stopping {
		ctx.Respond(&actorpb.SubmitReply{Error: s.notRunning()})
		return
	}
	if s.refuseWrites(ctx) {
		return
	}
	act, ok := s.awaiting[m.EventId]
	if !ok {
		ctx.Respond(&actorpb.SubmitReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_FOUND,
			Message: fmt.Sprintf("no action %d awaits confirmation in session %s", m.EventId, s.sid)}})
		return
	}
	delete(s.awaiting, m.EventId)
	// OpenHands' controller sets the state and re-adds the same action as a
	// new event (agent_controller.py:693-703).
	again := act.Clone()
	again.ID, again.Timestamp = eventbus.InvalidID, ""
	state := eventbus.Rejected
	if m.Confirm {
		state = eventbus.Confirmed
	}
	again.Action.(eventbus.Confirmable).SetConfirmation(state)
	s.append(ctx, again, &tagSubmit{reply: ctx.Sender()}, nil)
}

func (s *sessionActor) onAppended(ctx actor.Context, m *appended) {
	if m.err == nil {
		s.lastActivity = time.Now()
	} else if errors.Is(m.err, eventbus.ErrFenced) {
		s.onFenced(ctx, m.err)
	}
	switch t := m.tag.(type) {
	case *tagSubmit:
		s.onSubmitted(ctx, m, t)
	case *tagFinal:
		if m.err != nil && !s.fenced {
			s.logger.Error("recording the final status", "session", s.sid, "err", m.err)
		}
		s.closeStream(ctx)
	case *tagObs:
		s.onObserved(ctx, m)
	default:
		if m.err != nil && !s.fenced {
			s.logger.Error("event not stored", "session", s.sid, "err", m.err)
		}
	}
}

func (s *sessionActor) onSubmitted(ctx actor.Context, m *appended, t *tagSubmit) {
	if m.err != nil {
		ctx.Send(t.reply, &actorpb.SubmitReply{EventId: eventbus.InvalidID, Error: s.appendError(m.err)})
		return
	}
	expects := ExpectsObservation(m.ev)
	if expects && s.metrics != nil {
		s.pending[m.ev.ID] = actionMark{typ: m.ev.Type(), stored: time.Now()}
	}
	if t.wait && expects {
		s.obsWaiters[m.ev.ID] = obsWaiter{pid: t.reply, local: t.local}
	} else {
		ctx.Send(t.reply, &actorpb.SubmitReply{EventId: m.ev.ID})
	}
	if s.stopping {
		s.answerUnrun(ctx, m.ev)
		return
	}
	s.queue = append(s.queue, m.ev)
	s.dispatch(ctx)
}

func (s *sessionActor) onObserved(ctx actor.Context, m *appended) {
	if m.err != nil {
		if !s.fenced {
			s.logger.Error("observation not stored", "session", s.sid, "err", m.err)
		}
		return
	}
	if m.ev.Cause == nil {
		return
	}
	cause := *m.ev.Cause
	if mark, ok := s.pending[cause]; ok {
		delete(s.pending, cause)
		s.metrics.ObserveAction(mark.typ, s.env.backend.Name(), actionOutcome(m.ev), time.Since(mark.stored))
	}
	w, ok := s.obsWaiters[cause]
	if !ok {
		return
	}
	delete(s.obsWaiters, cause)
	if w.local {
		// m.ev is the stored copy Stream.Append returned to this Session
		// alone (subscribers share another), and nothing here keeps it.
		ctx.Send(w.pid, &localObsReply{id: cause, obs: m.ev})
		return
	}
	js, err := eventbus.Marshal(m.ev)
	if err != nil {
		ctx.Send(w.pid, &actorpb.SubmitReply{EventId: cause, Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()}})
		return
	}
	ctx.Send(w.pid, &actorpb.SubmitReply{EventId: cause, ObservationJson: js})
}

// dispatch runs queued actions in order, OpenHands' run_action order
// (reference §1.5), while the session is idle.
func (s *sessionActor) dispatch(ctx actor.Context) {
	for s.inflight == nil && len(s.queue) > 0 && !s.stopping && !s.recovering && s.state != StatePaused && s.replicaErr == nil {
		ev := s.queue[0]
		if ev.Action.Runnable() && !s.ready {
			return // wait for STATUS$READY
		}
		s.queue[0] = nil
		s.queue = s.queue[1:]
		if !ev.Action.Runnable() {
			switch a := ev.Action.(type) {
			case *eventbus.AgentThinkAction:
				s.inflight = ev
				s.complete(ctx, eventbus.NewObservation(ev.ID, thinkText, &eventbus.AgentThinkObservation{}))
			case *eventbus.TaskTrackingAction:
				s.inflight = ev
				s.runTaskTracking(ctx, a)
			}
			continue // other non-runnable actions: NullObservation, dropped
		}
		if c, ok := ev.Action.(eventbus.Confirmable); ok {
			switch c.Confirmation() {
			case eventbus.AwaitingConfirmation:
				s.awaiting[ev.ID] = ev
				continue
			case eventbus.Rejected:
				s.inflight = ev
				s.complete(ctx, eventbus.NewObservation(ev.ID, rejectedText, &eventbus.UserRejectObservation{}))
				continue
			}
		}
		s.inflight = ev
		run := ev.Clone()
		if run.Timeout == nil {
			// _handle_action: set_hard_timeout(sandbox.timeout, blocking=False),
			// on the runtime's copy only (the stored action keeps its form).
			run.SetHardTimeout(float64(s.cfg.Timeout), false)
		}
		ctx.Send(s.runtimePID, &execRequest{action: run, reqID: requestID(s.sid, ev.ID)})
	}
}

func (s *sessionActor) runTaskTracking(ctx actor.Context, a *eventbus.TaskTrackingAction) {
	self, sys := ctx.Self(), ctx.ActorSystem()
	s.env.wg.Add(1)
	go func() {
		defer s.env.wg.Done()
		dir, err := sessionDir(s.store, s.cfg.DataDir, s.sid)
		if err != nil {
			sys.Root.Send(self, &taskDone{content: err.Error(), obs: &eventbus.ErrorObservation{}})
			return
		}
		content, obs := taskTracking(dir, a)
		sys.Root.Send(self, &taskDone{content: content, obs: obs})
	}()
}

// complete answers the in-flight action: cause, tool_call_metadata and
// source come from the action (_handle_action); NullObservation is dropped.
func (s *sessionActor) complete(ctx actor.Context, obs *eventbus.Event) {
	act := s.inflight
	s.inflight = nil
	if _, null := obs.Observation.(*eventbus.NullObservation); !null {
		o := obs.Clone()
		id := act.ID
		o.ID, o.Timestamp, o.Cause = eventbus.InvalidID, "", &id
		if len(act.ToolCallMetadata) > 0 {
			o.ToolCallMetadata = act.ToolCallMetadata
		}
		o.Source = act.Source
		if o.Source == "" {
			o.Source = eventbus.SourceAgent
		}
		s.append(ctx, o, &tagObs{}, nil)
	}
	s.dispatch(ctx)
}

func (s *sessionActor) onRuntimeStatus(ctx actor.Context, m *runtimeStatus) {
	if s.stopping {
		return
	}
	s.runtimeStatus = m.status
	s.appendStatus(ctx, m.status, m.level, m.msg, nil)
	if m.status != eventbus.StatusReady {
		s.publishInfo(ctx)
		return
	}
	s.ready, s.attached = true, m.attached
	if s.state == StateStarting {
		s.state = StateRunning
	}
	s.rec.State, s.rec.SetupFor = StateRunning, m.setupFor
	s.saveRecord(ctx)
	// The Manager hears of RUNNING before any waiter does, so a Get right
	// after WaitReady never sees STARTING.
	s.publishInfo(ctx)
	for _, w := range s.readyWaiters {
		ctx.Send(w, &actorpb.ControlReply{Info: s.info()})
	}
	s.readyWaiters = nil
	s.resumeUnanswered(ctx)
	s.dispatch(ctx)
}

func (s *sessionActor) control(ctx actor.Context, m *actorpb.SessionControl) {
	switch m.Op {
	case actorpb.ControlOp_CONTROL_OP_STOP:
		if ctx.Sender() != nil {
			s.stopWaiters = append(s.stopWaiters, ctx.Sender())
		}
		if !s.stopping {
			s.beginStop(ctx, eventbus.StatusStopped)
		}
	case actorpb.ControlOp_CONTROL_OP_START:
		ctx.Respond(&actorpb.ControlReply{Info: s.info()}) // running already
	case actorpb.ControlOp_CONTROL_OP_WAIT_READY:
		switch {
		case s.stopping:
			ctx.Respond(&actorpb.ControlReply{Info: s.info(), Error: s.startFailure()})
		case s.ready:
			ctx.Respond(&actorpb.ControlReply{Info: s.info()})
		default:
			s.readyWaiters = append(s.readyWaiters, ctx.Sender())
		}
	case actorpb.ControlOp_CONTROL_OP_PAUSE, actorpb.ControlOp_CONTROL_OP_RESUME:
		if s.stopping || s.runtimePID == nil {
			ctx.Respond(&actorpb.ControlReply{Error: s.notRunning()})
			return
		}
		if !s.env.backend.Capabilities().Pause {
			ctx.Respond(&actorpb.ControlReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED,
				Message: fmt.Sprintf("runtime %q cannot pause or resume sandboxes", s.env.backend.Name())}})
			return
		}
		s.ctlWaiters[m.Op] = append(s.ctlWaiters[m.Op], ctx.Sender())
		ctx.Send(s.runtimePID, &controlRequest{op: m.Op})
	default:
		ctx.Respond(&actorpb.ControlReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: "unknown control operation " + m.Op.String()}})
	}
}

func (s *sessionActor) onControlResult(ctx actor.Context, m *controlResult) {
	var perr *actorpb.Error
	if m.err != nil {
		perr = &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INTERNAL, Message: m.err.Error()}
	} else if !s.stopping {
		if m.op == actorpb.ControlOp_CONTROL_OP_PAUSE {
			s.state = StatePaused
		} else {
			s.state = StateRunning
			s.dispatch(ctx)
		}
		s.publishInfo(ctx)
	}
	for _, w := range s.ctlWaiters[m.op] {
		ctx.Send(w, &actorpb.ControlReply{Info: s.info(), Error: perr})
	}
	delete(s.ctlWaiters, m.op)
}

// beginStop ends the session: the Runtime is stopped, every action that
// will not run gets an error observation, the sandbox is released off the
// actor goroutine, then the final status is recorded.
func (s *sessionActor) beginStop(ctx actor.Context, final string) {
	s.stopping = true
	s.finalStatus = final
	s.state = StateStopping
	if s.restartTimer != nil {
		s.restartTimer.Stop()
	}
	if s.runtimePID != nil {
		ctx.Stop(s.runtimePID)
		s.runtimePID = nil
	}
	if s.inflight != nil {
		act := s.inflight
		s.inflight = nil
		s.appendAnswer(ctx, act, s.stopError(act, true))
	}
	// Actions a previous process left unanswered: the first may have been
	// running in the sandbox.
	for i, ev := range s.unanswered {
		if i == 0 && ev.Action.Runnable() {
			s.appendAnswer(ctx, ev, s.stopError(ev, true))
			continue
		}
		s.answerUnrun(ctx, ev)
	}
	s.unanswered = nil
	for _, ev := range s.queue {
		s.answerUnrun(ctx, ev)
	}
	s.queue = nil
	for _, w := range s.readyWaiters {
		ctx.Send(w, &actorpb.ControlReply{Info: s.info(), Error: s.startFailure()})
	}
	s.readyWaiters = nil
	for op, ws := range s.ctlWaiters {
		for _, w := range ws {
			ctx.Send(w, &actorpb.ControlReply{Error: s.notRunning()})
		}
		delete(s.ctlWaiters, op)
	}
	s.publishInfo(ctx)
	env, self, sys := s.env, ctx.Self(), ctx.ActorSystem()
	keep := s.rec.Spec.KeepRuntimeAlive || s.cfg.KeepRuntimeAlive
	env.wg.Add(1)
	go func() {
		defer env.wg.Done()
		sys.Root.Send(self, &teardownDone{err: releaseSandbox(env, keep)})
	}()
}

// releaseSandbox stops and destroys the session's sandbox unless it is kept
// alive.
func releaseSandbox(env *runtimeEnv, keep bool) error {
	h, _, _ := env.memo.get()
	if h == nil || keep {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*env.cfg.StopTimeout.D()+10*time.Second)
	defer cancel()
	var errs []string
	if err := env.backend.Stop(ctx, h, env.cfg.StopTimeout.D()); err != nil {
		errs = append(errs, "stop: "+err.Error())
	}
	if err := env.backend.Destroy(ctx, h); err != nil {
		errs = append(errs, "destroy: "+err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox %s: %s", h.ID, strings.Join(errs, "; "))
	}
	return nil
}

// answerUnrun records what a stored action that will never run gets.
func (s *sessionActor) answerUnrun(ctx actor.Context, ev *eventbus.Event) {
	if !ev.Action.Runnable() {
		return
	}
	if c, ok := ev.Action.(eventbus.Confirmable); ok && c.Confirmation() == eventbus.AwaitingConfirmation {
		return // still unanswered in OpenHands too: nothing was to run yet
	}
	s.appendAnswer(ctx, ev, s.stopError(ev, false))
}

func (s *sessionActor) stopError(ev *eventbus.Event, running bool) *eventbus.Event {
	if s.finalStatus == eventbus.StatusError {
		return eventbus.NewError(ev.ID, ErrIDRuntimeFailed, "The runtime failed and could not be recovered ("+s.rec.Error+"); this action was not run.")
	}
	if running {
		return eventbus.NewError(ev.ID, ErrIDSessionStopped, "The session was stopped while this action was running; it may or may not have taken effect.")
	}
	return eventbus.NewError(ev.ID, ErrIDSessionStopped, "The session was stopped before this action ran.")
}

func (s *sessionActor) appendAnswer(ctx actor.Context, act, obs *eventbus.Event) {
	id := act.ID
	obs.Cause = &id
	obs.ToolCallMetadata = act.ToolCallMetadata
	obs.Source = act.Source
	if obs.Source == "" {
		obs.Source = eventbus.SourceAgent
	}
	s.append(ctx, obs, &tagObs{}, nil)
}

func (s *sessionActor) append(ctx actor.Context, ev *eventbus.Event, tag any, pair *eventbus.Event) {
	ctx.Request(s.streamPID, &appendReq{ev: ev, tag: tag, pairWith: pair})
}

func (s *sessionActor) appendStatus(ctx actor.Context, status, level, msg string, tag any) {
	ev := eventbus.NewObservation(eventbus.InvalidID, msg, &eventbus.RuntimeStatusObservation{Status: status, Level: level})
	ev.Source = eventbus.SourceEnvironment
	s.append(ctx, ev, tag, nil)
}

// actionOutcome classifies an observation for metrics.ObserveAction. An
// observation that is none of the others is OK, whatever its content says:
// a command that exits non-zero was still run and answered.
func actionOutcome(obs *eventbus.Event) string {
	switch o := obs.Observation.(type) {
	case *eventbus.ErrorObservation:
		return metrics.OutcomeError
	case *eventbus.UserRejectObservation:
		return metrics.OutcomeRejected
	case *eventbus.CmdOutputObservation:
		// The hard timeout (bash session and cli runtime) and the no-change
		// timeout both leave exit code -1 and say so in the suffix.
		if o.Metadata.ExitCode == -1 && (strings.Contains(o.Metadata.Suffix, "timed out after") ||
			strings.Contains(o.Metadata.Suffix, "has no new output after")) {
			return metrics.OutcomeTimeout
		}
	case *eventbus.IPythonRunCellObservation:
		if strings.Contains(obs.Content, "[Execution timed out (") {
			return metrics.OutcomeTimeout
		}
	}
	return metrics.OutcomeOK
}

func levelOf(status string) string {
	if strings.HasPrefix(status, "STATUS$ERROR") {
		return "error"
	}
	return "info"
}

func (s *sessionActor) notRunning() *actorpb.Error {
	if s.gone != nil {
		return s.gone
	}
	return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
		Message: fmt.Sprintf("session %s is %s and accepts no more actions", s.sid, strings.ToLower(s.state))}
}

func (s *sessionActor) info() *actorpb.SessionInfo {
	i := &actorpb.SessionInfo{
		SessionId:          s.sid,
		Runtime:            s.env.backend.Name(),
		State:              s.state,
		RuntimeStatus:      s.runtimeStatus,
		CreatedUnixMs:      s.rec.Created.UnixMilli(),
		LastActivityUnixMs: s.lastActivity.UnixMilli(),
		Error:              s.rec.Error,
		Restarts:           int32(s.rec.Restarts),
		Workspace:          s.rec.Spec.Workspace,
		Image:              s.rec.Spec.Image,
	}
	if h, _, _ := s.env.memo.get(); h != nil {
		i.Workspace = h.Workspace
		i.HandleJson, _ = json.Marshal(h)
	}
	return i
}

func (s *sessionActor) publishInfo(ctx actor.Context) { ctx.Send(s.manager, s.info()) }
