package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/eventbus"
)

// query answers the requests that read the session (subscribe, history,
// live output) or reach its sandbox (files). Stream reads wait for the
// writer to open the stream, so they run off the actor goroutine.
func (s *sessionActor) query(ctx actor.Context, msg any) {
	sender, sys, w := ctx.Sender(), ctx.ActorSystem(), s.writer
	switch m := msg.(type) {
	case *chunksReq:
		ctx.Respond(&chunksReply{hub: s.chunks})
	case *fileReq:
		if s.runtimePID == nil || !s.ready {
			ctx.Respond(&fileReply{err: fromPB(&actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
				Message: "the session's sandbox is not ready; wait for STATUS$READY and retry"})})
			return
		}
		ctx.RequestWithCustomSender(s.runtimePID, m, sender)
	case *subscribeReq:
		s.goReply(sys, sender, func() any {
			st, err := w.openStream(m.ctx)
			if err != nil {
				return &subscribeReply{err: err}
			}
			sub, err := st.Subscribe(m.ctx, m.from)
			return &subscribeReply{sub: sub, err: err}
		})
	case *historyReq:
		s.goReply(sys, sender, func() any {
			st, err := w.openStream(m.ctx)
			if err != nil {
				return &historyReply{err: err}
			}
			items, err := st.Search(m.ctx, eventbus.Filter{StartID: m.from})
			if err != nil && w.isClosing() {
				// The session is stopping: once its stream is closed, its
				// events are read from the store.
				items, err = w.readClosed(m.ctx, m.from)
			}
			return &historyReply{items: items, err: err}
		})
	}
}

// goReply runs fn on a goroutine owned by the engine and sends its result
// to to: the one helper for answering a request off the actor goroutine.
func (s *sessionActor) goReply(sys *actor.ActorSystem, to *actor.PID, fn func() any) {
	s.env.wg.Add(1)
	go func() {
		defer s.env.wg.Done()
		sys.Root.Send(to, fn())
	}()
}
