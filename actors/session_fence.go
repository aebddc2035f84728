package actors

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/eventbus"
)

// Session messages from its writer (eventstream_replica.go).
type (
	// fencedNotice: another node took the session over.
	fencedNotice struct{ err error }
	// replicaNotice: the replicated store refuses writes for lack of
	// quorum (down) or takes them again.
	replicaNotice struct {
		down bool
		err  error
	}
)

// watchWriter has the writer tell this Session when it is fenced or the
// replicated store is down or back.
func (s *sessionActor) watchWriter(ctx actor.Context) {
	self, sys := ctx.Self(), ctx.ActorSystem()
	s.writer.setHooks(writerHooks{
		fenced:  func(err error) { sys.Root.Send(self, &fencedNotice{err: err}) },
		replica: func(down bool, err error) { sys.Root.Send(self, &replicaNotice{down: down, err: err}) },
	})
}

// onFenced ends the Session at once because another node owns the session
// now: nothing more is appended (the writer refuses), nothing is restarted,
// the sandbox is left to the new owner (the Runtime only closes its
// connection), and the actions in flight or queued are left to the new
// owner, which finds them in the replicated stream and answers each once.
// The Manager forgets the session once it ended.
func (s *sessionActor) onFenced(ctx actor.Context, err error) {
	if s.fenced {
		return
	}
	s.fenced = true
	s.logger.Warn("another node owns this session now; it stops here, leaving its sandbox and pending actions to the new owner",
		"session", s.sid, "err", err)
	s.gone = &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_UNAVAILABLE,
		Message: fmt.Sprintf("session %s is owned by another node now; retry (the cluster routes requests to its owner)", s.sid)}
	ctx.Send(s.manager, &sessionLeaving{sid: s.sid})
	// A session already stopping ends by its own path (its last writes
	// are refused, and its stream closes after them).
	s.detach(ctx)
}

// onRelease ends the Session without ending the session, for another node
// to adopt it (Engine.Release): as Detach does for one session.
func (s *sessionActor) onRelease(ctx actor.Context) {
	if s.gone == nil {
		s.gone = &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_UNAVAILABLE,
			Message: fmt.Sprintf("session %s moved to another node; retry there (the cluster routes requests to its owner); an action in flight is answered on its stream by the new owner", s.sid)}
	}
	s.detach(ctx)
}

// onReplica pauses the queue while the replicated store has no quorum, and
// goes on once a write succeeded again.
func (s *sessionActor) onReplica(ctx actor.Context, m *replicaNotice) {
	if m.down {
		if s.replicaErr == nil {
			s.logger.Warn("the replicated event store has no quorum: the session's queue is paused and new actions are refused until it is back",
				"session", s.sid, "err", m.err)
		}
		s.replicaErr = m.err
		return
	}
	if s.replicaErr != nil {
		s.logger.Info("the replicated event store takes writes again; the session goes on", "session", s.sid)
	}
	s.replicaErr = nil
	s.dispatch(ctx)
}

// appendError is what a submitter hears when its action was not stored.
func (s *sessionActor) appendError(err error) *actorpb.Error {
	switch {
	case errors.Is(err, eventbus.ErrFenced):
		return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_UNAVAILABLE,
			Message: fmt.Sprintf("session %s is owned by another node now; the action was not stored; retry (the cluster routes requests to its owner)", s.sid)}
	case errors.Is(err, eventbus.ErrReplicaUnavailable):
		return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_UNAVAILABLE,
			Message: fmt.Sprintf("session %s: the action was not stored because the cluster's replicated event store has no quorum; retry once enough nodes are back (%v)", s.sid, err)}
	}
	return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()}
}

// refuseWrites answers a submit while the replicated store is down; false:
// go on.
func (s *sessionActor) refuseWrites(ctx actor.Context) bool {
	if s.replicaErr == nil {
		return false
	}
	ctx.Respond(&actorpb.SubmitReply{EventId: eventbus.InvalidID, Error: &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_UNAVAILABLE,
		Message: fmt.Sprintf("session %s is paused: the cluster's replicated event store has no quorum, and an earlier event of the session waits for it; the action was not stored; retry once enough nodes are back (%v)", s.sid, s.replicaErr)}})
	return true
}
