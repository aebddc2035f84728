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
	ForkSession(ctx context.Context, id string, at int64, childID string) (ForkedSession, error)
}

// ForkPoint names the session and event a fork was taken from.
type ForkPoint struct {
	Session string `json:"session"`
	EventID int64  `json:"event_id"`
}

// ForkedSession is the 201 answer of a fork: the new session and where it
// was forked from.
type ForkedSession struct {
	Session
	ForkedFrom ForkPoint `json:"forked_from"`
}

// ForkSession implements ForkEngine (actors' Fork).
func (a *EngineAdapter) ForkSession(ctx context.Context, id string, at int64, childID string) (ForkedSession, error) {
	info, point, err := a.eng.Fork(ctx, id, at, childID)
	if err != nil {
		return ForkedSession{}, mapErr(err)
	}
	return ForkedSession{Session: toSession(info), ForkedFrom: ForkPoint{Session: point.Session, EventID: point.EventID}}, nil
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
	writeJSON(w, http.StatusCreated, fs)
}
