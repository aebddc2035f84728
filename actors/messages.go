package actors

import (
	"context"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/eventbus"
	"corral/runtimes"
)

// Node-local messages. They carry Go values (contexts, subscriptions,
// connections) and so never cross nodes; the cluster issue gives the ones
// a remote caller needs protobuf twins.
type (
	// toSession asks the Manager to hand msg to session sid's owner with
	// the original sender, or to answer for a session that is not running.
	toSession struct {
		sid string
		msg any
	}

	subscribeReq struct {
		ctx  context.Context
		from int64
	}
	subscribeReply struct {
		sub *eventbus.Subscription
		err error
	}
	historyReq struct {
		ctx  context.Context
		from int64
	}
	historyReply struct {
		items []*eventbus.Item
		err   error
	}
	chunksReq   struct{}
	chunksReply struct {
		hub *chunkHub
		err error
	}
	// fileReq runs op on the session's agent connection (in the Runtime,
	// off its goroutine); the answer is a fileReply.
	fileReq struct {
		ctx context.Context
		op  func(context.Context, runtimes.AgentConn) error
	}
	fileReply struct{ err error }

	// recoverAll asks the Manager to admit every stored session that was
	// running when the previous process ended; the reply is recoverReply.
	recoverAll   struct{}
	recoverReply struct{ sessions []string }
	// keptHandles asks the Manager for the sandboxes that sessions which
	// are not running still name (kept alive, or not recovered yet).
	keptHandles      struct{}
	keptHandlesReply struct{ ids []string }
	// submitLocal is actorpb.SubmitAction from this process's Engine: the
	// action travels as an event the Session may keep (the Engine's copy),
	// and a waiting caller gets the stored observation as a localObsReply,
	// so no JSON is encoded or decoded between Engine and Session.
	// Refusals and errors are actorpb.SubmitReply, as for SubmitAction.
	submitLocal struct {
		ev   *eventbus.Event
		wait bool
	}
	localObsReply struct {
		id  int64
		obs *eventbus.Event // the caller's copy
	}
	// detachAll ends every session without stopping its sandbox or
	// recording an end (Engine.Detach); the reply is ShutdownReply.
	detachAll struct{}
	// detachSession is detachAll for one Session.
	detachSession struct{}
	// sessionEnded is the Session's last word to the Manager: its final
	// state and record.
	sessionEnded struct {
		info *actorpb.SessionInfo
		rec  *sessionRecord
	}
)

// admitWaiter is who waits for a session's admission: a CreateSession
// caller (CreateSessionReply) or a Start caller (ControlReply, start). The
// Session answers once its first record is durable, so an acknowledged
// session survives a crash right after.
type admitWaiter struct {
	to    *actor.PID
	start bool
}

// startMode says why a Session actor is started.
type startMode int

const (
	modeNew     startMode = iota // CreateSession
	modeRecover                  // the session was running when the previous process ended
	modeRestart                  // Start of a stopped session
)

func (m startMode) String() string {
	return [...]string{"new", "recover", "restart"}[m]
}
