package actors

import (
	"fmt"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	actorpb "corral/actors/proto"
	"corral/eventbus"
	"corral/runtimes"
)

// managerEntry is a live session: queued for admission or running.
type managerEntry struct {
	rec  *sessionRecord
	mode startMode
	info *actorpb.SessionInfo
	pid  *actor.PID
	// reply waits for admission while queued: a CreateSession caller
	// (CreateSessionReply) or a Start caller (ControlReply).
	reply      *actor.PID
	replyStart bool
	// counted is the state this session is counted under in the sessions
	// gauge ("" = not counted).
	counted string
	// leaving: the session is being released or was fenced (cluster
	// mode); it is forgotten once it ended.
	leaving bool
}

type permitPool struct {
	holders map[string]bool // session ids holding a permit
	waiters []permitWaiter
}

type permitWaiter struct {
	sid string
	pid *actor.PID
}

// managerActor is the node-wide Manager: the directory of sessions (which
// Session actor owns which id), admission control (max running, FIFO queue
// with visible positions, max queued) and per-backend start permits. It
// holds no session state beyond what it needs to route and admit: a live
// session's state is its Session actor's; an ended one's is its record.
type managerActor struct {
	e        *Engine
	sessions map[string]*managerEntry
	queue    []string
	running  int
	// ended are the sessions not running: their last state and record
	// (with a durable store, every stopped session of the store).
	ended   map[string]*actorpb.SessionInfo
	records map[string]*sessionRecord
	// endedOrder bounds what an engine on a temporary store remembers of
	// ended sessions (a farm runs many thousands); a durable store's are
	// all kept, as they can be started again.
	endedOrder []string
	permits    map[string]*permitPool

	shuttingDown    bool
	shutdownWaiters []*actor.PID

	// Cluster mode (adopt_manager.go): take-overs in progress and the
	// Release calls waiting for their session to end.
	adopts    map[string]*adoptState
	releasing map[string][]*actor.PID
}

func newManager(e *Engine, records map[string]*sessionRecord) *managerActor {
	m := &managerActor{e: e, sessions: map[string]*managerEntry{}, ended: map[string]*actorpb.SessionInfo{},
		records: records, permits: map[string]*permitPool{}, adopts: map[string]*adoptState{}, releasing: map[string][]*actor.PID{}}
	for sid, rec := range records {
		info := infoToPB(rec.info())
		if !rec.ended() {
			// Not recovered yet: the sandbox may still be there.
			info.State = StateStopped
			info.RuntimeStatus = eventbus.StatusStopped
		}
		m.ended[sid] = info
	}
	return m
}

func (m *managerActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actorpb.CreateSession:
		m.create(ctx, msg)
	case *actorpb.CancelCreate:
		m.cancelCreate(ctx, msg.SessionId)
	case *toSession:
		m.route(ctx, msg)
	case *actorpb.SessionInfo:
		if en, ok := m.sessions[msg.SessionId]; ok && en.pid != nil {
			en.info = msg
			m.count(en, msg.State)
		}
	case *sessionEnded:
		m.sessionEnded(ctx, msg.info, msg.rec)
	case *actor.Terminated:
		m.terminated(ctx, msg.Who)
	case *actorpb.SessionControl:
		m.control(ctx, msg)
	case *actorpb.GetSession:
		if info := m.lookup(msg.SessionId); info != nil {
			ctx.Respond(&actorpb.ControlReply{Info: info})
		} else {
			ctx.Respond(&actorpb.ControlReply{Error: notFound(msg.SessionId)})
		}
	case *actorpb.ListSessions:
		ctx.Respond(&actorpb.ListSessionsReply{Sessions: m.list()})
	case *forgetSession:
		m.forget(ctx, msg) // Engine.Delete
	case *actorpb.AcquireStartPermit:
		m.acquire(ctx, msg)
	case *actorpb.ReleaseStartPermit:
		m.release(ctx, msg.Backend, msg.SessionId)
	case *keptHandles:
		var ids []string
		for _, rec := range m.records {
			if rec.Handle != nil {
				ids = append(ids, rec.Handle.ID)
			}
		}
		// A session just admitted (recovered, or started again) re-attaches
		// to the sandbox its record names before it reports it: keep it.
		for _, en := range m.sessions {
			if en.rec != nil && en.rec.Handle != nil {
				ids = append(ids, en.rec.Handle.ID)
			}
		}
		ctx.Respond(&keptHandlesReply{ids: ids})
	case *recoverAll:
		ctx.Respond(&recoverReply{sessions: m.recoverAll(ctx)})
	case *actorpb.ShutdownEngine:
		m.shutdown(ctx, &actorpb.SessionControl{Op: actorpb.ControlOp_CONTROL_OP_STOP})
	case *detachAll:
		m.shutdown(ctx, &detachSession{})
	case *adoptBegin:
		m.adoptBegin(ctx, msg)
	case *adoptEnd:
		m.adoptEnd(ctx, msg)
	case *releaseReq:
		m.releaseSession(ctx, msg.sid)
	case *sessionLeaving:
		if en, ok := m.sessions[msg.sid]; ok {
			en.leaving = true
		}
	}
	m.e.owned.Store(int64(len(m.sessions))) // Engine.SessionCount, read without asking
}

