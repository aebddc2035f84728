package api

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"corral/eventbus"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupAgent()
	if code == 0 {
		// Library timers (protoactor's dead-letter throttle) end one period
		// after the engine shut down: give them a few seconds.
		var err error
		for try := 0; try < 5; try++ {
			if err = goleak.Find(); err == nil {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

type fixture struct {
	t     testing.TB
	eng   *testEngine
	srv   *Server
	ts    *httptest.Server
	token string
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	return newFixtureWith(t, fixtureOpts{}, mutate)
}

type fixtureOpts struct {
	subscriberBuffer int  // the engine's per-subscriber buffer (0 = default)
	smallSockets     bool // 32 KiB socket buffers, so a client that stops reading blocks writes quickly
}

// smallBufListener shrinks the send buffer of accepted connections.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(32 << 10)
	}
	return c, err
}

func newFixtureWith(t *testing.T, o fixtureOpts, mutate func(*Config)) *fixture {
	t.Helper()
	subscriberBuffer := o.subscriberBuffer
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	eng := newTestEngineBuffered(t, subscriberBuffer)
	srv, err := New(eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	if o.smallSockets {
		ts.Listener = smallBufListener{ts.Listener}
	}
	ts.Start()
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	f := &fixture{t: t, eng: eng, srv: srv, ts: ts}
	if len(cfg.AuthTokens) > 0 {
		f.token = cfg.AuthTokens[0]
	}
	return f
}

// do sends a request; body may be nil, a string (sent as is) or a value
// (sent as JSON). Extra headers come in name, value pairs.
func (f *fixture) do(method, path string, body any, hdr ...string) (int, []byte, http.Header) {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, f.ts.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := f.ts.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header
}

func (f *fixture) mustJSON(method, path string, body any, wantStatus int, out any) {
	f.t.Helper()
	code, b, _ := f.do(method, path, body)
	if code != wantStatus {
		f.t.Fatalf("%s %s = %d %s, want %d", method, path, code, b, wantStatus)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

func (f *fixture) newSession() string {
	f.t.Helper()
	var s Session
	f.mustJSON("POST", "/api/sessions", map[string]any{"runtime": "local"}, 201, &s)
	return s.ID
}

// errorCode decodes an error body, failing the test if it is not one.
func errorCode(t *testing.T, b []byte) (code, msg string) {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not a JSON error body: %s", b)
	}
	return e.Error.Code, e.Error.Message
}

func TestSessionLifecycle(t *testing.T) {
	f := newFixture(t, nil)
	code, b, hdr := f.do("POST", "/api/sessions", map[string]any{"id": "s1", "runtime": "local", "image": "img", "env": map[string]string{"A": "1"}, "resources": map[string]any{"memory_bytes": 1 << 20}})
	if code != 201 || hdr.Get("Location") != "/api/sessions/s1" {
		t.Fatalf("create = %d %s (Location %q)", code, b, hdr.Get("Location"))
	}
	var s Session
	_ = json.Unmarshal(b, &s)
	if s.ID != "s1" || s.Status != "RUNNING" || s.Backend != "local" || s.Created.IsZero() {
		t.Fatalf("created session = %+v", s)
	}
	f.newSession()

	var list struct{ Sessions []Session }
	f.mustJSON("GET", "/api/sessions", nil, 200, &list)
	if len(list.Sessions) != 2 || list.Sessions[0].ID != "s1" {
		t.Fatalf("list = %+v, want s1 first of 2", list.Sessions)
	}
	f.mustJSON("GET", "/api/sessions/s1", nil, 200, &s)
	if s.LastActivity.IsZero() {
		t.Fatalf("get = %+v", s)
	}
	f.mustJSON("POST", "/api/sessions/s1/pause", nil, 200, &s)
	if s.Status != "PAUSED" {
		t.Fatalf("pause: status %s", s.Status)
	}
	f.mustJSON("POST", "/api/sessions/s1/resume", nil, 200, &s)
	if s.Status != "RUNNING" {
		t.Fatalf("resume: status %s", s.Status)
	}
	f.mustJSON("DELETE", "/api/sessions/s1", nil, 200, &s)
	if s.Status != "STOPPED" {
		t.Fatalf("delete: status %s", s.Status)
	}
	code, b, _ = f.do("POST", "/api/sessions/s1/actions", map[string]any{"action": "run", "args": map[string]any{"command": "true"}})
	if c, _ := errorCode(t, b); code != 409 || c != "not_running" {
		t.Fatalf("action on stopped session = %d %s, want 409 not_running", code, b)
	}
	code, b, _ = f.do("POST", "/api/sessions", map[string]any{"id": "s1"})
	if c, _ := errorCode(t, b); code != 409 || c != "conflict" {
		t.Fatalf("duplicate id = %d %s, want 409", code, b)
	}
}

func TestActionWaitReturnsTheObservation(t *testing.T) {
	f := newFixture(t, nil)
	id := f.newSession()
	code, b, _ := f.do("POST", "/api/sessions/"+id+"/actions?wait=true", `{"action":"run","args":{"command":"echo hello; exit 3"}}`)
	if code != 200 {
		t.Fatalf("wait = %d %s", code, b)
	}
	obs, err := eventbus.Unmarshal(b)
	if err != nil {
		t.Fatalf("observation does not decode: %v: %s", err, b)
	}
	run, ok := obs.Observation.(*eventbus.CmdOutputObservation)
	if !ok || obs.Content != "hello" || run.Metadata.ExitCode != 3 || obs.Cause == nil || *obs.Cause != 0 || obs.ID != 1 {
		t.Fatalf("observation = %s", b)
	}
}

func TestActionWithoutWaitIsAcceptedAndItsObservationPaged(t *testing.T) {
	f := newFixture(t, nil)
	id := f.newSession()
	var acc actionAccepted
	for i := 0; i < 3; i++ {
		f.mustJSON("POST", "/api/sessions/"+id+"/actions", map[string]any{"action": "run", "source": "agent", "args": map[string]any{"command": fmt.Sprintf("echo n%d", i)}}, 202, &acc)
		if acc.ID != int64(2*i) || acc.Action != "run" || acc.SessionID != id {
			t.Fatalf("accepted = %+v", acc)
		}
		f.waitEvents(id, 2*i+2)
	}
	var page eventPage
	f.mustJSON("GET", "/api/sessions/"+id+"/events", nil, 200, &page)
	if len(page.Events) != 6 || page.HasMore || page.NextAfter != 5 {
		t.Fatalf("all events: %d events, has_more %v, next_after %d", len(page.Events), page.HasMore, page.NextAfter)
	}
	tests := []struct {
		name    string
		query   string
		wantIDs []int64
		more    bool
	}{
		{"limit pages from the start", "?limit=2", []int64{0, 1}, true},
		{"after continues a page", "?after=1&limit=2", []int64{2, 3}, true},
		{"last page has no more", "?after=3&limit=2", []int64{4, 5}, false},
		{"after the end is empty", "?after=5", nil, false},
		{"type keeps observations of that kind", "?type=observation:run", []int64{1, 3, 5}, false},
		{"type accepts comma lists", "?type=action:run,observation:run&limit=4", []int64{0, 1, 2, 3}, true},
		{"source filters by who sent it", "?source=environment&after=2", []int64{3, 5}, false},
		{"source agent keeps the actions", "?source=agent", []int64{0, 2, 4}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p eventPage
			f.mustJSON("GET", "/api/sessions/"+id+"/events"+tt.query, nil, 200, &p)
			var ids []int64
			for _, raw := range p.Events {
				e, err := eventbus.Unmarshal(raw)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, e.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.wantIDs) || p.HasMore != tt.more {
				t.Fatalf("ids %v has_more %v, want %v %v", ids, p.HasMore, tt.wantIDs, tt.more)
			}
		})
	}
}

// waitEvents polls until the session has n events.
func (f *fixture) waitEvents(id string, n int) {
	f.t.Helper()
	var page eventPage
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		f.mustJSON("GET", fmt.Sprintf("/api/sessions/%s/events?limit=%d", id, f.srv.cfg.MaxPageSize), nil, 200, &page)
		if len(page.Events) >= n {
			return
		}
	}
	f.t.Fatalf("session %s has %d events after 10s, want %d", id, len(page.Events), n)
}

func TestConfirmRunsAndRejectAnswersTheAction(t *testing.T) {
	f := newFixture(t, nil)
	id := f.newSession()
	awaiting := map[string]any{"action": "run", "args": map[string]any{"command": "echo ran", "confirmation_state": "awaiting_confirmation"}}
	var acc actionAccepted
	f.mustJSON("POST", "/api/sessions/"+id+"/actions", awaiting, 202, &acc)
	code, b, _ := f.do("POST", fmt.Sprintf("/api/sessions/%s/actions/%d/confirm", id, acc.ID), nil)
	if code != 200 || !strings.Contains(string(b), `"confirmed"`) {
		t.Fatalf("confirm = %d %s", code, b)
	}
	f.mustJSON("POST", "/api/sessions/"+id+"/actions", awaiting, 202, &acc)
	f.mustJSON("POST", fmt.Sprintf("/api/sessions/%s/actions/%d/reject", id, acc.ID), nil, 200, nil)
	code, b, _ = f.do("POST", fmt.Sprintf("/api/sessions/%s/actions/%d/reject", id, acc.ID), nil)
	if c, _ := errorCode(t, b); code != 409 || c != "conflict" {
		t.Fatalf("second reject = %d %s, want 409", code, b)
	}
	var page eventPage
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		f.mustJSON("GET", "/api/sessions/"+id+"/events?type=observation", nil, 200, &page)
		if len(page.Events) == 2 {
			break
		}
	}
	if len(page.Events) != 2 || !strings.Contains(string(page.Events[0]), `"ran"`) || !strings.Contains(string(page.Events[1]), `"user_rejected"`) {
		t.Fatalf("observations = %s", page.Events)
	}
}

