package api

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"corral/eventbus"
	"corral/metrics"
	"corral/runtimes/sandbox"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.eng.Ready(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not_ready", fmt.Sprintf("the engine does not accept sessions yet: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// summaryBody is GET /api/metrics/summary.
type summaryBody struct {
	Sessions         int            `json:"sessions"`
	SessionsByStatus map[string]int `json:"sessions_by_status"`
	metrics.Summary
}

func (s *Server) metricsSummary(w http.ResponseWriter, r *http.Request) {
	list, err := s.eng.ListSessions(r.Context())
	if err != nil {
		s.engineError(w, r, "list sessions", err)
		return
	}
	body := summaryBody{Sessions: len(list), SessionsByStatus: map[string]int{}, Summary: s.metrics.Summary()}
	for _, x := range list {
		body.SessionsByStatus[x.Status]++
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, s.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	var wire struct {
		SessionRequest
		// Decoded apart so that its errors name the field (ParseMCPConfig).
		MCP json.RawMessage `json:"mcp_config,omitempty"`
	}
	if err := decodeJSON(body, &wire); err != nil {
		writeError(w, http.StatusBadRequest, "malformed_json", "session request: "+err.Error())
		return
	}
	req := wire.SessionRequest
	if len(wire.MCP) > 0 && string(wire.MCP) != "null" {
		mcp, err := eventbus.ParseMCPConfig(wire.MCP)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "session request: "+err.Error())
			return
		}
		req.MCP = &mcp
	}
	if req.ID != "" {
		if err := eventbus.ValidateSessionID(req.ID); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("session request: field \"id\": %v", err))
			return
		}
	}
	for k := range req.Env {
		if !validEnvName(k) {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("session request: env key %q is not a shell variable name (letters, digits and '_', not starting with a digit)", k))
			return
		}
	}
	if req.Resources.MemoryBytes < 0 || req.Resources.NanoCPUs < 0 || req.Resources.PidsLimit < 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "session request: resources must not be negative (0 = the backend's default)")
		return
	}
	if s.placeSession(w, r, body, &req) {
		return
	}
	sess, err := s.eng.CreateSession(r.Context(), req)
	if err != nil {
		s.engineError(w, r, "create session", err)
		return
	}
	s.stampNode(&sess)
	w.Header().Set("Location", "/api/sessions/"+sess.ID)
	writeJSON(w, http.StatusCreated, sess)
}

func validEnvName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	list, err := s.eng.ListSessions(r.Context())
	if err != nil {
		s.engineError(w, r, "list sessions", err)
		return
	}
	var failures []memberFailure
	if s.cluster != nil {
		if r.Header.Get(RoutedByHeader) != "" {
			for i := range list {
				s.stampNode(&list[i])
			}
		} else {
			list, failures = s.clusterSessions(r, list)
		}
	}
	slices.SortFunc(list, func(a, b Session) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if list == nil {
		list = []Session{}
	}
	body := map[string]any{"sessions": list}
	if len(failures) > 0 {
		// Partial: the members that did not answer, whose sessions are missing.
		body["unreachable"] = failures
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	s.sessionCall(w, r, "get session", s.eng.GetSession)
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request) {
	s.sessionCall(w, r, "start session", s.eng.StartSession)
}

func (s *Server) pauseSession(w http.ResponseWriter, r *http.Request) {
	s.sessionCall(w, r, "pause session", s.eng.PauseSession)
}

func (s *Server) resumeSession(w http.ResponseWriter, r *http.Request) {
	s.sessionCall(w, r, "resume session", s.eng.ResumeSession)
}

func (s *Server) sessionCall(w http.ResponseWriter, r *http.Request, what string, call func(context.Context, string) (Session, error)) {
	id := r.PathValue("id")
	sess, err := call(r.Context(), id)
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("%s %q", what, id), err)
		return
	}
	s.stampNode(&sess)
	writeJSON(w, http.StatusOK, sess)
}

// actionAccepted is the 202 answer of POST /actions without wait.
type actionAccepted struct {
	ID        int64  `json:"id"`
	SessionID string `json:"session_id"`
	Action    string `json:"action"`
}

