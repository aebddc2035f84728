package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestLogsCommandReadsThroughTheServer runs `corral serve` in-process with
// the local runtime and `corral logs` against it: the whole log, a tail,
// following until the session is stopped, and the server's refusals.
func TestLogsCommandReadsThroughTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local sandbox; skipped in -short mode")
	}
	cfgPath := localServeConfig(t, t.TempDir(), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveOut, serveErr syncBuffer
	done := make(chan int, 1)
	go func() { done <- runServe(ctx, []string{"--config", cfgPath}, &serveOut, &serveErr) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d; stderr:\n%s", code, serveErr.String())
		}
	}()
	base := waitServeURL(t, &serveOut, &serveErr, done)

	res, err := http.Post(base+"api/sessions", "application/json", strings.NewReader(`{"runtime":"local"}`))
	if err != nil {
		t.Fatal(err)
	}
	var s struct{ ID string }
	_ = json.NewDecoder(res.Body).Decode(&s)
	res.Body.Close()
	// An action's observation means the sandbox is up and its agent logged.
	res, err = http.Post(base+"api/sessions/"+s.ID+"/actions?wait=true", "application/json", strings.NewReader(`{"action":"run","args":{"command":"true"}}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	logs := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"logs", "--server", base}, args...), strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	stamped := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z `)
	code, out, errs := logs(s.ID)
	if code != 0 || !strings.Contains(out, "corral-agent started") {
		t.Fatalf("logs = %d, stdout %q, stderr %q; want the agent's start line", code, out, errs)
	}
	code, out, errs = logs("--tail", "1", s.ID)
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); code != 0 || len(lines) != 1 || !stamped.MatchString(lines[0]) {
		t.Errorf("logs --tail 1 = %d %q (stderr %q), want one stamped line", code, out, errs)
	}

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown session", []string{"nosuchsession"}, 1, "not_found, HTTP 404"},
		{"no session", nil, 2, "want exactly one SESSION"},
		{"two sessions", []string{"a", "b"}, 2, "want exactly one SESSION"},
		{"tail out of range", []string{"--tail", "-2", s.ID}, 2, "from 0 to 100000"},
		{"server without scheme", []string{"--server", "127.0.0.1:7070", s.ID}, 2, "give the URL corral serve prints"},
		{"server not http", []string{"--server", "ftp://host", s.ID}, 2, "not an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := logs(tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.stderr) {
				t.Errorf("logs %q = %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.stderr)
			}
		})
	}

	// -f after the session id: follows until the session is stopped.
	type result struct {
		code      int
		out, errs string
	}
	followed := make(chan result, 1)
	pr, pw := io.Pipe()
	go func() {
		var errb bytes.Buffer
		code := run(context.Background(), []string{"logs", "--server", base, "--tail", "1", s.ID, "-f"}, strings.NewReader(""), pw, &errb)
		pw.CloseWithError(io.EOF)
		followed <- result{code: code, errs: errb.String()}
	}()
	// The last line arriving means the follow is open: then stop the
	// session; the stream must end by itself.
	rd := bufio.NewReader(pr)
	first, err := rd.ReadString('\n')
	if err != nil {
		r := <-followed
		t.Fatalf("logs -f: no first line (%v); exit %d, stderr %q", err, r.code, r.errs)
	}
	req, _ := http.NewRequest("DELETE", base+"api/sessions/"+s.ID, nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	rest, _ := io.ReadAll(rd)
	r := <-followed
	all := first + string(rest)
	if r.code != 0 || !strings.Contains(all, "corral-agent: shutting down") || !strings.HasSuffix(all, "corral: end of logs: the sandbox stopped\n") {
		t.Fatalf("logs -f = %d, stdout %q, stderr %q; want the agent's last line and the end line", r.code, all, r.errs)
	}
}
