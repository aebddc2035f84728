package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"corral/eventbus"
)

// Run submits action and returns its observation. When the node it went
// to dies before answering, the action may or may not be stored: Run
// looks for it in the session's events (through another node: the
// session has failed over) and waits for its observation there, sending
// it again only when it is not stored. The farm sends one action at a
// time, so the first action of the same type after the previous
// observation is this one.
func (s *clusterSession) Run(ctx context.Context, action *eventbus.Event) (*eventbus.Event, error) {
	a := action.Clone()
	a.ID, a.Timestamp, a.Cause = eventbus.InvalidID, "", nil
	body, err := eventbus.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode %s action: %w", a.Type(), err)
	}
	path := "/api/sessions/" + url.PathEscape(s.sid) + "/actions?wait=true"
	for {
		code, out, broken, err := s.cf.submit(ctx, path, body)
		switch {
		case broken:
			id, found, ferr := s.findAction(ctx, a.Type())
			if ferr != nil {
				return nil, ferr
			}
			if !found {
				continue // it was never stored: send it again
			}
			obs, err := s.waitObservation(ctx, id)
			_, _, _ = s.info(ctx) // the session's new owner
			return obs, err
		case err != nil:
			return nil, err
		case code == http.StatusOK:
			obs, err := eventbus.Unmarshal(out)
			if err != nil {
				return nil, fmt.Errorf("session %s: observation: %w", s.sid, err)
			}
			s.seen(obs.ID)
			return obs, nil
		default:
			return nil, fmt.Errorf("session %s: %s action: HTTP %d: %s", s.sid, a.Type(), code, apiMessage(out))
		}
	}
}

// submit posts a non-idempotent request: unlike do, it does not send it
// again to another node once a connection broke after sending (broken),
// nor after a 502 (a node's proxy lost the owner mid-request).
func (cf *clusterFarm) submit(ctx context.Context, path string, body []byte) (code int, out []byte, broken bool, err error) {
	return cf.do(ctx, "POST", path, body, false)
}

func (s *clusterSession) seen(id int64) {
	s.mu.Lock()
	s.last = max(s.last, id)
	s.mu.Unlock()
}

// page is one page of GET /events.
type page struct {
	Events    []json.RawMessage `json:"events"`
	HasMore   bool              `json:"has_more"`
	NextAfter int64             `json:"next_after"`
}

// eventsAfter returns the session's events with ids > after, every page.
func (s *clusterSession) eventsAfter(ctx context.Context, after int64) ([]*eventbus.Event, error) {
	var out []*eventbus.Event
	for {
		code, b, _, err := s.cf.do(ctx, "GET", fmt.Sprintf("/api/sessions/%s/events?after=%d", url.PathEscape(s.sid), after), nil, true)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("session %s events: HTTP %d: %s", s.sid, code, apiMessage(b))
		}
		var p page
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("session %s events: %w", s.sid, err)
		}
		for _, raw := range p.Events {
			ev, err := eventbus.Unmarshal(raw)
			if err != nil {
				return nil, fmt.Errorf("session %s event: %w", s.sid, err)
			}
			out = append(out, ev)
		}
		if !p.HasMore {
			return out, nil
		}
		after = p.NextAfter
	}
}

// findAction looks for the action of type typ stored after the last
// observation this session returned.
func (s *clusterSession) findAction(ctx context.Context, typ string) (int64, bool, error) {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	evs, err := s.eventsAfter(ctx, last)
	if err != nil {
		return 0, false, err
	}
	for _, ev := range evs {
		if ev.IsAction() && ev.Type() == typ {
			return ev.ID, true, nil
		}
	}
	return 0, false, nil
}

// waitObservation polls the session's events (through whichever node
// answers) until action id's observation is stored.
func (s *clusterSession) waitObservation(ctx context.Context, id int64) (*eventbus.Event, error) {
	for {
		evs, err := s.eventsAfter(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			if !ev.IsAction() && ev.Cause != nil && *ev.Cause == id {
				s.seen(ev.ID)
				return ev, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("session %s: no observation of action %d: %w", s.sid, id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Events returns the session's stored events up to upTo (and any after).
func (s *clusterSession) Events(ctx context.Context, upTo int64) ([]*eventbus.Event, error) {
	if upTo < 0 {
		return nil, nil
	}
	evs, err := s.eventsAfter(ctx, -1)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || evs[len(evs)-1].ID < upTo {
		return evs, fmt.Errorf("session %s history ends before event %d", s.sid, upTo)
	}
	return evs, nil
}

// Close stops the session (and its sandbox) on whichever node owns it.
func (s *clusterSession) Close(ctx context.Context) error {
	_, _, _ = s.info(ctx) // the owner at the end, for the job's result
	code, out, _, err := s.cf.do(ctx, "DELETE", "/api/sessions/"+url.PathEscape(s.sid), nil, true)
	if err != nil {
		return fmt.Errorf("stop session %s: %w", s.sid, err)
	}
	if code != http.StatusOK && code != http.StatusNotFound && code != http.StatusNoContent {
		return fmt.Errorf("stop session %s: HTTP %d: %s", s.sid, code, apiMessage(out))
	}
	return nil
}