// HandleFailure keeps a failing Session's state and drops the message that
// broke it: a bug in one session must not take the node down.
func (m *managerActor) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ any) {
	m.e.logger.Error("session actor failed; resuming it", "session", child.String(), "reason", fmt.Sprint(reason))
	sup.ResumeChildren(child)
}

func notFound(sid string) *actorpb.Error {
	return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_FOUND, Message: fmt.Sprintf("no session %q on this node", sid)}
}

func (m *managerActor) lookup(sid string) *actorpb.SessionInfo {
	if en, ok := m.sessions[sid]; ok {
		return m.withPosition(en)
	}
	if info, ok := m.ended[sid]; ok {
		return clonePB(info)
	}
	return nil
}

func (m *managerActor) list() []*actorpb.SessionInfo {
	out := make([]*actorpb.SessionInfo, 0, len(m.sessions)+len(m.ended))
	for _, en := range m.sessions {
		out = append(out, m.withPosition(en))
	}
	for sid, info := range m.ended {
		if _, live := m.sessions[sid]; !live {
			out = append(out, clonePB(info))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedUnixMs != out[j].CreatedUnixMs {
			return out[i].CreatedUnixMs < out[j].CreatedUnixMs
		}
		return out[i].SessionId < out[j].SessionId
	})
	return out
}

// route hands a request to the session's owner with the original sender,
// or answers for a session that has none.
func (m *managerActor) route(ctx actor.Context, msg *toSession) {
	if en, ok := m.sessions[msg.sid]; ok && en.pid != nil {
		ctx.RequestWithCustomSender(en.pid, msg.msg, ctx.Sender())
		return
	}
	perr := notFound(msg.sid)
	if info := m.lookup(msg.sid); info != nil {
		perr = &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
			Message: fmt.Sprintf("session %s is %s; start it again (POST /api/sessions/%s/start) to run actions", msg.sid, stateWord(info.State), msg.sid)}
	}
	ctx.Respond(refusal(msg.msg, perr))
}

// refusal is the reply to a session request that cannot be delivered.
func refusal(msg any, perr *actorpb.Error) any {
	err := fromPB(perr)
	switch msg.(type) {
	case *actorpb.SubmitAction, *submitLocal, *actorpb.DecideConfirmation:
		return &actorpb.SubmitReply{EventId: eventbus.InvalidID, Error: perr}
	case *subscribeReq:
		return &subscribeReply{err: err}
	case *historyReq:
		return &historyReply{err: err}
	case *fileReq:
		return &fileReply{err: err}
	case *chunksReq:
		return &chunksReply{err: err}
	}
	return &actorpb.ControlReply{Error: perr}
}