func TestFilesUploadListDownload(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxUploadBytes = 64 << 10 })
	id := f.newSession()
	upload := func(dest string, files map[string]string) (int, []byte) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for name, content := range files {
			w, _ := mw.CreateFormFile("file", name)
			_, _ = w.Write([]byte(content))
		}
		mw.Close()
		code, b, _ := f.do("POST", "/api/sessions/"+id+"/files?destination="+dest, buf.Bytes(), "Content-Type", mw.FormDataContentType())
		return code, b
	}
	if code, b := upload("/workspace/sub", map[string]string{"a.txt": "alpha", "B.txt": "beta"}); code != 201 {
		t.Fatalf("upload = %d %s", code, b)
	}
	// A name with directories is reduced to its base name: nothing lands
	// outside the destination.
	if code, b := upload("/workspace/sub", map[string]string{"../../escape.txt": "x"}); code != 201 || !strings.Contains(string(b), `["escape.txt"]`) {
		t.Fatalf("upload with ../ = %d %s", code, b)
	}
	var list struct {
		Path  string
		Files []string
	}
	f.mustJSON("GET", "/api/sessions/"+id+"/files?path=/workspace", nil, 200, &list)
	if fmt.Sprint(list.Files) != "[sub/]" {
		t.Fatalf("list /workspace = %v", list.Files)
	}
	f.mustJSON("GET", "/api/sessions/"+id+"/files?path=/workspace/sub", nil, 200, &list)
	if fmt.Sprint(list.Files) != "[a.txt B.txt escape.txt]" {
		t.Fatalf("list /workspace/sub = %v", list.Files)
	}
	code, b, hdr := f.do("GET", "/api/sessions/"+id+"/files/download?path=/workspace", nil)
	if code != 200 || hdr.Get("Content-Type") != "application/zip" || !strings.Contains(hdr.Get("Content-Disposition"), "workspace.zip") {
		t.Fatalf("download = %d %v", code, hdr)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		c, _ := io.ReadAll(rc)
		rc.Close()
		got[zf.Name] = string(c)
	}
	if got["sub/a.txt"] != "alpha" || got["sub/B.txt"] != "beta" || len(got) != 3 {
		t.Fatalf("zip = %v", got)
	}

	errs := []struct {
		name    string
		code    int
		errCode string
		run     func() (int, []byte)
	}{
		{"relative destination", 400, "invalid_request", func() (int, []byte) { return upload("rel", map[string]string{"x": "1"}) }},
		{"no file part", 400, "invalid_request", func() (int, []byte) { return upload("/w", nil) }},
		{"upload over the limit", 413, "body_too_large", func() (int, []byte) {
			return upload("/w", map[string]string{"big": strings.Repeat("z", 100<<10)})
		}},
		{"not multipart", 415, "unsupported_media_type", func() (int, []byte) {
			c, b, _ := f.do("POST", "/api/sessions/"+id+"/files?destination=/w", "x")
			return c, b
		}},
		{"download of a relative path", 400, "invalid_request", func() (int, []byte) {
			c, b, _ := f.do("GET", "/api/sessions/"+id+"/files/download?path=x", nil)
			return c, b
		}},
		{"download of a missing directory", 404, "not_found", func() (int, []byte) {
			c, b, _ := f.do("GET", "/api/sessions/"+id+"/files/download?path=/nope", nil)
			return c, b
		}},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			code, b := tt.run()
			if c, _ := errorCode(t, b); code != tt.code || c != tt.errCode {
				t.Fatalf("= %d %s, want %d %s", code, b, tt.code, tt.errCode)
			}
		})
	}
}

