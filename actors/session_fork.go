package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"

	"github.com/asynkron/protoactor-go/actor"

	actorpb "corral/actors/proto"
	"corral/eventbus"
	"corral/runtimes"
)

// Labels a forked session carries (in its spec, so its record keeps them).
const (
	LabelForkedFromSession = "corral.forked_from.session"
	LabelForkedFromEvent   = "corral.forked_from.event"
)

// Forker is a backend that can start a sandbox from another one's
// filesystem: Fork snapshots parent (a workspace copy, a committed image)
// and returns child changed to start from the snapshot. Processes are not
// carried over. Discard removes a snapshot whose child never started.
type Forker interface {
	Fork(ctx context.Context, parent *runtimes.Handle, child runtimes.Spec) (runtimes.Spec, error)
	DiscardFork(ctx context.Context, child runtimes.Spec) error
}

// ForkPoint names the session and event a fork was taken from.
type ForkPoint struct {
	Session string `json:"session"`
	EventID int64  `json:"event_id"`
}

// ForkedFrom reads the fork point from a session's labels (nil: not a fork).
func ForkedFrom(labels map[string]string) *ForkPoint {
	sid := labels[LabelForkedFromSession]
	if sid == "" {
		return nil
	}
	id, _ := strconv.ParseInt(labels[LabelForkedFromEvent], 10, 64)
	return &ForkPoint{Session: sid, EventID: id}
}

type (
	// forkReq asks a Session for what a fork of it needs; the reply is a
	// forkState.
	forkReq   struct{}
	forkState struct {
		spec     SessionSpec
		inflight *eventbus.Event // the action running now, if any
		queued   int
	}
)

// forkState answers a forkReq.
func (s *sessionActor) forkState(ctx actor.Context) {
	ctx.Respond(&forkState{spec: s.env.spec, inflight: s.inflight, queued: len(s.queue)})
}

// Fork creates session childID (empty: a new id) from running session
// parent: its stream holds parent's events with id <= at (at < 0: all of
// them) under the same ids, and its sandbox starts from parent's filesystem
// as it is now. A fork while an action runs or waits is refused
// (ErrAlreadyExists names the action): the snapshot would hold half of it.
func (e *Engine) Fork(ctx context.Context, parent string, at int64, childID string) (SessionInfo, *ForkPoint, error) {
	info, err := e.Get(ctx, parent)
	if err != nil {
		return SessionInfo{}, nil, err
	}
	if info.State != StateRunning || info.Handle == nil {
		return SessionInfo{}, nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_RUNNING,
			Message: fmt.Sprintf("session %s is %s; only a running session (with a started sandbox) can be forked: start it and retry", parent, info.State)}
	}
	backend, err := e.registry.Get(info.Runtime)
	if err != nil {
		return SessionInfo{}, nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_UNKNOWN_RUNTIME, Message: err.Error()}
	}
	forker, ok := backend.(Forker)
	if !ok {
		return SessionInfo{}, nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED,
			Message: fmt.Sprintf("runtime %q cannot fork a sandbox; fork works on sessions of the local and docker runtimes", info.Runtime)}
	}
	st, err := e.parentState(ctx, parent)
	if err != nil {
		return SessionInfo{}, nil, err
	}
	items, point, err := e.forkEvents(ctx, parent, at)
	if err != nil {
		return SessionInfo{}, nil, err
	}
	child := SessionSpec{ID: childID, Runtime: info.Runtime, Image: st.spec.Image, Env: maps.Clone(st.spec.Env),
		Labels: maps.Clone(st.spec.Labels), SkipGitConfig: true, Resources: st.spec.Resources, MCP: st.spec.MCP}
	if child.ID == "" {
		child.ID = newSessionID()
	}
	if err := eventbus.ValidateSessionID(child.ID); err != nil {
		return SessionInfo{}, nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: err.Error()}
	}
	if child.Labels == nil {
		child.Labels = map[string]string{}
	}
	child.Labels[LabelForkedFromSession], child.Labels[LabelForkedFromEvent] = parent, strconv.FormatInt(point.EventID, 10)
	rs, err := forker.Fork(ctx, info.Handle, runtimes.Spec{SessionID: child.ID, Image: child.Image, Labels: child.Labels})
	if err != nil {
		return SessionInfo{}, nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INTERNAL,
			Message: fmt.Sprintf("fork session %s: snapshot its sandbox: %v", parent, err)}
	}
	child.Image, child.Workspace, child.Labels = rs.Image, rs.Workspace, rs.Labels
	discard := func() { _ = forker.DiscardFork(context.WithoutCancel(ctx), rs) }
	if err := e.store.ImportItems(ctx, child.ID, items); err != nil {
		discard()
		return SessionInfo{}, nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS,
			Message: fmt.Sprintf("fork session %s into %s: copy its events: %v", parent, child.ID, err)}
	}
	ci, err := e.CreateSession(ctx, child)
	if err != nil {
		discard()
		_ = e.store.Delete(child.ID)
		return SessionInfo{}, nil, err
	}
	return ci, point, nil
}

// parentState asks the parent Session for its spec and refuses a fork
// while one of its actions runs or waits.
func (e *Engine) parentState(ctx context.Context, parent string) (*forkState, error) {
	res, err := e.toSession(ctx, parent, &forkReq{})
	if err != nil {
		return nil, err
	}
	switch r := res.(type) {
	case *forkState:
		if r.inflight != nil {
			return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS,
				Message: fmt.Sprintf("session %s is running action %d (%s); fork it once the action has its observation", parent, r.inflight.ID, r.inflight.Type())}
		}
		if r.queued > 0 {
			return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS,
				Message: fmt.Sprintf("session %s has %d queued action(s); fork it once they have their observations", parent, r.queued)}
		}
		return r, nil
	case *actorpb.ControlReply:
		return nil, fromPB(r.Error)
	}
	return nil, fmt.Errorf("actors: unexpected reply %T to a fork request", res)
}

// forkEvents returns parent's events with id <= at (at < 0: all) and the
// fork point; at beyond the last id is refused naming the last id.
func (e *Engine) forkEvents(ctx context.Context, parent string, at int64) ([]*eventbus.Item, *ForkPoint, error) {
	items, err := e.History(ctx, parent, 0)
	if err != nil {
		return nil, nil, err
	}
	last := eventbus.InvalidID
	if len(items) > 0 {
		last = items[len(items)-1].ID
	}
	if at < 0 {
		return items, &ForkPoint{Session: parent, EventID: last}, nil
	}
	if at > last {
		return nil, nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID,
			Message: fmt.Sprintf("cannot fork session %s at event %d: its last event id is %d; pass at <= %d or leave it out", parent, at, last, last)}
	}
	n := 0
	for n < len(items) && items[n].ID <= at {
		n++
	}
	return items[:n], &ForkPoint{Session: parent, EventID: at}, nil
}

// ForkPointOf says where session sid was forked from; nil when it is not
// a fork (or is unknown). A running session answers from its spec, any
// other from its stored record.
func (e *Engine) ForkPointOf(ctx context.Context, sid string) *ForkPoint {
	if res, err := e.toSession(ctx, sid, &forkReq{}); err == nil {
		if st, ok := res.(*forkState); ok {
			return ForkedFrom(st.spec.Labels)
		}
	}
	data, err := e.store.LoadMeta(sid)
	if err != nil {
		return nil
	}
	var rec sessionRecord
	if json.Unmarshal(data, &rec) != nil {
		return nil
	}
	return ForkedFrom(rec.Spec.Labels)
}
