package actors

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	actorpb "corral/actors/proto"
)

// maxEnded bounds how many ended sessions the Manager remembers for Get.
const maxEnded = 4096

type managerEntry struct {
	info  *actorpb.SessionInfo
	spec  *actorpb.SessionSpec
	pid   *actor.PID
	reply *actor.PID // CreateSession waiter while queued
	// counted is the state this session is counted under in the sessions
	// gauge ("" = not counted).
	counted string
}

type permitPool struct {
	holders map[string]bool // session ids holding a permit
	waiters []permitWaiter
}

type permitWaiter struct {
	sid string
	pid *actor.PID
}

// managerActor is the node-wide Manager: session registry, admission
// control (max running, FIFO queue with visible positions, max queued) and
// per-backend start permits.
type managerActor struct {
	e          *Engine
	sessions   map[string]*managerEntry
	queue      []string
	running    int
	ended      map[string]*actorpb.SessionInfo
	endedOrder []string
	permits    map[string]*permitPool

	shuttingDown    bool
	shutdownWaiters []*actor.PID
}

func newManager(e *Engine) *managerActor {
	return &managerActor{e: e, sessions: map[string]*managerEntry{}, ended: map[string]*actorpb.SessionInfo{}, permits: map[string]*permitPool{}}
}

func (m *managerActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actorpb.CreateSession:
		m.create(ctx, msg)
	case *actorpb.CancelCreate:
		m.cancelCreate(ctx, msg.SessionId)
	case *actorpb.SessionInfo:
		if en, ok := m.sessions[msg.SessionId]; ok && en.pid != nil {
			en.info = msg
			m.count(en, msg.State)
		}
	case *actorpb.SessionEnded:
		m.ended1(ctx, msg.Info)
	case *actor.Terminated:
		for sid, en := range m.sessions {
			if en.pid != nil && en.pid.Equal(msg.Who) {
				info := clonePB(en.info)
				if info.State != StateError {
					info.State = StateStopped
				}
				m.ended1(ctx, info)
				_ = sid
				break
			}
		}
	case *actorpb.SessionControl:
		m.control(ctx, msg)
	case *actorpb.GetSession:
		if en, ok := m.sessions[msg.SessionId]; ok {
			ctx.Respond(&actorpb.ControlReply{Info: m.withPosition(en)})
		} else if info, ok := m.ended[msg.SessionId]; ok {
			ctx.Respond(&actorpb.ControlReply{Info: clonePB(info)})
		} else {
			ctx.Respond(&actorpb.ControlReply{Error: notFound(msg.SessionId)})
		}
	case *actorpb.ListSessions:
		out := make([]*actorpb.SessionInfo, 0, len(m.sessions))
		for _, en := range m.sessions {
			out = append(out, m.withPosition(en))
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].CreatedUnixMs != out[j].CreatedUnixMs {
				return out[i].CreatedUnixMs < out[j].CreatedUnixMs
			}
			return out[i].SessionId < out[j].SessionId
		})
		ctx.Respond(&actorpb.ListSessionsReply{Sessions: out})
	case *actorpb.AcquireStartPermit:
		m.acquire(ctx, msg)
	case *actorpb.ReleaseStartPermit:
		m.release(ctx, msg.Backend, msg.SessionId)
	case *actorpb.ShutdownEngine:
		m.shutdown(ctx)
	}
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

func (m *managerActor) create(ctx actor.Context, msg *actorpb.CreateSession) {
	spec := msg.Spec
	if spec == nil {
		spec = &actorpb.SessionSpec{}
	}
	if m.shuttingDown {
		ctx.Respond(&actorpb.CreateSessionReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: "the engine is shutting down"}})
		return
	}
	if spec.SessionId == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		spec.SessionId = hex.EncodeToString(b[:])
	}
	if spec.Runtime == "" {
		spec.Runtime = m.e.cfg.DefaultRuntime
	}
	if _, ok := m.sessions[spec.SessionId]; ok {
		ctx.Respond(&actorpb.CreateSessionReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS,
			Message: fmt.Sprintf("session %q already exists", spec.SessionId)}})
		return
	}
	if _, err := m.e.registry.Get(spec.Runtime); err != nil {
		ctx.Respond(&actorpb.CreateSessionReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_UNKNOWN_RUNTIME, Message: err.Error()}})
		return
	}
	en := &managerEntry{spec: spec, info: &actorpb.SessionInfo{SessionId: spec.SessionId, Runtime: spec.Runtime,
		State: StateQueued, CreatedUnixMs: time.Now().UnixMilli(), Workspace: spec.Workspace}}
	if m.running < m.e.cfg.MaxSessions && len(m.queue) == 0 {
		m.sessions[spec.SessionId] = en
		if err := m.admit(ctx, en); err != nil {
			delete(m.sessions, spec.SessionId)
			ctx.Respond(&actorpb.CreateSessionReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()}})
			return
		}
		ctx.Respond(&actorpb.CreateSessionReply{Info: clonePB(en.info)})
		return
	}
	if len(m.queue) >= m.e.cfg.MaxQueued {
		ctx.Respond(&actorpb.CreateSessionReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_QUEUE_FULL,
			Message: fmt.Sprintf("admission queue full: %d sessions running (max_sessions %d) and %d waiting (max_queued %d); retry later or raise [engine] max_sessions / max_queued",
				m.running, m.e.cfg.MaxSessions, len(m.queue), m.e.cfg.MaxQueued)}})
		return
	}
	en.reply = ctx.Sender()
	m.sessions[spec.SessionId] = en
	m.queue = append(m.queue, spec.SessionId)
	m.count(en, StateQueued)
	m.e.metrics.SetAdmissionQueueLength(len(m.queue))
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