func TestErrorsAreJSONWithTheRightStatus(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes = 2048 })
	id := f.newSession()
	s := "/api/sessions/" + id
	tests := []struct {
		name, method, path string
		body               any
		code               int
		errCode            string
		msgHas             string
	}{
		{"unknown session get", "GET", "/api/sessions/nope", nil, 404, "not_found", "nope"},
		{"unknown session delete", "DELETE", "/api/sessions/nope", nil, 404, "not_found", ""},
		{"unknown session pause", "POST", "/api/sessions/nope/pause", nil, 404, "not_found", ""},
		{"unknown session resume", "POST", "/api/sessions/nope/resume", nil, 404, "not_found", ""},
		{"unknown session action", "POST", "/api/sessions/nope/actions", `{"action":"run","args":{"command":"ls"}}`, 404, "not_found", ""},
		{"unknown session events", "GET", "/api/sessions/nope/events", nil, 404, "not_found", ""},
		{"unknown session websocket", "GET", "/api/sessions/nope/events/ws", nil, 404, "not_found", ""},
		{"unknown session files", "GET", "/api/sessions/nope/files", nil, 404, "not_found", ""},
		{"unknown session confirm", "POST", "/api/sessions/nope/actions/0/confirm", nil, 404, "not_found", ""},
		{"unknown event confirm", "POST", s + "/actions/99/confirm", nil, 404, "not_found", ""},
		{"event id not a number", "POST", s + "/actions/x/confirm", nil, 400, "invalid_request", `"x"`},
		{"malformed action JSON gives the offset", "POST", s + "/actions", `{"action": "run", "args": {]}`, 400, "malformed_json", "offset 28"},
		{"malformed session JSON gives the offset", "POST", "/api/sessions", `{"runtime": local}`, 400, "malformed_json", "offset 13"},
		{"truncated JSON", "POST", "/api/sessions", `{"runtime": "local"`, 400, "malformed_json", "ends at byte offset"},
		{"empty body", "POST", "/api/sessions", "", 400, "malformed_json", "empty"},
		{"unknown session field", "POST", "/api/sessions", `{"runtim": "local"}`, 400, "malformed_json", `"runtim"`},
		{"wrong field type", "POST", "/api/sessions", `{"env": []}`, 400, "malformed_json", `"env"`},
		{"trailing data", "POST", "/api/sessions", `{} {}`, 400, "malformed_json", "after the object"},
		{"bad session id", "POST", "/api/sessions", `{"id": "a/b"}`, 400, "invalid_request", "'/'"},
		{"bad env name", "POST", "/api/sessions", `{"env": {"1A": "x"}}`, 400, "invalid_request", `"1A"`},
		{"negative resources", "POST", "/api/sessions", `{"resources": {"pids_limit": -1}}`, 400, "invalid_request", "negative"},
		{"unknown runtime", "POST", "/api/sessions", `{"runtime": "vm"}`, 400, "unknown_runtime", `"vm"`},
		{"body too large", "POST", s + "/actions", `{"action":"run","args":{"command":"` + strings.Repeat("a", 4000) + `"}}`, 413, "body_too_large", "2048"},
		{"observation instead of action", "POST", s + "/actions", `{"observation":"run","content":"x","extras":{}}`, 400, "invalid_action", "only actions"},
		{"unknown action type", "POST", s + "/actions", `{"action":"fly","args":{}}`, 400, "invalid_action", "fly"},
		{"action with an id", "POST", s + "/actions", `{"id": 4, "action":"run","args":{"command":"ls"}}`, 400, "invalid_action", `"id"`},
		{"wait not a boolean", "POST", s + "/actions?wait=maybe", `{"action":"run","args":{"command":"ls"}}`, 400, "invalid_request", "maybe"},
		{"after not a number", "GET", s + "/events?after=x", nil, 400, "invalid_request", "after"},
		{"limit too large", "GET", s + "/events?limit=100000", nil, 400, "invalid_request", "limit"},
		{"bad source", "GET", s + "/events?source=robot", nil, 400, "invalid_request", "robot"},
		{"unknown route", "GET", "/api/nothing", nil, 404, "not_found", "openapi"},
		{"wrong method", "PUT", "/api/sessions", nil, 405, "method_not_allowed", "GET"},
		{"resume a running session", "POST", s + "/resume", nil, 409, "conflict", "RUNNING"},
		{"websocket without upgrade", "GET", s + "/events/ws", nil, 426, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b, hdr := f.do(tt.method, tt.path, tt.body)
			if code != tt.code {
				t.Fatalf("status %d %s, want %d", code, b, tt.code)
			}
			if tt.errCode == "" {
				return
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			c, msg := errorCode(t, b)
			if c != tt.errCode || !strings.Contains(msg, tt.msgHas) {
				t.Fatalf("error %s %q, want %s containing %q", c, msg, tt.errCode, tt.msgHas)
			}
		})
	}
}

