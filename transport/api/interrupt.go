package api

import (
	"context"
	"fmt"
	"net/http"
)

// interruptAccepted is the 202 answer of POST /api/sessions/{id}/interrupt.
type interruptAccepted struct {
	SessionID string `json:"session_id"`
	Status    string `json:"status"` // "delivered"
}

// interruptSession sends Ctrl-C to what runs in the session's sandbox now,
// past the action queue. 202: the interrupted action's observation follows
// on the event stream like any other.
func (s *Server) interruptSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.eng.Interrupt(r.Context(), id); err != nil {
		s.engineError(w, r, fmt.Sprintf("interrupt session %q", id), err)
		return
	}
	writeJSON(w, http.StatusAccepted, interruptAccepted{SessionID: id, Status: "delivered"})
}

// Interrupt implements Engine (actors' Interrupt).
func (a *EngineAdapter) Interrupt(ctx context.Context, id string) error {
	return mapErr(a.eng.Interrupt(ctx, id))
}
