package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestForkCommandForksThroughTheServer runs `corral serve` in-process with
// the local runtime and `corral fork` against it: the fork sees the
// parent's file and names its fork point; bad input is refused.
func TestForkCommandForksThroughTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts local sandboxes; skipped in -short mode")
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
	post := func(path, body string) string {
		t.Helper()
		res, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
		}
		return string(b)
	}
	var s struct{ ID string }
	_ = json.Unmarshal([]byte(post("api/sessions", `{"runtime":"local"}`)), &s)
	post("api/sessions/"+s.ID+"/actions?wait=true", `{"action":"run","args":{"command":"echo parent-data > f.txt"}}`)

	fork := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"fork", "--server", base}, args...), strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := fork("--json", "--id", "cli-fork", s.ID)
	if code != 0 || !strings.Contains(out, `"forked_from":{"session":"`+s.ID+`"`) {
		t.Fatalf("fork --json = %d, stdout %q, stderr %q; want the child with forked_from", code, out, errs)
	}
	obs := post("api/sessions/cli-fork/actions?wait=true", `{"action":"run","args":{"command":"cat f.txt"}}`)
	if !strings.Contains(obs, "parent-data") {
		t.Fatalf("the fork reads %s, want the parent's file", obs)
	}
	if code, out, errs := fork("--at", "0", s.ID); code != 0 || strings.TrimSpace(out) == "" {
		t.Fatalf("fork --at 0 = %d %q %q, want the new session's id", code, out, errs)
	}

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown session", []string{"nosuchsession"}, 1, "not_found, HTTP 404"},
		{"beyond the stream", []string{"--at", "100000", s.ID}, 1, "last event id is"},
		{"taken id", []string{"--id", "cli-fork", s.ID}, 1, "HTTP 409"},
		{"no session", nil, 2, "want exactly one SESSION"},
		{"at below -1", []string{"--at", "-2", s.ID}, 2, "want an event id"},
		{"server not http", []string{"--server", "ftp://host", s.ID}, 2, "not an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := fork(tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.stderr) {
				t.Fatalf("fork %q = %d, stderr %q; want %d with %q", tc.args, code, errs, tc.code, tc.stderr)
			}
		})
	}
}