func (s *Server) postAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	wait := false
	if v := r.URL.Query().Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("query parameter wait=%q is not a boolean; use wait=true or wait=false", v))
			return
		}
		wait = b
	}
	body, ok := readBody(w, r, s.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	ev, err := eventbus.Unmarshal(body)
	if err != nil {
		if se := (*eventbus.SyntaxError)(nil); errors.As(err, &se) {
			writeError(w, http.StatusBadRequest, "malformed_json", "action: "+describeJSONError(se, body).Error())
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_action", fmt.Sprintf("action: %v; send one OpenHands action such as {\"action\":\"run\",\"args\":{\"command\":\"ls\"}}", err))
		return
	}
	if !ev.IsAction() {
		writeError(w, http.StatusBadRequest, "invalid_action", fmt.Sprintf("the body is a %q observation; only actions can be submitted (an object with \"action\" and \"args\")", ev.Type()))
		return
	}
	if ev.ID != eventbus.InvalidID {
		writeError(w, http.StatusBadRequest, "invalid_action", fmt.Sprintf("the action carries \"id\": %d; ids are assigned by the session's stream, remove the key", ev.ID))
		return
	}
	if ev.Source == "" {
		ev.Source = eventbus.SourceUser
	}
	if !wait {
		eid, err := s.eng.Submit(r.Context(), id, ev)
		if err != nil {
			s.engineError(w, r, fmt.Sprintf("submit %s action to session %q", ev.Type(), id), err)
			return
		}
		w.Header().Set("Location", fmt.Sprintf("/api/sessions/%s/events?after=%d&limit=1", id, eid-1))
		writeJSON(w, http.StatusAccepted, actionAccepted{ID: eid, SessionID: id, Action: ev.Type()})
		return
	}
	eid, obs, err := s.eng.Run(r.Context(), id, ev)
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("run %s action in session %q", ev.Type(), id), err)
		return
	}
	if obs == nil {
		// Nothing will answer it now (it awaits confirmation, or is not
		// runnable): say so like an asynchronous submit.
		writeJSON(w, http.StatusAccepted, actionAccepted{ID: eid, SessionID: id, Action: ev.Type()})
		return
	}
	js, err := eventbus.Marshal(obs)
	if err != nil {
		s.engineError(w, r, "encode the observation", err)
		return
	}
	writeRawJSON(w, http.StatusOK, js)
}

func (s *Server) confirmAction(w http.ResponseWriter, r *http.Request) {
	s.decide(w, r, "confirm", s.eng.Confirm)
}

func (s *Server) rejectAction(w http.ResponseWriter, r *http.Request) {
	s.decide(w, r, "reject", s.eng.Reject)
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request, verb string, call func(context.Context, string, int64) (int64, error)) {
	id := r.PathValue("id")
	eid, err := strconv.ParseInt(r.PathValue("eid"), 10, 64)
	if err != nil || eid < 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("event id %q in the path is not a non-negative integer", r.PathValue("eid")))
		return
	}
	recorded, err := call(r.Context(), id, eid)
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("%s action %d of session %q", verb, eid, id), err)
		return
	}
	state := eventbus.Confirmed
	if verb == "reject" {
		state = eventbus.Rejected
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": eid, "session_id": id, "confirmation_state": state, "event_id": recorded})
}

// eventPage is GET /events.
type eventPage struct {
	Events    []json.RawMessage `json:"events"`
	HasMore   bool              `json:"has_more"`
	NextAfter int64             `json:"next_after"`
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	after, err := parseAfter(q.Get("after"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	limit := defaultPageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.cfg.MaxPageSize {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("limit=%q must be an integer from 1 to %d", v, s.cfg.MaxPageSize))
			return
		}
		limit = n
	}
	withCorral, err := corralEventsParam(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f := eventbus.Filter{StartID: after + 1, Limit: limit + 1, ExcludeCorralExtensions: !withCorral}
	for _, t := range q["type"] {
		for _, x := range strings.Split(t, ",") {
			if x = strings.TrimSpace(x); x != "" {
				f.IncludeTypes = append(f.IncludeTypes, x)
			}
		}
	}
	if v := q.Get("source"); v != "" {
		switch src := eventbus.Source(v); src {
		case eventbus.SourceAgent, eventbus.SourceUser, eventbus.SourceEnvironment:
			f.Source = src
		default:
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("source=%q must be agent, user or environment", v))
			return
		}
	}
	items, err := s.eng.Events(r.Context(), id, f)
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("list events of session %q", id), err)
		return
	}
	page := eventPage{Events: make([]json.RawMessage, 0, min(len(items), limit)), NextAfter: after}
	for i, it := range items {
		if i == limit {
			page.HasMore = true
			break
		}
		page.Events = append(page.Events, it.JSON)
		page.NextAfter = it.ID
	}
	writeJSON(w, http.StatusOK, page)
}

// corralEventsQuery names the query parameter of GET /events and
// /events/ws that adds Corral's own events (runtime_status) to the
// OpenHands events; without it the API serves only events OpenHands'
// event_from_dict can decode.
const corralEventsQuery = "corral_events"