func (m *managerActor) create(ctx actor.Context, msg *actorpb.CreateSession) {
	spec := specFromPB(msg.Spec)
	if spec.Runtime == "" {
		spec.Runtime = m.e.cfg.DefaultRuntime
	}
	if perr := m.refuseCreate(spec); perr != nil {
		ctx.Respond(&actorpb.CreateSessionReply{Error: perr})
		return
	}
	rec := &sessionRecord{Version: recordVersion, Spec: spec, Created: time.Now().UTC(), State: StateQueued}
	if spec.Attach != nil {
		rec.Handle, rec.SetupFor = spec.Attach, spec.Attach.ID // attaching: the sandbox is set up already
	}
	m.enqueue(ctx, rec, modeNew, false, ctx.Sender())
}

func (m *managerActor) refuseCreate(spec SessionSpec) *actorpb.Error {
	if m.shuttingDown {
		return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: "the engine is shutting down"}
	}
	if _, ok := m.sessions[spec.ID]; ok {
		return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS, Message: fmt.Sprintf("session %q already exists", spec.ID)}
	}
	if _, ok := m.ended[spec.ID]; ok {
		return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS,
			Message: fmt.Sprintf("session %q already exists (stopped); start it again instead of creating it", spec.ID)}
	}
	b, err := m.e.registry.Get(spec.Runtime)
	if err != nil {
		return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_UNKNOWN_RUNTIME, Message: err.Error()}
	}
	if r := spec.Resources; r.MemoryBytes < 0 || r.NanoCPUs < 0 || r.PidsLimit < 0 {
		return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID,
			Message: fmt.Sprintf("resources must not be negative (memory_bytes %d, nano_cpus %d, pids_limit %d); 0 means the runtime's default", r.MemoryBytes, r.NanoCPUs, r.PidsLimit)}
	}
	if spec.MCP != nil {
		if err := spec.MCP.Validate(); err != nil {
			return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: err.Error()}
		}
	}
	if spec.Resources != (runtimes.Resources{}) && !b.Capabilities().Limits {
		return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED,
			Message: fmt.Sprintf("runtime %q cannot enforce per-session resource limits; leave \"resources\" out or use a runtime that can (docker)", spec.Runtime)}
	}
	return nil
}

// enqueue admits rec at once when there is room, else queues it. The
// caller (ctx.Sender) is answered on admission.
// enqueue admits rec or queues it; reply (nil: nobody) is answered once
// the session is admitted or refused.
func (m *managerActor) enqueue(ctx actor.Context, rec *sessionRecord, mode startMode, start bool, reply *actor.PID) {
	sid := rec.Spec.ID
	en := &managerEntry{rec: rec, mode: mode, replyStart: start, info: &actorpb.SessionInfo{SessionId: sid, Runtime: rec.Spec.Runtime,
		State: StateQueued, CreatedUnixMs: rec.Created.UnixMilli(), Workspace: rec.Spec.Workspace, Image: rec.Spec.Image}}
	if m.running < m.e.cfg.MaxSessions && len(m.queue) == 0 {
		m.sessions[sid] = en
		if err := m.admit(ctx, en, reply); err != nil {
			delete(m.sessions, sid)
			m.answerAdmission(ctx, reply, start, nil, &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()})
		}
		return
	}
	if len(m.queue) >= m.e.cfg.MaxQueued {
		m.answerAdmission(ctx, reply, start, nil, &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_QUEUE_FULL,
			Message: fmt.Sprintf("admission queue full: %d sessions running (max_sessions %d) and %d waiting (max_queued %d); retry later or raise [engine] max_sessions / max_queued",
				m.running, m.e.cfg.MaxSessions, len(m.queue), m.e.cfg.MaxQueued)})
		return
	}
	en.reply = reply
	m.sessions[sid] = en
	m.queue = append(m.queue, sid)
	m.count(en, StateQueued)
	m.e.metrics.SetAdmissionQueueLength(len(m.queue))
}

func (m *managerActor) answerAdmission(ctx actor.Context, to *actor.PID, start bool, info *actorpb.SessionInfo, perr *actorpb.Error) {
	if to == nil {
		return
	}
	if start {
		ctx.Send(to, &actorpb.ControlReply{Info: info, Error: perr})
		return
	}
	ctx.Send(to, &actorpb.CreateSessionReply{Info: info, Error: perr})
}

