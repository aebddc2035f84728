package farm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"

	"corral/actors"
	"corral/eventbus"
	"corral/runtimes"
)

// ActorsEngine adapts the actors engine to Engine: a job's sandbox is one
// engine session, ready once its runtime reports STATUS$READY, stopped (and
// its sandbox destroyed) by Close.
type ActorsEngine struct {
	eng *actors.Engine
}

// NewActorsEngine wraps eng; the caller keeps owning it (Shutdown).
func NewActorsEngine(eng *actors.Engine) *ActorsEngine { return &ActorsEngine{eng: eng} }

// StartSession creates a session for the job and waits until it is ready.
// The job's resource limits reach the sandbox; a runtime that cannot
// enforce them refuses the job (ErrPermanent: retrying cannot help).
func (a *ActorsEngine) StartSession(ctx context.Context, spec SessionSpec) (Session, error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	sid := fmt.Sprintf("farm-%s-%d-%s", spec.JobID, spec.Attempt, hex.EncodeToString(rnd[:]))
	if eventbus.ValidateSessionID(sid) != nil {
		// Job ids allow characters some stores refuse; fall back to a random id.
		sid = "farm-" + hex.EncodeToString(rnd[:])
	}
	info, err := a.eng.CreateSession(ctx, actors.SessionSpec{
		ID:      sid,
		Runtime: spec.Runtime.Backend,
		Image:   spec.Runtime.Image,
		Env:     maps.Clone(spec.Runtime.Env),
		Resources: runtimes.Resources{MemoryBytes: spec.Runtime.MemoryMB << 20,
			NanoCPUs: int64(spec.Runtime.CPUs * 1e9), PidsLimit: spec.Runtime.PidsLimit},
		Labels: map[string]string{"corral.farm.job": spec.JobID},
		// A farm never wants the host's ~/.gitconfig rewritten.
		SkipGitConfig: true,
		MCP:           spec.Runtime.MCP,
	})
	if errors.Is(err, actors.ErrNotSupported) {
		return nil, fmt.Errorf("job %s: %w: %w", spec.JobID, err, ErrPermanent)
	}
	if err != nil {
		return nil, err
	}
	s := &actorsSession{eng: a.eng, sid: info.ID}
	if err := a.eng.WaitReady(ctx, info.ID); err != nil {
		cerr := s.Close(context.WithoutCancel(ctx))
		return nil, errors.Join(err, cerr)
	}
	return s, nil
}

// ForkSession implements Forker: the job's session is a fork of parent's
// (its events and files as they are now), ready once its runtime is.
func (a *ActorsEngine) ForkSession(ctx context.Context, parent Session, spec SessionSpec) (Session, error) {
	p, ok := parent.(*actorsSession)
	if !ok {
		return nil, fmt.Errorf("job %s: fork of a %T, not a session of this engine: %w", spec.JobID, parent, ErrPermanent)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	sid := fmt.Sprintf("farm-%s-%d-%s", spec.JobID, spec.Attempt, hex.EncodeToString(rnd[:]))
	if eventbus.ValidateSessionID(sid) != nil {
		sid = "farm-" + hex.EncodeToString(rnd[:])
	}
	info, _, err := a.eng.Fork(ctx, p.sid, -1, sid)
	if errors.Is(err, actors.ErrNotSupported) {
		return nil, fmt.Errorf("job %s: %w: %w", spec.JobID, err, ErrPermanent)
	}
	if err != nil {
		return nil, err
	}
	s := &actorsSession{eng: a.eng, sid: info.ID}
	if err := a.eng.WaitReady(ctx, info.ID); err != nil {
		return nil, errors.Join(err, s.Close(context.WithoutCancel(ctx)))
	}
	return s, nil
}

type actorsSession struct {
	eng *actors.Engine
	sid string
}

func (s *actorsSession) Run(ctx context.Context, action *eventbus.Event) (*eventbus.Event, error) {
	_, obs, err := s.eng.Run(ctx, s.sid, action)
	if err != nil {
		return nil, err
	}
	if obs == nil {
		return nil, fmt.Errorf("session %s: %s action got no observation", s.sid, action.Type())
	}
	return obs, nil
}

func (s *actorsSession) Close(ctx context.Context) error {
	if _, err := s.eng.Stop(ctx, s.sid); err != nil && !errors.Is(err, actors.ErrNotFound) {
		return fmt.Errorf("stop session %s: %w", s.sid, err)
	}
	return nil
}

// Events returns the session's stored events up to upTo (and any stored
// after it by the time of the call).
func (s *actorsSession) Events(ctx context.Context, upTo int64) ([]*eventbus.Event, error) {
	if upTo < 0 {
		return nil, nil
	}
	items, err := s.eng.History(ctx, s.sid, 0)
	if err != nil {
		return nil, fmt.Errorf("read session %s events: %w", s.sid, err)
	}
	out := make([]*eventbus.Event, 0, len(items))
	for _, it := range items {
		ev, err := it.Event()
		if err != nil {
			return nil, fmt.Errorf("read session %s event %d: %w", s.sid, it.ID, err)
		}
		out = append(out, ev)
	}
	if len(out) == 0 || out[len(out)-1].ID < upTo {
		return out, fmt.Errorf("session %s history ends before event %d", s.sid, upTo)
	}
	return out, nil
}