func TestAuthTokens(t *testing.T) {
	token := "0123456789abcdef0123"
	f := newFixture(t, func(c *Config) { c.AuthTokens = []string{"another-token-1234567", token} })
	tests := []struct {
		name, path, auth string
		code             int
	}{
		{"no token", "/api/sessions", "", 401},
		{"wrong token", "/api/sessions", "Bearer wrong-token-000000000", 401},
		{"not bearer", "/api/sessions", "Basic " + token, 401},
		{"right token", "/api/sessions", "Bearer " + token, 200},
		{"metrics need the token", "/metrics", "", 401},
		{"metrics with the token", "/metrics", "Bearer " + token, 200},
		{"healthz is public", "/healthz", "", 200},
		{"readyz is public", "/readyz", "", 200},
		{"the UI page is public", "/", "", 200},
		{"the OpenAPI document is public", "/api/openapi.json", "", 200},
		{"query token only works for the websocket", "/api/sessions?access_token=" + token, "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b, hdr := f.do("GET", tt.path, nil, "Authorization", tt.auth)
			if code != tt.code {
				t.Fatalf("= %d %s, want %d", code, b, tt.code)
			}
			if code == 401 {
				if c, _ := errorCode(t, b); c != "unauthorized" || hdr.Get("WWW-Authenticate") == "" {
					t.Fatalf("401 body %s, WWW-Authenticate %q", b, hdr.Get("WWW-Authenticate"))
				}
			}
		})
	}
}

