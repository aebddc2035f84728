package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"corral/runtimes"
)

// logLines splits a log body into lines and checks each starts with an
// RFC 3339 nano timestamp followed by a space.
func logLines(t *testing.T, body string) []string {
	t.Helper()
	body = strings.TrimSuffix(body, "\n")
	if body == "" {
		return nil
	}
	lines := strings.Split(body, "\n")
	for _, l := range lines {
		stamp, _, ok := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, stamp); !ok || err != nil {
			t.Errorf("log line %q does not start with an RFC 3339 timestamp and a space (%v)", l, err)
		}
	}
	return lines
}

// followLogs opens GET .../logs?follow=true&tail=N and returns the open
// response: when it returns, the server has opened the sandbox's log.
func followLogs(t *testing.T, f *fixture, id string, tail int) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", fmt.Sprintf("%s/api/sessions/%s/logs?follow=true&tail=%d", f.ts.URL, id, tail), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("follow logs = %d %s, want 200", res.StatusCode, b)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	return res
}

// checkLogsFollowUntilStop follows the session's log from its end, stops
// the session and checks the stream ends on its own, with the agent's last
// words and then the end line.
func checkLogsFollowUntilStop(t *testing.T, f *fixture, id string) {
	t.Helper()
	res := followLogs(t, f, id, 0)
	defer res.Body.Close()
	read := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(res.Body) // ends when the server ends the stream
		read <- string(b)
	}()
	f.mustJSON("DELETE", "/api/sessions/"+id, nil, 200, nil)
	var body string
	select {
	case body = <-read:
	case <-time.After(60 * time.Second): // a hang guard, not a synchronisation
		t.Fatal("the followed log did not end after the session stopped")
	}
	lines := logLines(t, body)
	if len(lines) == 0 || !strings.HasSuffix(lines[len(lines)-1], " corral: end of logs: the sandbox stopped") {
		t.Fatalf("followed log does not end with the end line:\n%s", body)
	}
	if !strings.Contains(body, "corral-agent: shutting down") {
		t.Errorf("followed log lacks the agent's last line (shutting down):\n%s", body)
	}
}

// checkLogsSoFar checks the log as it is, whole and tailed.
func checkLogsSoFar(t *testing.T, f *fixture, id string) {
	t.Helper()
	code, b, hdr := f.do("GET", "/api/sessions/"+id+"/logs", nil)
	if code != 200 {
		t.Fatalf("GET logs = %d %s", code, b)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	all := logLines(t, string(b))
	if !strings.Contains(string(b), "corral-agent started") {
		t.Fatalf("log lacks the agent's start line:\n%s", b)
	}
	if strings.Contains(string(b), "end of logs") {
		t.Errorf("a log read without follow has an end line:\n%s", b)
	}
	code, b, _ = f.do("GET", "/api/sessions/"+id+"/logs?tail=1", nil)
	if got := logLines(t, string(b)); code != 200 || len(got) != 1 || got[0] != all[len(all)-1] {
		t.Errorf("tail=1 = %d %q, want the last line %q", code, b, all[len(all)-1])
	}
	code, b, _ = f.do("GET", "/api/sessions/"+id+"/logs?tail=0", nil)
	if code != 200 || len(b) != 0 {
		t.Errorf("tail=0 = %d %q, want 200 and nothing", code, b)
	}
	code, b, _ = f.do("GET", fmt.Sprintf("/api/sessions/%s/logs?tail=%d", id, MaxLogTail), nil)
	if got := logLines(t, string(b)); code != 200 || len(got) != len(all) {
		t.Errorf("tail=%d = %d, %d lines, want the whole log (%d lines)", MaxLogTail, code, len(got), len(all))
	}
}

func TestLogsOfALocalSandboxThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real local sandboxes; skipped in -short mode")
	}
	f := newRealFixture(t, nil)
	id := f.readySession()
	checkLogsSoFar(t, f.fixture, id)
	checkLogsFollowUntilStop(t, f.fixture, id)

	// Stopped: its sandbox is released, so are its logs.
	code, b, _ := f.do("GET", "/api/sessions/"+id+"/logs", nil)
	wantError(t, code, b, 409, "not_running")
}

// TestLogsFollowEndsWhenTheServerCloses: a followed log does not hold the
// server's shutdown; it ends with a line saying why.
func TestLogsFollowEndsWhenTheServerCloses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real local sandbox; skipped in -short mode")
	}
	f := newRealFixture(t, nil)
	id := f.readySession()
	res := followLogs(t, f.fixture, id, 1)
	defer res.Body.Close()
	f.srv.Close()
	b, err := io.ReadAll(res.Body)
	lines := logLines(t, string(b))
	if err != nil || len(lines) != 2 || !strings.HasSuffix(lines[1], " corral: end of logs: the server is shutting down") {
		t.Fatalf("followed log after the server closed = %q, %v; want the last line, then the end line", b, err)
	}
}

func TestLogsBadInputIsAClearError(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real local sandbox; skipped in -short mode")
	}
	f := newRealFixture(t, nil)
	id := f.readySession()
	for _, tc := range []struct {
		name, query string
		status      int
		code, says  string
	}{
		{"negative tail", "?tail=-1", 400, "invalid_request", "from 0 to 100000"},
		{"tail over the limit", "?tail=100001", 400, "invalid_request", "from 0 to 100000"},
		{"tail not a number", "?tail=ten", 400, "invalid_request", `tail="ten"`},
		{"empty tail", "?tail=", 400, "invalid_request", "leave tail out"},
		{"follow not a boolean", "?follow=always", 400, "invalid_request", `follow="always"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b, _ := f.do("GET", "/api/sessions/"+id+"/logs"+tc.query, nil)
			msg := wantError(t, code, b, tc.status, tc.code)
			if !strings.Contains(msg, tc.says) {
				t.Errorf("message %q does not say %q", msg, tc.says)
			}
		})
	}
	t.Run("unknown session", func(t *testing.T) {
		code, b, _ := f.do("GET", "/api/sessions/nosuchsession/logs?follow=true", nil)
		wantError(t, code, b, 404, "not_found")
	})
}

// goneEngine is the test engine with a LogsEngine whose sandbox is gone,
// as a backend reports it (runtimes.ErrNotFound).
type goneEngine struct{ *testEngine }

func (goneEngine) Logs(_ context.Context, id string, _ runtimes.LogOptions) (io.ReadCloser, error) {
	return nil, fmt.Errorf("session %s: logs of sandbox c0ffee: docker backend: container c0ffee: %w", id, runtimes.ErrNotFound)
}

func TestLogsOfAGoneSandboxIs410AndWithoutLogsEngine501(t *testing.T) {
	te := newTestEngine(t)
	for _, tc := range []struct {
		name   string
		eng    Engine
		status int
		code   string
	}{
		{"sandbox gone", goneEngine{te}, 410, "sandbox_gone"},
		{"engine without logs", te, 501, "not_supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(tc.eng, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			ts := httptest.NewServer(srv)
			defer ts.Close()
			f := &fixture{t: t, srv: srv, ts: ts}
			code, b, _ := f.do("GET", "/api/sessions/s1/logs", nil)
			wantError(t, code, b, tc.status, tc.code)
		})
	}
}

// wantError checks a JSON error answer and returns its message.
func wantError(t *testing.T, code int, b []byte, status int, errCode string) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("answer %d %q is not a JSON error: %v", code, b, err)
	}
	if code != status || e.Error.Code != errCode || e.Error.Message == "" {
		t.Fatalf("answer = %d %s, want %d with code %s and a message", code, b, status, errCode)
	}
	return e.Error.Message
}