// corralEventsParam reads ?corral_events=true|false (absent = false).
func corralEventsParam(q url.Values) (bool, error) {
	v := q.Get(corralEventsQuery)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("query parameter %s=%q is not a boolean; use %s=true to add Corral's runtime_status events to the OpenHands events", corralEventsQuery, v, corralEventsQuery)
	}
	return b, nil
}

// parseAfter reads ?after=N: events with id > N are wanted; absent = all.
func parseAfter(v string) (int64, error) {
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < -1 {
		return 0, fmt.Errorf("after=%q must be an event id (an integer >= -1); events with larger ids are returned", v)
	}
	return n, nil
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p := r.URL.Query().Get("path")
	files, err := s.eng.ListFiles(r.Context(), id, p)
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("list files of session %q", id), err)
		return
	}
	if files == nil {
		files = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"path": p, "files": files})
}

func (s *Server) uploadFiles(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	dest := r.URL.Query().Get("destination")
	if !path.IsAbs(dest) {
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("destination=%q is not an absolute path; give the absolute path of a directory in the sandbox (it is created if missing; see GET /api/sessions/%s/files for the working directory's contents)", dest, id))
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "upload with Content-Type multipart/form-data and one or more parts named \"file\"")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_multipart", fmt.Sprintf("reading the multipart body failed: %v", err))
		return
	}
	var names []string
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.uploadError(w, r, err)
			return
		}
		if part.FormName() != "file" {
			part.Close()
			continue
		}
		name := part.FileName()
		if name == "" || name != path.Base(name) || name == "." || name == ".." || strings.Contains(name, "\\") {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("file part has filename %q; send a plain file name without directories", name))
			return
		}
		if err := s.eng.Upload(r.Context(), id, dest, name, part); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				s.uploadError(w, r, err)
				return
			}
			s.engineError(w, r, fmt.Sprintf("upload %q to %s in session %q", name, dest, id), err)
			return
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "the multipart body has no part named \"file\"; add one per file")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"destination": dest, "files": names})
}

func (s *Server) uploadError(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("upload is larger than %d bytes (max_upload_bytes); split it or raise the limit", mbe.Limit))
		return
	}
	writeError(w, http.StatusBadRequest, "bad_multipart", fmt.Sprintf("reading the multipart body failed: %v", err))
}

// downloadFiles answers GET .../files/download: a directory as a zip of
// its files, a single file as itself. The agent always packs a zip (a
// single file's marked by sandbox.SingleFileComment); it is spooled to a
// temporary file first so that a failure half-way still gets a JSON error
// rather than a truncated 200.
func (s *Server) downloadFiles(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p := r.URL.Query().Get("path")
	if !path.IsAbs(p) {
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("path=%q is not an absolute path; give the absolute path of a file or directory in the sandbox (see GET /api/sessions/%s/files)", p, id))
		return
	}
	tmp, err := os.CreateTemp("", "corral-download-*.zip")
	if err != nil {
		s.engineError(w, r, "create a temporary file for the zip", err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := s.eng.Download(r.Context(), id, p, tmp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("path %s does not exist in the sandbox of session %q; list its parent with GET /api/sessions/%s/files?path=%s", p, id, id, url.QueryEscape(path.Dir(p))))
			return
		}
		s.engineError(w, r, fmt.Sprintf("download %s from session %q", p, id), err)
		return
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		s.engineError(w, r, "read back the zip", err)
		return
	}
	zr, err := zip.NewReader(tmp, size)
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("download %s from session %q: the sandbox sent a malformed zip", p, id), err)
		return
	}
	if f, ok := sandbox.SingleFile(zr); ok {
		s.sendZipEntry(w, r, f)
		return
	}
	base := path.Base(p)
	if base == "/" {
		base = "root"
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": base + ".zip"}))
	w.Header().Set(downloadKindHeader, "directory")
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, io.NewSectionReader(tmp, 0, size))
}

// downloadKindHeader tells a client whether a download is a directory's
// zip or a file itself (a file may be named *.zip).
const downloadKindHeader = "X-Corral-Download"

// sendZipEntry answers with one file of the spooled archive, as itself.
// It is always an attachment of type application/octet-stream, so the
// browser never renders sandbox content in the API's origin.
func (s *Server) sendZipEntry(w http.ResponseWriter, r *http.Request, f *zip.File) {
	rc, err := f.Open()
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("unpack %s from the sandbox's zip", f.Name), err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.FormatUint(f.UncompressedSize64, 10))
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
	w.Header().Set(downloadKindHeader, "file")
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, rc)
}
