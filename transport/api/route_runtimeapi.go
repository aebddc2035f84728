package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// runtimeAPIBodyLimit bounds the control-plane bodies read to find their
// session (the Runtime API's own /start limit).
const runtimeAPIBodyLimit = 1 << 20

// RouteRuntimeAPI puts OpenHands' Runtime API (corral/transport/runtimeapi,
// mounted at prefix, e.g. "/runtime-api") behind the cluster's routing:
// a call about a session another member owns is proxied there unchanged.
// Wrap the whole mount, outside its http.StripPrefix, so the forwarded
// path keeps the prefix:
//
//	mux.Handle("/runtime-api/", srv.RouteRuntimeAPI("/runtime-api", http.StripPrefix("/runtime-api", rh)))
//
// The session comes from the body's session_id (/start: a session no
// member owns yet is placed with Router.Place) or runtime_id (/stop,
// /pause, /resume), or the path (/sessions/{sid}, /runtime/{rid},
// /sandbox/{rid}/...); Corral's runtime id is the session id. Other calls
// (/registry_prefix, /image_exists, /build) are served here. Without a
// router it returns h itself. The X-API-Key is checked by the member that
// serves the call.
func (s *Server) RouteRuntimeAPI(prefix string, h http.Handler) http.Handler {
	if s.cluster == nil {
		return h
	}
	prefix = strings.TrimRight(prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(RoutedByHeader) != "" {
			h.ServeHTTP(w, r)
			return
		}
		sid, place, ok := s.runtimeAPISession(w, r, strings.TrimPrefix(r.URL.Path, prefix))
		if !ok {
			return
		}
		if sid == "" {
			h.ServeHTTP(w, r)
			return
		}
		m, err := s.cluster.r.Owner(r.Context(), sid)
		if errors.Is(err, ErrNotFound) && place {
			m, err = s.cluster.r.Place(r.Context(), sid)
		}
		switch {
		case errors.Is(err, ErrNotFound):
			h.ServeHTTP(w, r) // unknown everywhere: the Runtime API answers 404
		case err != nil:
			s.routerError(w, r, fmt.Sprintf("find the owner of runtime %q", sid), err)
		case m.ID == s.cluster.r.Self().ID:
			h.ServeHTTP(w, r)
		default:
			s.forward(w, r, sid, m)
		}
	})
}

// runtimeAPISession names the session of a Runtime API call at path (the
// part after the mount prefix); "" means none (serve it here). place is
// true for /start, which may create the session. ok false: it answered.
func (s *Server) runtimeAPISession(w http.ResponseWriter, r *http.Request, path string) (sid string, place, ok bool) {
	for _, p := range []string{"/sessions/", "/runtime/", "/sandbox/"} {
		if rest, found := strings.CutPrefix(path, p); found {
			sid, _, _ = strings.Cut(rest, "/")
			return sid, false, true
		}
	}
	var field string
	switch {
	case r.Method == http.MethodPost && path == "/start":
		field, place = "session_id", true
	case r.Method == http.MethodPost && (path == "/stop" || path == "/pause" || path == "/resume"):
		field = "runtime_id"
	default:
		return "", false, true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, runtimeAPIBodyLimit+1))
	if err != nil || len(body) > runtimeAPIBodyLimit {
		writeError(w, http.StatusBadRequest, "bad_body", fmt.Sprintf("%s: reading the body failed or it is over %d bytes: %v", path, runtimeAPIBodyLimit, err))
		return "", false, false
	}
	// The handler (here or on the owner) reads the body again.
	r.Body = io.NopCloser(bytes.NewReader(body))
	var ids map[string]any
	if json.Unmarshal(body, &ids) == nil {
		sid, _ = ids[field].(string)
	}
	return sid, place, true // a body without the id: the handler names what is wrong
}