func (m *managerActor) withPosition(en *managerEntry) *actorpb.SessionInfo {
	info := clonePB(en.info)
	if en.pid != nil {
		return info
	}
	for i, sid := range m.queue {
		if sid == en.info.SessionId {
			info.QueuePosition = int32(i + 1)
		}
	}
	return info
}

// admit spawns the session; on success the session itself answers reply
// once its record is durable.
func (m *managerActor) admit(ctx actor.Context, en *managerEntry, reply *actor.PID) error {
	sid := en.rec.Spec.ID
	props, err := m.e.sessionProps(en.rec, en.mode, admitWaiter{to: reply, start: en.replyStart})
	if err != nil {
		return err
	}
	pid, err := ctx.SpawnNamed(props, "session-"+sid)
	if err != nil {
		return fmt.Errorf("spawn session %s: %w", sid, err)
	}
	en.pid = pid
	en.info.State = StateStarting
	m.count(en, StateStarting)
	m.running++
	delete(m.ended, sid)
	delete(m.records, sid)
	return nil
}

// count moves en to state to in the sessions gauge; to == "" removes it.
// The gauge counts the sessions this Manager holds (queued to stopping): an
// ended session leaves it.
func (m *managerActor) count(en *managerEntry, to string) {
	m.e.metrics.SessionStateChanged(en.rec.Spec.Runtime, en.counted, to)
	en.counted = to
}

func (m *managerActor) admitNext(ctx actor.Context) {
	for len(m.queue) > 0 && m.running < m.e.cfg.MaxSessions && !m.shuttingDown {
		sid := m.queue[0]
		m.queue = m.queue[1:]
		m.e.metrics.SetAdmissionQueueLength(len(m.queue))
		en := m.sessions[sid]
		reply := en.reply
		en.reply = nil
		if err := m.admit(ctx, en, reply); err != nil {
			m.count(en, "")
			delete(m.sessions, sid)
			m.answerAdmission(ctx, reply, en.replyStart, nil, &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()})
		}
	}
}

func (m *managerActor) cancelCreate(ctx actor.Context, sid string) {
	en, ok := m.sessions[sid]
	if !ok {
		return
	}
	if en.pid == nil {
		m.dequeue(sid)
		m.count(en, "")
		delete(m.sessions, sid)
		return
	}
	ctx.Send(en.pid, &actorpb.SessionControl{SessionId: sid, Op: actorpb.ControlOp_CONTROL_OP_STOP})
}

func (m *managerActor) dequeue(sid string) {
	for i, q := range m.queue {
		if q == sid {
			m.queue = append(m.queue[:i], m.queue[i+1:]...)
			m.e.metrics.SetAdmissionQueueLength(len(m.queue))
			return
		}
	}
}

func (m *managerActor) control(ctx actor.Context, msg *actorpb.SessionControl) {
	sid := msg.SessionId
	en, live := m.sessions[sid]
	switch {
	case live && en.pid != nil:
		ctx.RequestWithCustomSender(en.pid, msg, ctx.Sender())
	case live: // still queued
		m.controlQueued(ctx, en, msg)
	case msg.Op == actorpb.ControlOp_CONTROL_OP_START:
		m.restart(ctx, sid)
	default:
		info, ok := m.ended[sid]
		if !ok {
			ctx.Respond(&actorpb.ControlReply{Error: notFound(sid)})
			return
		}
		if msg.Op == actorpb.ControlOp_CONTROL_OP_STOP {
			ctx.Respond(&actorpb.ControlReply{Info: clonePB(info)})
			return
		}
		if msg.Op == actorpb.ControlOp_CONTROL_OP_WAIT_READY && info.Error != "" {
			ctx.Respond(&actorpb.ControlReply{Info: clonePB(info), Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
				Message: fmt.Sprintf("session %s failed to start: %s", sid, info.Error)}})
			return
		}
		ctx.Respond(&actorpb.ControlReply{Info: clonePB(info), Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
			Message: fmt.Sprintf("session %s is %s; start it again first", sid, stateWord(info.State))}})
	}
}

