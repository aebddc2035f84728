package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
)

// ForkEngine is the optional Engine capability behind POST
// /api/sessions/{id}/fork. An Engine without it is answered 501.
type ForkEngine interface {
	// ForkSession creates session childID (empty: a new id) from running
	// session id: its events up to at (at < 0: all) and its sandbox's
	// filesystem as it is now.
	// The answer's ForkedFrom is set.
	ForkSession(ctx context.Context, id string, at int64, childID string) (Session, error)
}

// ForkPoint names the session and event a fork was taken from.
type ForkPoint struct {
	Session string `json:"session"`
	EventID int64  `json:"event_id"`
}

// ForkSession implements ForkEngine (actors' Fork).
func (a *EngineAdapter) ForkSession(ctx context.Context, id string, at int64, childID string) (Session, error) {
	info, point, err := a.eng.Fork(ctx, id, at, childID)
	if err != nil {
		return Session{}, mapErr(err)
	}
	s := toSession(info)
	s.ForkedFrom = &ForkPoint{Session: point.Session, EventID: point.EventID}
	return s, nil
}

// forkPoint is where session id was forked from (nil: not a fork).
func (a *EngineAdapter) forkPoint(ctx context.Context, id string) *ForkPoint {
	p := a.eng.ForkPointOf(ctx, id)
	if p == nil {
		return nil
	}
	return &ForkPoint{Session: p.Session, EventID: p.EventID}
}

// forkSession answers POST /api/sessions/{id}/fork[?at=EVENT_ID][&id=NEW_ID].
func (s *Server) forkSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	at := int64(-1)
	if v := r.URL.Query().Get("at"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "invalid_request",
				fmt.Sprintf("query parameter at=%q is not an event id (a non-negative integer); leave it out to fork at the latest event", v))
			return
		}
		at = n
	}
	fe, ok := s.eng.(ForkEngine)
	if !ok {
		writeError(w, http.StatusNotImplemented, "not_supported", "this server's engine cannot fork sessions")
		return
	}
	fs, err := fe.ForkSession(r.Context(), id, at, r.URL.Query().Get("id"))
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("fork session %q", id), err)
		return
	}
	s.stampNode(&fs)
	writeJSON(w, http.StatusCreated, fs)
}
