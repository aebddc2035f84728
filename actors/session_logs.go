package actors

import (
	"context"
	"fmt"
	"io"
	"maps"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/runtimes"
)

// logsReq asks a Session which sandbox it runs on; the answer is a
// logsReply (or, from the Manager for a session that is not running, a
// ControlReply).
type (
	logsReq   struct{}
	logsReply struct {
		backend runtimes.Backend
		handle  *runtimes.Handle
		err     error
	}
)

// Logs streams the own log of session sid's sandbox (what its agent, the
// sandbox's main process, writes outside any action) as lines "TIMESTAMP
// TEXT" (runtimes.LogSource). The Session only names its backend and
// sandbox; the stream is opened and read on the caller's goroutine, never
// inside an actor. The caller must Close the reader.
//
// Errors: ErrNotFound for an unknown session; ErrNotRunning for a session
// without a sandbox (stopped, or not started yet); ErrNotSupported for a
// runtime that cannot read its sandboxes' logs (cli, remote); an error
// matching runtimes.ErrNotFound when the sandbox is gone with its logs.
func (e *Engine) Logs(ctx context.Context, sid string, opts runtimes.LogOptions) (io.ReadCloser, error) {
	res, err := e.toSession(ctx, sid, &logsReq{})
	if err != nil {
		return nil, err
	}
	var r *logsReply
	switch m := res.(type) {
	case *logsReply:
		r = m
	case *actorpb.ControlReply: // the Manager's refusal: unknown or not running
		if m.Error.GetCode() == actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING {
			return nil, &Error{Code: m.Error.Code, Message: fmt.Sprintf("session %s has no sandbox now, so no sandbox log (a stopped session's sandbox is released with its log; its events stay at GET /api/sessions/%s/events): %s", sid, sid, m.Error.GetMessage())}
		}
		return nil, fromPB(m.Error)
	default:
		return nil, fmt.Errorf("actors: unexpected reply %T to a logs request", res)
	}
	if r.err != nil {
		return nil, r.err
	}
	src, ok := r.backend.(runtimes.LogSource)
	if !ok {
		return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED,
			Message: fmt.Sprintf("the %s runtime of session %s cannot read its sandbox's logs (the docker, local and remote runtimes can)", r.backend.Name(), sid)}
	}
	rc, err := src.Logs(ctx, r.handle, opts)
	if err != nil {
		return nil, fmt.Errorf("session %s: logs of sandbox %s: %w", sid, r.handle.ID, err)
	}
	return rc, nil
}

// logs answers with the session's backend and a copy of its sandbox's
// handle (the Runtime keeps using its own).
func (s *sessionActor) logs(ctx actor.Context) {
	h := s.rec.Handle
	if h == nil {
		ctx.Respond(&logsReply{err: &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
			Message: fmt.Sprintf("session %s has no sandbox yet (%s); wait for STATUS$READY and retry", s.sid, s.runtimeStatus)}})
		return
	}
	cp := *h
	cp.Meta = maps.Clone(h.Meta)
	ctx.Respond(&logsReply{backend: s.env.backend, handle: &cp})
}
