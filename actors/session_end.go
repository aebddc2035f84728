package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/eventbus"
)

// onTeardown records the final status once the sandbox is released; the
// stream is closed after it is stored.
func (s *sessionActor) onTeardown(ctx actor.Context, m *teardownDone) {
	if m.err != nil {
		s.logger.Warn("releasing the sandbox", "session", s.sid, "err", m.err)
	}
	msg := ""
	if s.finalStatus == eventbus.StatusError {
		msg = s.rec.Error
	}
	s.appendStatus(ctx, s.finalStatus, levelOf(s.finalStatus), msg, &tagFinal{})
}

// closeStream closes the writer after everything queued (the final status,
// the final record) is stored; streamClosed follows. Finishing only then
// means the session's history can be reopened from the store as soon as
// Stop returns.
func (s *sessionActor) closeStream(ctx actor.Context) {
	w, self, sys := s.writer, ctx.Self(), ctx.ActorSystem()
	if !s.detaching {
		if s.finalStatus == eventbus.StatusError {
			s.rec.State = StateError
		} else {
			s.rec.State = StateStopped
		}
		if h, _, _ := s.env.memo.get(); h == nil || !s.keepSandbox() {
			s.rec.Handle, s.rec.SetupFor = nil, ""
		}
		s.saveRecord(ctx)
	}
	w.close()
	s.env.wg.Add(1)
	go func() {
		defer s.env.wg.Done()
		<-w.closed
		sys.Root.Send(self, &streamClosed{})
	}()
}

func (s *sessionActor) keepSandbox() bool {
	return s.rec.Spec.KeepRuntimeAlive || s.cfg.KeepRuntimeAlive
}

// detach ends the actor without ending the session: the Runtime closes its
// connection but leaves the sandbox, no final status is stored and the
// record still says the session runs, so the next engine on the store
// recovers it (as after a crash).
func (s *sessionActor) detach(ctx actor.Context) {
	if s.stopping {
		return
	}
	s.stopping, s.detaching = true, true
	if s.restartTimer != nil {
		s.restartTimer.Stop()
	}
	if s.runtimePID != nil {
		ctx.Send(s.runtimePID, &detachSession{}) // it stops itself, leaving the sandbox
		s.runtimePID = nil
	}
	s.closeStream(ctx)
}

func (s *sessionActor) finish(ctx actor.Context) {
	switch {
	case s.detaching:
	case s.finalStatus == eventbus.StatusError:
		s.state = StateError
	default:
		s.state = StateStopped
	}
	if !s.detaching {
		s.runtimeStatus = s.finalStatus
	}
	info := s.info()
	if s.detaching {
		info.State = StateStopped
	}
	rec := s.rec
	ctx.Send(s.manager, &sessionEnded{info: info, rec: &rec})
	for _, w := range s.stopWaiters {
		ctx.Send(w, &actorpb.ControlReply{Info: info})
	}
	s.stopWaiters = nil
	for id, w := range s.obsWaiters {
		ctx.Send(w.pid, &actorpb.SubmitReply{EventId: id, Error: s.notRunning()})
	}
	s.obsWaiters = nil
	for _, w := range s.readyWaiters {
		ctx.Send(w, &actorpb.ControlReply{Info: info, Error: s.startFailure()})
	}
	s.readyWaiters = nil
	for op, ws := range s.ctlWaiters { // left by a detach (a stop answered them)
		for _, w := range ws {
			ctx.Send(w, &actorpb.ControlReply{Info: info, Error: s.notRunning()})
		}
		delete(s.ctlWaiters, op)
	}
	ctx.Stop(ctx.Self())
}

// startFailure is what a WaitReady caller gets when the runtime will not
// become ready.
func (s *sessionActor) startFailure() *actorpb.Error {
	if s.gone != nil {
		return s.gone
	}
	if s.rec.Error != "" {
		return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
			Message: fmt.Sprintf("session %s failed to start: %s", s.sid, s.rec.Error)}
	}
	return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
		Message: fmt.Sprintf("session %s ended before its runtime was ready", s.sid)}
}