func TestCORS(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AllowedOrigins = []string{"http://ui.example:3000"} })
	tests := []struct {
		name, method, origin string
		preflight            bool
		code                 int
		allowOrigin          string
	}{
		{"allowed preflight", "OPTIONS", "http://ui.example:3000", true, 204, "http://ui.example:3000"},
		{"allowed GET gets the header", "GET", "http://ui.example:3000", false, 200, "http://ui.example:3000"},
		{"foreign preflight is refused", "OPTIONS", "http://evil.example", true, 403, ""},
		{"foreign GET runs without the header", "GET", "http://evil.example", false, 200, ""},
		{"foreign POST is refused", "POST", "http://evil.example", false, 403, ""},
		{"same origin needs no configuration", "GET", "", false, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := []string{"Origin", tt.origin}
			if tt.preflight {
				hdr = append(hdr, "Access-Control-Request-Method", "POST")
			}
			code, b, h := f.do(tt.method, "/api/sessions", nil, hdr...)
			if code != tt.code || h.Get("Access-Control-Allow-Origin") != tt.allowOrigin {
				t.Fatalf("= %d %s, Allow-Origin %q; want %d %q", code, b, h.Get("Access-Control-Allow-Origin"), tt.code, tt.allowOrigin)
			}
			if tt.preflight && code == 204 && !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
				t.Fatalf("preflight allows headers %q", h.Get("Access-Control-Allow-Headers"))
			}
		})
	}
	// The server's own origin is always fine.
	code, b, _ := f.do("POST", "/api/sessions", map[string]any{}, "Origin", f.ts.URL)
	if code != 201 {
		t.Fatalf("same-origin POST = %d %s", code, b)
	}
}