func (m *managerActor) controlQueued(ctx actor.Context, en *managerEntry, msg *actorpb.SessionControl) {
	sid := msg.SessionId
	switch msg.Op {
	case actorpb.ControlOp_CONTROL_OP_STOP:
	case actorpb.ControlOp_CONTROL_OP_START:
		ctx.Respond(&actorpb.ControlReply{Info: m.withPosition(en)})
		return
	default:
		ctx.Respond(&actorpb.ControlReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
			Message: fmt.Sprintf("session %s is still queued for admission", sid)}})
		return
	}
	m.dequeue(sid)
	m.count(en, "")
	delete(m.sessions, sid)
	en.info.State = StateStopped
	en.rec.State = StateStopped
	m.remember(sid, en.info, en.rec)
	m.answerAdmission(ctx, en.reply, en.replyStart, nil, &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
		Message: fmt.Sprintf("session %s was stopped while queued", sid)})
	ctx.Respond(&actorpb.ControlReply{Info: clonePB(en.info)})
}

// restart admits a stopped session again under its id.
func (m *managerActor) restart(ctx actor.Context, sid string) {
	rec, ok := m.records[sid]
	if !ok {
		ctx.Respond(&actorpb.ControlReply{Error: notFound(sid)})
		return
	}
	if m.shuttingDown {
		ctx.Respond(&actorpb.ControlReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: "the engine is shutting down"}})
		return
	}
	if rec.Spec.Runtime == "" {
		ctx.Respond(&actorpb.ControlReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED,
			Message: fmt.Sprintf("session %s was stored by an older Corral without its runtime settings; its events can be read but it cannot be started again", sid)}})
		return
	}
	if _, err := m.e.registry.Get(rec.Spec.Runtime); err != nil {
		ctx.Respond(&actorpb.ControlReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_UNKNOWN_RUNTIME,
			Message: fmt.Sprintf("session %s ran on runtime %q, which this server does not run: %v", sid, rec.Spec.Runtime, err)}})
		return
	}
	again := *rec
	again.Error, again.State = "", StateQueued
	if !rec.Spec.KeepRuntimeAlive && !m.e.cfg.KeepRuntimeAlive {
		again.Handle, again.SetupFor = nil, "" // released at stop: a new sandbox
	}
	m.enqueue(ctx, &again, modeRestart, true, ctx.Sender())
}

// recoverAll admits every stored session that was running when the
// previous process ended.
func (m *managerActor) recoverAll(ctx actor.Context) []string {
	var ids []string
	for sid, rec := range m.records {
		if rec.ended() {
			continue
		}
		if _, err := m.e.registry.Get(rec.Spec.Runtime); err != nil {
			m.e.logger.Error("a running session cannot be recovered: its runtime is not enabled", "session", sid, "runtime", rec.Spec.Runtime)
			continue
		}
		ids = append(ids, sid)
	}
	sort.Strings(ids)
	for _, sid := range ids {
		// Nobody waits on a recovered session's admission: the Recover
		// caller is answered with the list below (an admission answer
		// sent to it would be taken for that list).
		m.enqueue(ctx, m.records[sid], modeRecover, false, nil)
	}
	return ids
}

func (m *managerActor) terminated(ctx actor.Context, who *actor.PID) {
	for _, en := range m.sessions {
		if en.pid != nil && en.pid.Equal(who) {
			// A session that ended without its last word (it failed hard).
			info := clonePB(en.info)
			if info.State != StateError {
				info.State = StateStopped
			}
			m.sessionEnded(ctx, info, nil)
			return
		}
	}
}

