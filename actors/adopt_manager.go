package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
)

// Manager messages of Adopt and Release (cluster mode).
type (
	// adoptBegin asks whether this Adopt call takes session sid over
	// (adoptBeginReply.lead); token names the call.
	adoptBegin struct {
		sid   string
		token uint64
	}
	// adoptBeginReply: lead, take the session over and send adoptEnd; else
	// err is the answer (nil: the engine runs the session already, or
	// another Adopt call took it over).
	adoptBeginReply struct {
		lead bool
		err  error
	}
	// adoptEnd ends take-over token: with rec (err nil) the session is
	// admitted or, stopped, known; the reply is adoptEndReply.
	adoptEnd struct {
		sid   string
		token uint64
		rec   *sessionRecord
		err   error
	}
	adoptEndReply struct{ err error }
	// adoptState is a take-over in progress. waiting is its leader while
	// a Session of the same id still winds down here (it is told to go
	// once that Session ended); waiters are other Adopt calls.
	adoptState struct {
		token   uint64
		waiting *actor.PID
		waiters []*actor.PID
	}

	releaseReq   struct{ sid string }
	releaseReply struct{ err error }
	// releaseSession asks a Session to end without ending the session
	// (Engine.Release).
	releaseSession struct{}
	// sessionLeaving tells the Manager a Session is ending because another
	// node owns it now (fenced): it is forgotten once it ended.
	sessionLeaving struct{ sid string }
)

func (m *managerActor) adoptBegin(ctx actor.Context, msg *adoptBegin) {
	sid := msg.sid
	if st := m.adopts[sid]; st != nil {
		st.waiters = append(st.waiters, ctx.Sender())
		return
	}
	if m.shuttingDown {
		ctx.Respond(&adoptBeginReply{err: fromPB(&actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: "the engine is shutting down"})})
		return
	}
	en, live := m.sessions[sid]
	switch {
	case live && en.leaving:
		// Released or fenced here and still ending: take it over once
		// its stream is closed.
		m.adopts[sid] = &adoptState{token: msg.token, waiting: ctx.Sender()}
	case live:
		ctx.Respond(&adoptBeginReply{})
	default:
		// A stopped session known here is taken over again too: another
		// node may have run it since this one knew it.
		m.adopts[sid] = &adoptState{token: msg.token}
		ctx.Respond(&adoptBeginReply{lead: true})
	}
}

func (m *managerActor) adoptEnd(ctx actor.Context, msg *adoptEnd) {
	st := m.adopts[msg.sid]
	if st == nil || st.token != msg.token {
		m.respond(ctx, &adoptEndReply{err: msg.err}) // an Adopt call that never led
		return
	}
	delete(m.adopts, msg.sid)
	err := msg.err
	if err == nil {
		err = m.install(ctx, msg.rec)
	}
	for _, w := range st.waiters {
		ctx.Send(w, &adoptBeginReply{err: err})
	}
	m.respond(ctx, &adoptEndReply{err: err})
}

func (m *managerActor) respond(ctx actor.Context, msg any) {
	if ctx.Sender() != nil {
		ctx.Respond(msg)
	}
}

// install makes an adopted session known: a stopped one as ended, one
// that was running admitted (or queued) as a recovered session.
func (m *managerActor) install(ctx actor.Context, rec *sessionRecord) error {
	sid := rec.Spec.ID
	refuse := func(code actorpb.ErrorCode, format string, args ...any) error {
		return fromPB(&actorpb.Error{Code: code, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case m.shuttingDown:
		return refuse(actorpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "adopt session %s: the engine is shutting down", sid)
	case m.sessions[sid] != nil:
		return refuse(actorpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS, "adopt session %s: a session of that id was created on this node meanwhile", sid)
	case rec.ended():
		info := infoToPB(rec.info())
		m.remember(sid, info, rec)
		return nil
	case (m.running >= m.e.cfg.MaxSessions || len(m.queue) > 0) && len(m.queue) >= m.e.cfg.MaxQueued:
		return refuse(actorpb.ErrorCode_ERROR_CODE_QUEUE_FULL,
			"adopt session %s: this node's admission queue is full (%d running, max_sessions %d; %d waiting, max_queued %d); adopt it on another node",
			sid, m.running, m.e.cfg.MaxSessions, len(m.queue), m.e.cfg.MaxQueued)
	}
	m.enqueue(ctx, rec, modeRecover, false, nil)
	if m.sessions[sid] == nil {
		return refuse(actorpb.ErrorCode_ERROR_CODE_INTERNAL, "adopt session %s: its Session could not be started here (see the log)", sid)
	}
	return nil
}

func (m *managerActor) releaseSession(ctx actor.Context, sid string) {
	if _, adopting := m.adopts[sid]; adopting {
		ctx.Respond(&releaseReply{err: fromPB(&actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_UNAVAILABLE,
			Message: fmt.Sprintf("release session %s: this node is adopting it right now; retry once Adopt returned", sid)})})
		return
	}
	en, live := m.sessions[sid]
	switch {
	case live && en.pid != nil:
		en.leaving = true
		m.releasing[sid] = append(m.releasing[sid], ctx.Sender())
		if len(m.releasing[sid]) == 1 {
			ctx.Send(en.pid, &releaseSession{})
		}
	case live && en.mode == modeNew:
		ctx.Respond(&releaseReply{err: fromPB(&actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
			Message: fmt.Sprintf("release session %s: it is still queued for admission on this node and has nothing stored yet, so it cannot move; stop it or wait until it runs", sid)})})
	case live: // an adopted or restarted session still queued: its store is the replica's
		m.dequeue(sid)
		m.count(en, "")
		delete(m.sessions, sid)
		m.drop(sid)
		m.answerAdmission(ctx, en.reply, en.replyStart, nil, &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_UNAVAILABLE,
			Message: fmt.Sprintf("session %s moved to another node while queued for admission here; retry", sid)})
		ctx.Respond(&releaseReply{})
	default:
		m.drop(sid)
		ctx.Respond(&releaseReply{})
	}
}

// left forgets a Session that ended because it was released or fenced,
// answers the Release calls and lets a take-over waiting for it go on.
func (m *managerActor) left(ctx actor.Context, sid string) {
	m.drop(sid)
	for _, w := range m.releasing[sid] {
		ctx.Send(w, &releaseReply{})
	}
	delete(m.releasing, sid)
	if st := m.adopts[sid]; st != nil && st.waiting != nil {
		ctx.Send(st.waiting, &adoptBeginReply{lead: true})
		st.waiting = nil
	}
}

// drop forgets an ended session (Delete, Release).
func (m *managerActor) drop(sid string) {
	delete(m.ended, sid)
	delete(m.records, sid)
	for i, s := range m.endedOrder {
		if s == sid {
			m.endedOrder = append(m.endedOrder[:i], m.endedOrder[i+1:]...)
			break
		}
	}
}
