package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/asynkron/protoactor-go/actor"

	"corral/eventbus"
)

// requestID names an action's request on the agent. It is derived from the
// session and the action's event id, both durable, so that a restarted
// engine re-sending the in-flight action to a re-attached sandbox gets the
// running or finished request back instead of running it twice.
func requestID(sid string, eventID int64) string {
	return sid + "-" + strconv.FormatInt(eventID, 10)
}

// saveRecord queues the session's record behind the events already queued
// on its writer, so the record never describes a state whose events are not
// stored yet.
func (s *sessionActor) saveRecord(ctx actor.Context) { s.saveRecordNotify(nil) }

// saveRecordNotify is saveRecord; notify (when not nil) gets a
// recordSaved once the record is durable.
func (s *sessionActor) saveRecordNotify(notify *actor.PID) {
	data, err := json.Marshal(&s.rec)
	if err != nil {
		s.logger.Error("encoding the session record", "session", s.sid, "err", err)
		return
	}
	s.writer.saveMeta(data, notify)
}

// scanUnanswered reads the stored events (off the actor goroutine) and
// reports the runnable actions that have no observation: the previous
// process acknowledged them and must answer each exactly once.
func (s *sessionActor) scanUnanswered(ctx actor.Context) {
	self, sys, w := ctx.Self(), ctx.ActorSystem(), s.writer
	s.env.wg.Add(1)
	go func() {
		defer s.env.wg.Done()
		sys.Root.Send(self, scanStream(w))
	}()
}

func scanStream(w *streamWriter) *scanned {
	ctx := context.Background()
	st, err := w.openStream(ctx)
	if err != nil {
		return &scanned{err: err}
	}
	items, err := st.Search(ctx, eventbus.Filter{})
	if err != nil {
		return &scanned{err: fmt.Errorf("read the stored events: %w", err)}
	}
	var actions []*eventbus.Event
	answered := map[int64]bool{}
	for _, it := range items {
		ev, err := it.Event()
		if err != nil {
			return &scanned{err: fmt.Errorf("stored event %d: %w", it.ID, err)}
		}
		switch {
		case ev.IsAction():
			if ExpectsObservation(ev) {
				actions = append(actions, ev)
			}
		case ev.Cause != nil:
			answered[*ev.Cause] = true
		}
	}
	var out []*eventbus.Event
	for _, a := range actions {
		if !answered[a.ID] {
			out = append(out, a)
		}
	}
	return &scanned{unanswered: out}
}

func (s *sessionActor) onScanned(ctx actor.Context, m *scanned) {
	s.recovering = false
	if m.err != nil {
		s.logger.Error("recovering the session's unanswered actions", "session", s.sid, "err", m.err)
	}
	s.unanswered = m.unanswered
	if len(s.unanswered) > 0 {
		s.logger.Info("recovered session has unanswered actions", "session", s.sid, "count", len(s.unanswered))
	}
	if s.ready {
		s.resumeUnanswered(ctx)
		s.dispatch(ctx)
	}
}

// resumeUnanswered puts the actions the previous process left unanswered
// back in front of the queue once the runtime is ready. The first of them
// may have been running: on a re-attached sandbox it is sent again under
// its request id (the agent answers from the running or finished request,
// with its real output); on a new sandbox it gets an error observation,
// since whether it took effect is unknown. The others never ran and run
// now, in order.
func (s *sessionActor) resumeUnanswered(ctx actor.Context) {
	if s.recovering || s.resumed || s.stopping || s.mode != modeRecover {
		return
	}
	s.resumed = true
	acts := s.unanswered
	s.unanswered = nil
	stop := !s.attached && s.cfg.OnLostSandbox == LostSandboxStop
	if len(acts) > 0 && !s.attached && acts[0].Action.Runnable() {
		goOn := "the session goes on in a new sandbox"
		if stop {
			goOn = "the session is stopped ([engine] on_lost_sandbox = \"stop\"); start it again to go on"
		}
		why := "Corral restarted while this action was in flight and its sandbox did not survive; "
		if s.rec.adopted {
			why = fmt.Sprintf("This session moved to node %s while this action was in flight (its previous node stopped or handed it over), and its sandbox cannot be reached from here; ", s.node)
		}
		s.appendAnswer(ctx, acts[0], eventbus.NewError(acts[0].ID, ErrIDSandboxLost,
			why+goOn+". The action may or may not have taken effect; check before retrying."))
		acts = acts[1:]
	}
	s.queue = append(acts, s.queue...)
	if stop {
		s.logger.Warn("the recovered session's sandbox did not survive; stopping it (on_lost_sandbox = stop)", "session", s.sid)
		s.beginStop(ctx, eventbus.StatusStopped)
	}
}
