package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"corral/actors"
	"corral/runtimes"
)

// sessionPurger is an Engine that can also remove a session for good: stop
// it, forget it and delete its stored events and record.
type sessionPurger interface {
	PurgeSession(ctx context.Context, id string) (Session, error)
}

// purgeQuery names the query parameter of DELETE /api/sessions/{id} that
// removes the session with its store instead of only stopping it.
const purgeQuery = "purge"

// deleteSession stops a session (its events stay readable and it can be
// started again) or, with ?purge=true, removes it and its stored events.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	purge := false
	if v := r.URL.Query().Get(purgeQuery); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request",
				fmt.Sprintf("query parameter %s=%q is not a boolean; use %s=true to remove the session with its events, or leave it out to only stop it", purgeQuery, v, purgeQuery))
			return
		}
		purge = b
	}
	if !purge {
		s.sessionCall(w, r, "delete session", s.eng.DeleteSession)
		return
	}
	p, ok := s.eng.(sessionPurger)
	if !ok {
		writeError(w, http.StatusNotImplemented, "not_supported", "this server's engine cannot remove stored sessions; stop the session without purge=true")
		return
	}
	s.sessionCall(w, r, "purge session", s.purgeAndForget(p))
}

// purgeAndForget purges a session and, in a cluster, drops its placement.
// A placement left behind is logged, not failed: the session and its events
// are gone either way, and a stale record only makes a later failover try
// to adopt it in vain.
func (s *Server) purgeAndForget(p sessionPurger) func(context.Context, string) (Session, error) {
	return func(ctx context.Context, id string) (Session, error) {
		sess, err := p.PurgeSession(ctx, id)
		if err != nil || s.cluster == nil {
			return sess, err
		}
		if err := s.cluster.r.Forget(ctx, id); err != nil {
			s.logger.Warn("api: a purged session's placement could not be dropped", "session", id, "err", err)
		}
		return sess, nil
	}
}

// PurgeSession implements sessionPurger (actors' Delete).
func (a *EngineAdapter) PurgeSession(ctx context.Context, id string) (Session, error) {
	return sessionResult(a.eng.Delete(ctx, id))
}

// nodeOf names the host a session's sandbox runs on: the remote host its
// handle names, else the host of the Corral process that owns it, else
// this host (a stopped session has no sandbox; it lives in this server's
// store).
func nodeOf(info actors.SessionInfo) string {
	if h := info.Handle; h != nil {
		if host := h.Meta["host"]; host != "" {
			return host
		}
		if host := h.Meta[runtimes.MetaOwnerHost]; host != "" {
			return host
		}
	}
	return runtimes.Hostname()
}
