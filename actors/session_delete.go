package actors

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
)

type (
	// forgetSession asks the Manager to drop an ended session from its
	// directory (List, Get, Start no longer know it); the reply is a
	// ControlReply with the session's last state.
	forgetSession struct{ sid string }
)

// Delete stops a session (as Stop does) and then removes it for good: the
// engine forgets it and its events and record are deleted from the store,
// so it is gone from List and from the next process on the store too. The
// returned info is the session's last state. A session started again
// while it is being deleted is left alone (ErrAlreadyExists).
func (e *Engine) Delete(ctx context.Context, sid string) (SessionInfo, error) {
	if _, err := e.Stop(ctx, sid); err != nil {
		return SessionInfo{}, err
	}
	// The Session answered Stop after its stream closed and after it sent
	// the Manager its last word, so the Manager holds it as ended now.
	res, err := e.ask(ctx, e.manager, &forgetSession{sid: sid})
	if err != nil {
		return SessionInfo{}, err
	}
	rep := res.(*actorpb.ControlReply)
	if rep.Error != nil {
		return infoFromPB(rep.Info), fromPB(rep.Error)
	}
	// The store is touched outside the Manager (no file I/O in Receive).
	// A session created again under this id in between holds its log
	// open, and Store.Delete refuses it: the new session keeps its events.
	if err := e.store.Delete(sid); err != nil {
		return infoFromPB(rep.Info), &Error{Code: actorpb.ErrorCode_ERROR_CODE_INTERNAL,
			Message: fmt.Sprintf("session %s was stopped and forgotten, but its stored events could not be deleted: %v", sid, err)}
	}
	return infoFromPB(rep.Info), nil
}

// forget drops an ended session from the Manager's directory.
func (m *managerActor) forget(ctx actor.Context, msg *forgetSession) {
	if en, live := m.sessions[msg.sid]; live {
		ctx.Respond(&actorpb.ControlReply{Info: m.withPosition(en), Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS,
			Message: fmt.Sprintf("session %s was started again while it was being deleted; stop it and delete it again", msg.sid)}})
		return
	}
	info, ok := m.ended[msg.sid]
	if !ok {
		ctx.Respond(&actorpb.ControlReply{Error: notFound(msg.sid)})
		return
	}
	m.drop(msg.sid)
	ctx.Respond(&actorpb.ControlReply{Info: info})
}