func (m *managerActor) admit(ctx actor.Context, en *managerEntry) error {
	s, err := m.e.newSession(ctx.Self(), en.spec)
	if err != nil {
		return err
	}
	pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return s }), "session-"+en.spec.SessionId)
	if err != nil {
		return fmt.Errorf("spawn session %s: %w", en.spec.SessionId, err)
	}
	m.e.addRef(en.spec.SessionId, &sessionRef{pid: pid, writer: s.ref.writer, chunks: s.ref.chunks})
	en.pid = pid
	en.info.State = StateStarting
	m.count(en, StateStarting)
	m.running++
	return nil
}

// count moves en to state to in the sessions gauge; to == "" removes it.
// The gauge counts the sessions this Manager holds (queued to stopping): an
// ended session leaves it.
func (m *managerActor) count(en *managerEntry, to string) {
	m.e.metrics.SessionStateChanged(en.spec.Runtime, en.counted, to)
	en.counted = to
}

func (m *managerActor) admitNext(ctx actor.Context) {
	for len(m.queue) > 0 && m.running < m.e.cfg.MaxSessions && !m.shuttingDown {
		sid := m.queue[0]
		m.queue = m.queue[1:]
		m.e.metrics.SetAdmissionQueueLength(len(m.queue))
		en := m.sessions[sid]
		if err := m.admit(ctx, en); err != nil {
			m.count(en, "")
			delete(m.sessions, sid)
			ctx.Send(en.reply, &actorpb.CreateSessionReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()}})
			continue
		}
		ctx.Send(en.reply, &actorpb.CreateSessionReply{Info: clonePB(en.info)})
		en.reply = nil
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
	en, ok := m.sessions[msg.SessionId]
	if !ok {
		if info, ok := m.ended[msg.SessionId]; ok && msg.Op == actorpb.ControlOp_CONTROL_OP_STOP {
			ctx.Respond(&actorpb.ControlReply{Info: clonePB(info)})
			return
		}
		ctx.Respond(&actorpb.ControlReply{Error: notFound(msg.SessionId)})
		return
	}
	if en.pid == nil { // still queued
		if msg.Op != actorpb.ControlOp_CONTROL_OP_STOP {
			ctx.Respond(&actorpb.ControlReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
				Message: fmt.Sprintf("session %s is still queued for admission", msg.SessionId)}})
			return
		}
		m.dequeue(msg.SessionId)
		m.count(en, "")
		delete(m.sessions, msg.SessionId)
		en.info.State = StateStopped
		m.remember(en.info)
		ctx.Send(en.reply, &actorpb.CreateSessionReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
			Message: fmt.Sprintf("session %s was stopped while queued", msg.SessionId)}})
		ctx.Respond(&actorpb.ControlReply{Info: clonePB(en.info)})
		return
	}
	ctx.Forward(en.pid)
}

func (m *managerActor) ended1(ctx actor.Context, info *actorpb.SessionInfo) {
	// Terminated (a system message) may overtake the session's SessionEnded:
	// the final info always replaces what was remembered.
	if prev, ok := m.ended[info.SessionId]; ok && (prev.State == StateStopped || prev.State == StateError) && info.State != StateStopped && info.State != StateError {
		return
	}
	m.remember(info)
	en, ok := m.sessions[info.SessionId]
	if !ok || en.pid == nil {
		return
	}
	m.count(en, "")
	delete(m.sessions, info.SessionId)
	m.running--
	m.e.dropRef(info.SessionId)
	// A session that ended while waiting for or holding a start permit
	// gives it back.
	for backend := range m.permits {
		m.release(ctx, backend, info.SessionId)
	}
	m.admitNext(ctx)
	if m.shuttingDown && m.running == 0 {
		for _, w := range m.shutdownWaiters {
			ctx.Send(w, &actorpb.ShutdownReply{})
		}
		m.shutdownWaiters = nil
	}
}

func (m *managerActor) remember(info *actorpb.SessionInfo) {
	if _, ok := m.ended[info.SessionId]; !ok {
		m.endedOrder = append(m.endedOrder, info.SessionId)
	}
	m.ended[info.SessionId] = info
	for len(m.endedOrder) > maxEnded {
		delete(m.ended, m.endedOrder[0])
		m.endedOrder = m.endedOrder[1:]
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

func (m *managerActor) shutdown(ctx actor.Context) {
	m.shuttingDown = true
	for _, sid := range m.queue {
		en := m.sessions[sid]
		m.count(en, "")
		delete(m.sessions, sid)
		ctx.Send(en.reply, &actorpb.CreateSessionReply{Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: "the engine is shutting down"}})
	}
	m.queue = nil
	m.e.metrics.SetAdmissionQueueLength(0)
	if m.running == 0 {
		ctx.Respond(&actorpb.ShutdownReply{})
		return
	}
	m.shutdownWaiters = append(m.shutdownWaiters, ctx.Sender())
	for sid, en := range m.sessions {
		if en.pid != nil {
			ctx.Send(en.pid, &actorpb.SessionControl{SessionId: sid, Op: actorpb.ControlOp_CONTROL_OP_STOP})
		}
	}
}

var _ actor.SupervisorStrategy = (*managerActor)(nil)

// clonePB copies a SessionInfo before it is sent: a message must never be
// changed after it left the actor (the receiver reads it concurrently).
func clonePB(i *actorpb.SessionInfo) *actorpb.SessionInfo {
	return proto.Clone(i).(*actorpb.SessionInfo)
}