func TestProbesMetricsAndSummary(t *testing.T) {
	f := newFixture(t, nil)
	f.mustJSON("GET", "/healthz", nil, 200, nil)
	f.mustJSON("GET", "/readyz", nil, 200, nil)
	f.eng.mu.Lock()
	f.eng.notReady = fmt.Errorf("still starting")
	f.eng.mu.Unlock()
	code, b, _ := f.do("GET", "/readyz", nil)
	if c, msg := errorCode(t, b); code != 503 || c != "not_ready" || !strings.Contains(msg, "still starting") {
		t.Fatalf("readyz when not ready = %d %s", code, b)
	}

	id := f.newSession()
	f.srv.Metrics().ObserveAction("run", "local", "ok", 2*time.Millisecond)
	f.mustJSON("POST", "/api/sessions/"+id+"/actions?wait=true", `{"action":"run","args":{"command":"true"}}`, 200, nil)
	var sum summaryBody
	f.mustJSON("GET", "/api/metrics/summary", nil, 200, &sum)
	if sum.Sessions != 1 || sum.SessionsByStatus["RUNNING"] != 1 || sum.Actions != 1 || sum.P50Ms != 2 || sum.ActionsPerSecond <= 0 {
		t.Fatalf("summary = %+v", sum)
	}
	code, b, hdr := f.do("GET", "/metrics", nil)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics = %d %v", code, hdr)
	}
	for _, want := range []string{
		`corral_http_requests_total{code="201",route="POST /api/sessions"} 1`,
		`corral_http_requests_total{code="503",route="GET /readyz"} 1`,
		`corral_actions_total{outcome="ok",type="run"} 1`,
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestUIIsServedFromTheBinary(t *testing.T) {
	f := newFixture(t, nil)
	for path, ct := range map[string]string{"/": "text/html", "/ui/app.js": "text/javascript", "/ui/style.css": "text/css"} {
		code, b, hdr := f.do("GET", path, nil)
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), ct) || len(b) < 100 || !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Fatalf("%s = %d %v", path, code, hdr)
		}
		// No request may leave the server: no absolute URLs in the assets.
		for _, bad := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s references %q", path, bad)
			}
		}
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults are valid", func(c *Config) {}, ""},
		{"loopback v6 without token", func(c *Config) { c.Listen = "[::1]:7070" }, ""},
		{"localhost without token", func(c *Config) { c.Listen = "localhost:0" }, ""},
		{"all interfaces without token is refused", func(c *Config) { c.Listen = "0.0.0.0:7070" }, "auth_tokens is empty"},
		{"empty host without token is refused", func(c *Config) { c.Listen = ":7070" }, "auth_tokens is empty"},
		{"public address with a token", func(c *Config) { c.Listen = "0.0.0.0:7070"; c.AuthTokens = []string{"0123456789abcdef"} }, ""},
		{"short token", func(c *Config) { c.AuthTokens = []string{"short"} }, "at least 16"},
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, "HOST:PORT"},
		{"origin with a path", func(c *Config) { c.AllowedOrigins = []string{"http://x/app"} }, "allowed_origins[0]"},
		{"zero ws buffer", func(c *Config) { c.WSBuffer = 0 }, "ws_buffer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := New(newTestEngine(t), Config{Listen: "0.0.0.0:1"}); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}
