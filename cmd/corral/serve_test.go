package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeServeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "corral.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServeRefusesBadSettings(t *testing.T) {
	store := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		config  string
		code    int
		wantErr string
	}{
		{"public address without a token", []string{"--listen", "0.0.0.0:0"}, "", 2, "auth_tokens is empty"},
		{"unknown config key is named", nil, "[server]\nlisen = \"127.0.0.1:0\"\n", 2, "server.lisen"},
		{"short token in the file", []string{"--listen", "127.0.0.1:0"}, "[server]\nauth_tokens = [\"abc\"]\n", 2, "at least 16"},
		{"stray argument", []string{"now"}, "", 2, `unexpected argument "now"`},
		{"unknown runtime", []string{"--listen", "127.0.0.1:0", "--runtimes", "vm"}, "[events]\nstore_dir = \"" + store + "\"\n", 1, `unknown runtime "vm"; known: cli, docker, kubernetes, local, remote`},
		{"runtime API images on a runtime that is not enabled", nil, "[runtime_api]\napi_key = \"k\"\nimage_runtime = \"kubernetes\"\n", 2, `[runtime_api] image_runtime = "kubernetes" is not in [runtime] enabled = ["local"]`},
		{"missing config file", []string{"--config", "/nonexistent/corral.toml"}, "", 2, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = append([]string{"--config", writeServeConfig(t, tt.config)}, args...)
			}
			var stdout, stderr syncBuffer
			code := runServe(context.Background(), args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tt.code, tt.wantErr)
			}
		})
	}
}

func TestServeEnvironmentOverridesTheFile(t *testing.T) {
	cfg := defaultServeConfig()
	env := map[string]string{
		"CORRAL_SERVER_LISTEN":          "127.0.0.1:9999",
		"CORRAL_SERVER_AUTH_TOKENS":     "aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb",
		"CORRAL_SERVER_ALLOWED_ORIGINS": "http://x:1",
		"CORRAL_EVENTS_STORE_DIR":       "/srv/events",
	}
	applyServeEnv(&cfg, func(k string) string { return env[k] })
	if cfg.Server.Listen != "127.0.0.1:9999" || len(cfg.Server.AuthTokens) != 2 || cfg.Server.AuthTokens[1] != "bbbbbbbbbbbbbbbb" ||
		cfg.Server.AllowedOrigins[0] != "http://x:1" || cfg.Events.StoreDir != "/srv/events" {
		t.Fatalf("config after env: %+v %+v", cfg.Server, cfg.Events)
	}
}

func TestBrowseURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:7070": "http://127.0.0.1:7070/",
		"0.0.0.0:80":     "http://127.0.0.1:80/",
		"[::]:8080":      "http://127.0.0.1:8080/",
		"[::1]:1":        "http://[::1]:1/",
	} {
		if got := browseURL(addr); got != want {
			t.Errorf("browseURL(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestServeRunsAnActionAndShutsDownCleanly starts `corral serve` on a free
// port with the local runtime, runs `echo hello` through the API, then
// cancels (as SIGINT does) and expects exit 0 with the store closed.
func TestServeRunsAnActionAndShutsDownCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local sandbox; skipped in -short mode")
	}
	dir := t.TempDir()
	cfgPath := localServeConfig(t, dir, `
[runtime_api]
api_key = "runtime-api-key"
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- runServe(ctx, []string{"--config", cfgPath}, &stdout, &stderr) }()

	base := waitServeURL(t, &stdout, &stderr, done)
	post := func(path, body string) (int, []byte) {
		res, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	code, b := post("api/sessions", `{"runtime":"local"}`)
	if code != 201 {
		t.Fatalf("create session = %d %s", code, b)
	}
	var s struct{ ID string }
	_ = json.Unmarshal(b, &s)
	// The first action waits in the session's queue until the runtime is ready.
	code, b = post("api/sessions/"+s.ID+"/actions?wait=true", `{"action":"run","args":{"command":"echo hello"}}`)
	if code != 200 || !strings.Contains(string(b), `"content":"hello"`) {
		t.Fatalf("echo hello = %d %s", code, b)
	}
	// OpenHands' Runtime API is mounted under /runtime-api/ with its key.
	for key, want := range map[string]int{"runtime-api-key": 200, "wrong": 401} {
		req, _ := http.NewRequest("GET", base+"runtime-api/registry_prefix", nil)
		req.Header.Set("X-API-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("runtime API with key %q = %d, want %d", key, res.StatusCode, want)
		}
	}
	if !strings.Contains(stdout.String(), "runtime-api") {
		t.Fatalf("serve did not announce the Runtime API: %q", stdout.String())
	}
	checkWorkHostsReachAnApp(t, base, "runtime-api-key")
	res, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(page), "<title>Corral</title>") {
		t.Fatalf("UI page: %.200s", page)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatal("serve did not shut down within 90s of being cancelled")
	}
	if !strings.Contains(stdout.String(), "shutting down") {
		t.Fatalf("stdout %q", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "events", s.ID+".events")); err != nil {
		t.Fatalf("the session's events were not stored: %v", err)
	}
}

// localServeConfig builds corral-agent into dir and writes a serve config
// for the local runtime on a free loopback port, with its event store in
// dir; extra TOML is appended.
func localServeConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	agent := filepath.Join(dir, "corral-agent")
	build := exec.Command("go", "build", "-o", agent, "corral/cmd/corral-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build corral-agent: %v\n%s", err, out)
	}
	return writeServeConfig(t, `
[server]
listen = "127.0.0.1:0"
[engine]
skip_git_config = true
[events]
store_dir = "`+filepath.Join(dir, "events")+`"
[runtime.local]
agent_binary = "`+agent+`"
`+extra)
}

// waitServeURL waits for serve to print the URL it listens on.
func waitServeURL(t *testing.T, out, errs *syncBuffer, done <-chan int) string {
	t.Helper()
	re := regexp.MustCompile(`open (http://127\.0\.0\.1:\d+/)`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d early; stderr:\n%s", code, errs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no URL printed; stdout %q stderr %q", out.String(), errs.String())
		}
	}
}

// checkWorkHostsReachAnApp starts a sandbox through OpenHands' Runtime API,
// serves a page inside it on one of the work_hosts ports, as an OpenHands
// agent is told to, and fetches it through that work_hosts URL (the
// preview-port proxy), then stops the sandbox.
func checkWorkHostsReachAnApp(t *testing.T, base, apiKey string) {
	t.Helper()
	call := func(url string, hdr map[string]string, body any) map[string]any {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(res.Body).Decode(&m); err != nil || res.StatusCode != 200 {
			t.Fatalf("POST %s = %d (%v): %v", url, res.StatusCode, err, m)
		}
		return m
	}
	ctl := map[string]string{"X-API-Key": apiKey}
	started := call(base+"runtime-api/start", ctl, map[string]any{"image": "local", "session_id": "oh-apps"})
	hosts, _ := started["work_hosts"].(map[string]any)
	if len(hosts) == 0 {
		t.Fatalf("/start gave no work_hosts: %v", started)
	}
	var appURL string
	var port float64
	for u, p := range hosts {
		appURL, port = u, p.(float64)
		break
	}
	sandbox, _ := started["url"].(string)
	key, _ := started["session_api_key"].(string)
	serveApp := fmt.Sprintf("cd \"$(mktemp -d)\" && echo app-ok > index.html && (python3 -m http.server %d --bind 127.0.0.1 >/dev/null 2>&1 &)", int(port))
	action := map[string]any{"action": map[string]any{"action": "run", "args": map[string]any{"command": serveApp, "blocking": true}, "timeout": 30}}
	if obs := call(sandbox+"/execute_action", map[string]string{"X-Session-API-Key": key}, action); obs["observation"] != "run" {
		t.Fatalf("starting the app: %v", obs)
	}
	var last string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(last, "app-ok"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("GET %s (work_hosts, port %d) never served the app; last answer: %s", appURL, int(port), last)
		}
		if res, err := http.Get(appURL); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			last = fmt.Sprintf("%d %s", res.StatusCode, b)
		}
	}
	call(base+"runtime-api/stop", ctl, map[string]string{"runtime_id": started["runtime_id"].(string)})
}
