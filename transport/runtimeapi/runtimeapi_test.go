package runtimeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"corral/actors"
	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/local"
)

var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "corral-runtimeapi-test-")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "corral-agent")
	cmd := exec.Command("go", "build", "-o", agentBin, "corral/cmd/corral-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic("building corral-agent: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const apiKey = "control-plane-key"

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv, _ := newEnv(t, nil)
	return srv
}

// newEnv serves the Runtime API of a real engine over the local backend
// (as "local") plus the backends extra returns, with prov's settings
// (nil: the defaults); prov.Engine and prov.Runtimes are filled in.
func newEnv(t *testing.T, prov *EngineProvisioner, extra ...runtimes.Backend) (*httptest.Server, *actors.Engine) {
	t.Helper()
	b, err := local.New(local.WithAgentBinary(agentBin), local.WithTempDir(t.TempDir()), local.WithEnv("HOME="+t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := runtimes.NewRegistry(append([]runtimes.Backend{b}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := actors.DefaultConfig()
	cfg.SkipGitConfig = true
	cfg.DefaultRuntime = "local"
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := actors.NewEngine(cfg, reg, actors.WithLogger(logger), actors.WithHostEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if prov == nil {
		prov = &EngineProvisioner{}
	}
	prov.Engine, prov.Runtimes = e, reg
	h, err := New(prov, apiKey, WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/runtime-api/", http.StripPrefix("/runtime-api", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("engine shutdown: %v", err)
		}
		_ = b.Close()
	})
	return srv, e
}

type call struct {
	t      *testing.T
	header map[string]string
}

func (c call) do(method, url string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if m == nil {
		m = map[string]any{"_raw": string(raw)}
	}
	return resp.StatusCode, m
}

func runAction(cmd string) map[string]any {
	a := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: cmd, ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
	a.SetHardTimeout(30, false)
	b, _ := eventbus.Marshal(a)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return map[string]any{"action": m}
}

// TestRemoteRuntimeFlowAsOpenHandsDrivesIt follows OpenHands' RemoteRuntime
// (reference §4.4): start, poll the runtime until ready, execute actions
// through the returned url with the session API key, pause, resume, stop.
func TestRemoteRuntimeFlowAsOpenHandsDrivesIt(t *testing.T) {
	srv := newServer(t)
	api := srv.URL + "/runtime-api"
	ctl := call{t, map[string]string{"X-API-Key": apiKey}}

	status, _ := ctl.do("GET", api+"/sessions/oh-1", nil)
	if status != http.StatusNotFound {
		t.Fatalf("unknown session: status %d, want 404", status)
	}
	status, body := ctl.do("POST", api+"/start", map[string]any{
		"image": "local", "command": []string{"ignored"}, "working_dir": "/openhands/code/",
		"environment": map[string]string{"FROM_START": "yes"}, "session_id": "oh-1", "resource_factor": 1,
	})
	if status != http.StatusOK {
		t.Fatalf("/start: %d %v", status, body)
	}
	rid, _ := body["runtime_id"].(string)
	url, _ := body["url"].(string)
	key, _ := body["session_api_key"].(string)
	if rid == "" || key == "" || !strings.HasPrefix(url, srv.URL+"/runtime-api/sandbox/") {
		t.Fatalf("/start answer: %v", body)
	}
	// work_hosts: two app ports, one in each of OpenHands' ranges, each
	// behind the server's preview-port proxy for this sandbox.
	hosts, _ := body["work_hosts"].(map[string]any)
	if len(hosts) != 2 {
		t.Fatalf("work_hosts = %v, want two app hosts", body["work_hosts"])
	}
	for u, p := range hosts {
		port, _ := p.(float64)
		want := fmt.Sprintf("%s/api/sessions/%s/ports/%d/", srv.URL, rid, int(port))
		if u != want || !(port >= 50000 && port < 60000) {
			t.Fatalf("work_hosts entry %s -> %v, want %s -> a port in 50000-59999", u, p, want)
		}
	}
	status, body = ctl.do("GET", api+"/runtime/"+rid, nil)
	if status != http.StatusOK || body["pod_status"] != "ready" || body["runtime_id"] != rid {
		t.Fatalf("/runtime: %d %v", status, body)
	}

	data := call{t, map[string]string{"X-Session-API-Key": key}}
	if status, body := data.do("GET", url+"/alive", nil); status != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("/alive through the proxy: %d %v", status, body)
	}
	status, body = data.do("POST", url+"/execute_action", runAction("echo hello-$FROM_START; export KEPT=1"))
	if status != http.StatusOK || body["observation"] != "run" || !strings.Contains(body["content"].(string), "hello-yes") {
		t.Fatalf("/execute_action: %d %v", status, body)
	}
	if status, _ := (call{t, nil}).do("POST", url+"/execute_action", runAction("true")); status != http.StatusForbidden {
		t.Fatalf("execute without X-Session-API-Key: status %d, want 403", status)
	}

	if status, body := ctl.do("POST", api+"/pause", map[string]string{"runtime_id": rid}); status != http.StatusOK {
		t.Fatalf("/pause: %d %v", status, body)
	}
	if status, body := ctl.do("GET", api+"/sessions/oh-1", nil); status != http.StatusOK || body["status"] != "paused" {
		t.Fatalf("session after pause: %d %v", status, body)
	}
	if status, _ := data.do("POST", url+"/execute_action", runAction("true")); status != http.StatusServiceUnavailable {
		t.Fatalf("action on a paused sandbox: status %d, want 503 (OpenHands resumes on 503)", status)
	}
	if status, body := ctl.do("POST", api+"/resume", map[string]string{"runtime_id": rid}); status != http.StatusOK {
		t.Fatalf("/resume: %d %v", status, body)
	}
	status, body = data.do("POST", url+"/execute_action", runAction("echo kept=$KEPT"))
	if status != http.StatusOK || !strings.Contains(body["content"].(string), "kept=1") {
		t.Fatalf("after resume: %d %v", status, body)
	}
	// A second /start for the same session attaches to the running sandbox.
	status, body = ctl.do("POST", api+"/start", map[string]any{"image": "local", "session_id": "oh-1"})
	if status != http.StatusOK || body["runtime_id"] != rid {
		t.Fatalf("re-start: %d %v", status, body)
	}
	if status, body := ctl.do("POST", api+"/stop", map[string]string{"runtime_id": rid}); status != http.StatusOK {
		t.Fatalf("/stop: %d %v", status, body)
	}
	if _, body := ctl.do("GET", api+"/sessions/oh-1", nil); body["status"] == "running" {
		t.Fatalf("session after stop: %v", body)
	}
	if status, _ := data.do("POST", url+"/execute_action", runAction("true")); status != http.StatusNotFound {
		t.Fatalf("action on a stopped sandbox: status %d, want 404", status)
	}
}

func TestControlPlaneErrors(t *testing.T) {
	srv := newServer(t)
	api := srv.URL + "/runtime-api"
	ctl := call{t, map[string]string{"X-API-Key": apiKey}}
	tests := []struct {
		name   string
		c      call
		method string
		path   string
		body   any
		status int
		detail string
	}{
		{"missing key", call{t, nil}, "POST", "/start", map[string]any{"image": "local", "session_id": "x"}, 401, "X-API-Key"},
		{"wrong key", call{t, map[string]string{"X-API-Key": "nope"}}, "GET", "/registry_prefix", nil, 401, "X-API-Key"},
		{"start without session", ctl, "POST", "/start", map[string]any{"image": "local"}, 400, "session_id"},
		{"build is not supported", ctl, "POST", "/build", nil, 501, "not supported"},
		{"stop unknown runtime", ctl, "POST", "/stop", map[string]string{"runtime_id": "nope"}, 404, "not found"},
		{"stop without body", ctl, "POST", "/stop", nil, 400, "runtime_id"},
		{"image_exists without image", ctl, "GET", "/image_exists", nil, 400, "image"},
		{"unknown runtime", ctl, "GET", "/runtime/nope", nil, 404, "not found"},
		{"start with a missing docker runtime", ctl, "POST", "/start", map[string]any{"image": "ubuntu:22.04", "session_id": "d1"}, 500, "docker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := tc.c.do(tc.method, api+tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d (%v)", status, tc.status, body)
			}
			if d, _ := body["detail"].(string); !strings.Contains(d, tc.detail) {
				t.Fatalf("detail %q, want it to mention %q", d, tc.detail)
			}
		})
	}
	status, body := ctl.do("GET", api+"/image_exists?image=local", nil)
	if status != 200 || body["exists"] != true {
		t.Fatalf("image_exists local: %d %v", status, body)
	}
	status, body = ctl.do("GET", api+"/image_exists?image=nope:latest", nil)
	if status != 200 || body["exists"] != false {
		t.Fatalf("image_exists nope: %d %v", status, body)
	}
	if _, err := New(&EngineProvisioner{}, ""); err == nil {
		t.Fatal("a Runtime API without a key must not start")
	}
}