func (m *managerActor) sessionEnded(ctx actor.Context, info *actorpb.SessionInfo, rec *sessionRecord) {
	sid := info.SessionId
	en, ok := m.sessions[sid]
	if !ok || en.pid == nil {
		// Terminated (a system message, delivered first) overtook the
		// session's last word: the final state and record replace what
		// Terminated guessed.
		if _, ended := m.ended[sid]; ended && !ok && rec != nil {
			m.ended[sid], m.records[sid] = info, rec
		}
		return
	}
	if rec == nil {
		rec = en.rec
		rec.State = info.State
	}
	m.remember(sid, info, rec)
	m.count(en, "")
	delete(m.sessions, sid)
	m.running--
	if en.leaving {
		m.left(ctx, sid)
	}
	// A session that ended while waiting for or holding a start permit
	// gives it back.
	for backend := range m.permits {
		m.release(ctx, backend, sid)
	}
	m.admitNext(ctx)
	if m.shuttingDown && m.running == 0 {
		for _, w := range m.shutdownWaiters {
			ctx.Send(w, &actorpb.ShutdownReply{})
		}
		m.shutdownWaiters = nil
	}
}

// maxEnded bounds the ended sessions an engine on a temporary store
// remembers for Get, List and Start.
const maxEnded = 4096

func (m *managerActor) remember(sid string, info *actorpb.SessionInfo, rec *sessionRecord) {
	m.ended[sid], m.records[sid] = info, rec
	if m.e.owner.Durable {
		return
	}
	m.endedOrder = append(m.endedOrder, sid)
	for len(m.endedOrder) > maxEnded {
		old := m.endedOrder[0]
		m.endedOrder = m.endedOrder[1:]
		if _, live := m.sessions[old]; !live {
			delete(m.ended, old)
			delete(m.records, old)
		}
	}
}

func (m *managerActor) acquire(ctx actor.Context, msg *actorpb.AcquireStartPermit) {
	p := m.permits[msg.Backend]
	if p == nil {
		p = &permitPool{holders: map[string]bool{}}
		m.permits[msg.Backend] = p
	}
	if p.holders[msg.SessionId] || len(p.holders) < m.e.cfg.MaxConcurrentStarts {
		p.holders[msg.SessionId] = true
		ctx.Respond(&actorpb.StartPermitGranted{Backend: msg.Backend})
		return
	}
	p.waiters = append(p.waiters, permitWaiter{sid: msg.SessionId, pid: ctx.Sender()})
}

func (m *managerActor) release(ctx actor.Context, backend, sid string) {
	p := m.permits[backend]
	if p == nil {
		return
	}
	delete(p.holders, sid)
	kept := p.waiters[:0]
	for _, w := range p.waiters {
		if w.sid != sid {
			kept = append(kept, w)
		}
	}
	p.waiters = kept
	for len(p.waiters) > 0 && len(p.holders) < m.e.cfg.MaxConcurrentStarts {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.holders[w.sid] = true
		ctx.Send(w.pid, &actorpb.StartPermitGranted{Backend: backend})
	}
}

// shutdown refuses new sessions, drops the queue and sends each running
// session end (a STOP, or a detachSession); the caller is answered once
// every session has ended.
func (m *managerActor) shutdown(ctx actor.Context, end any) {
	m.shuttingDown = true
	for _, sid := range m.queue {
		en := m.sessions[sid]
		m.count(en, "")
		delete(m.sessions, sid)
		m.answerAdmission(ctx, en.reply, en.replyStart, nil, &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: "the engine is shutting down"})
	}
	m.queue = nil
	m.e.metrics.SetAdmissionQueueLength(0)
	if m.running == 0 {
		ctx.Respond(&actorpb.ShutdownReply{})
		return
	}
	m.shutdownWaiters = append(m.shutdownWaiters, ctx.Sender())
	for _, en := range m.sessions {
		if en.pid != nil {
			ctx.Send(en.pid, end)
		}
	}
}

var _ actor.SupervisorStrategy = (*managerActor)(nil)

// clonePB copies a SessionInfo before it is sent: a message must never be
// changed after it left the actor (the receiver reads it concurrently).
func clonePB(i *actorpb.SessionInfo) *actorpb.SessionInfo {
	return proto.Clone(i).(*actorpb.SessionInfo)
}

func stateWord(state string) string {
	switch state {
	case StateStopped:
		return "stopped"
	case StateError:
		return "failed"
	}
	return state
}
