package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/runtimes"
)

// interruptReq asks a Session to interrupt what runs in its sandbox now;
// the answer is a fileReply (or, from the Manager for a session that is
// not running, a ControlReply).
type interruptReq struct{ ctx context.Context }

// Interrupt interrupts what runs in session sid's sandbox now, out of band:
// the Session hands it to its Runtime at once (it never waits behind the
// action queue), and the Runtime calls the agent while the in-flight
// action's Execute is still waiting. The running command's foreground
// process group gets Ctrl-C (a Python cell: KeyboardInterrupt); the
// in-flight run action then gets its observation as usual, with OpenHands'
// C-c semantics: exit code 130 and the suffix "[The command completed with
// exit code 130. CTRL+C was sent.]". Queued actions stay queued and run
// after it, in order. A command left running by an earlier timeout is
// interrupted the same way (the next action collects its end).
//
// With nothing running it does nothing and returns nil. An action the
// Session has dispatched but the agent has not started yet is not
// interrupted. Errors: ErrNotFound for an unknown session, ErrNotRunning
// for a session that is not running (stopped, paused, or its sandbox not
// ready yet), ErrNotSupported for an agent older than the interrupt frame.
func (e *Engine) Interrupt(ctx context.Context, sid string) error {
	res, err := e.toSession(ctx, sid, &interruptReq{ctx: ctx})
	if err != nil {
		return err
	}
	switch r := res.(type) {
	case *fileReply:
		return r.err
	case *actorpb.ControlReply: // the Manager's refusal: unknown or not running
		return fromPB(r.Error)
	}
	return fmt.Errorf("actors: unexpected reply %T to an interrupt", res)
}

// interrupt forwards the request to the Runtime, which runs it off its
// goroutine on the agent connection (as it does file operations), so
// neither actor blocks and the running action is not waited for.
func (s *sessionActor) interrupt(ctx actor.Context, m *interruptReq) {
	refuse := func(msg string) {
		ctx.Respond(&fileReply{err: fromPB(&actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING, Message: msg})})
	}
	switch {
	case s.stopping:
		refuse(fmt.Sprintf("session %s is %s: nothing to interrupt", s.sid, strings.ToLower(s.state)))
	case s.state == StatePaused:
		refuse(fmt.Sprintf("session %s is paused: its processes are frozen; resume it (POST /api/sessions/%s/resume) to interrupt them", s.sid, s.sid))
	case s.runtimePID == nil || !s.ready:
		refuse(fmt.Sprintf("session %s's sandbox is not ready (%s): nothing runs yet; wait for STATUS$READY", s.sid, s.runtimeStatus))
	default:
		sid := s.sid
		ctx.RequestWithCustomSender(s.runtimePID, &fileReq{ctx: m.ctx, op: func(ctx context.Context, c runtimes.AgentConn) error {
			return interruptAgent(ctx, sid, c)
		}}, ctx.Sender())
	}
}

// interruptAgent calls the agent and names what failed.
func interruptAgent(ctx context.Context, sid string, c runtimes.AgentConn) error {
	err := c.Interrupt(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errors.ErrUnsupported), errors.Is(err, runtimes.ErrNotSupported):
		return &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED, Message: fmt.Sprintf("session %s: %v", sid, err)}
	}
	return fmt.Errorf("interrupt session %s: %w", sid, err)
}
