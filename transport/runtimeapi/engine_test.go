package runtimeapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"corral/runtimes"
	"corral/runtimes/local"
	"corral/transport/agentwire"
)

var _ runtimes.HTTPAgent = (*agentwire.Client)(nil)

// wrappedBackend is a backend under another name and capabilities that
// records the specs it starts and counts the connections it opens and the
// HTTP requests sent over them.
type wrappedBackend struct {
	runtimes.Backend
	name string
	caps runtimes.Capabilities

	mu       sync.Mutex
	specs    []runtimes.Spec
	connects atomic.Int64
	requests atomic.Int64
}

func (b *wrappedBackend) Name() string                        { return b.name }
func (b *wrappedBackend) Capabilities() runtimes.Capabilities { return b.caps }

func (b *wrappedBackend) Start(ctx context.Context, spec runtimes.Spec) (*runtimes.Handle, error) {
	b.mu.Lock()
	b.specs = append(b.specs, spec)
	b.mu.Unlock()
	return b.Backend.Start(ctx, spec)
}

func (b *wrappedBackend) lastSpec(t *testing.T) runtimes.Spec {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.specs) == 0 {
		t.Fatal("no sandbox was started")
	}
	return b.specs[len(b.specs)-1]
}

func (b *wrappedBackend) Connect(ctx context.Context, h *runtimes.Handle) (runtimes.AgentConn, error) {
	c, err := b.Backend.Connect(ctx, h)
	if err != nil {
		return nil, err
	}
	b.connects.Add(1)
	return &countingConn{AgentConn: c, b: b}, nil
}

// countingConn is the backend's connection; it speaks HTTP only when the
// connection it wraps does.
type countingConn struct {
	runtimes.AgentConn
	b *wrappedBackend
}

func (c *countingConn) RoundTrip(req *http.Request) (*http.Response, error) {
	c.b.requests.Add(1)
	return c.AgentConn.(runtimes.HTTPAgent).RoundTrip(req)
}

func newWrapped(t *testing.T, name string, caps runtimes.Capabilities) *wrappedBackend {
	t.Helper()
	b, err := local.New(local.WithAgentBinary(agentBin), local.WithTempDir(t.TempDir()), local.WithEnv("HOME="+t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return &wrappedBackend{Backend: b, name: name, caps: caps}
}

// TestRestartAfterStopAsRemoteRuntimeConnects does what OpenHands'
// RemoteRuntime does when it connects again to a session whose runtime was
// stopped: /start with the same session_id must give a ready sandbox with a
// new session_api_key, the old key must stop working, and the session's
// events go on. Every proxied request goes over the backend's connection.
func TestRestartAfterStopAsRemoteRuntimeConnects(t *testing.T) {
	wb := newWrapped(t, "counted", runtimes.Capabilities{Pause: true, Recover: true})
	srv, eng := newEnv(t, &EngineProvisioner{LocalRuntime: "counted"}, wb)
	api := srv.URL + "/runtime-api"
	ctl := call{t, map[string]string{"X-API-Key": apiKey}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const sid = "oh-restart"

	start := func() (rid, url, key string) {
		t.Helper()
		status, body := ctl.do("POST", api+"/start", map[string]any{
			"image": "local", "command": []string{"ignored"}, "working_dir": "/openhands/code/",
			"environment": map[string]string{}, "session_id": sid, "resource_factor": 1,
		})
		if status != http.StatusOK || body["pod_status"] != "ready" || body["status"] != "running" {
			t.Fatalf("/start: %d %v (want a ready sandbox, never pending)", status, body)
		}
		rid, _ = body["runtime_id"].(string)
		url, _ = body["url"].(string)
		key, _ = body["session_api_key"].(string)
		if rid == "" || url == "" || key == "" {
			t.Fatalf("/start answer: %v", body)
		}
		// RemoteRuntime then polls /runtime/{id} until pod_status is ready.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			status, body := ctl.do("GET", api+"/runtime/"+rid, nil)
			if status == http.StatusOK && body["pod_status"] == "ready" {
				break
			}
			if status != http.StatusOK || body["pod_status"] != "pending" || time.Now().After(deadline) {
				t.Fatalf("/runtime after /start: %d %v", status, body)
			}
		}
		return rid, url, key
	}
	execute := func(url, key, cmd string) (int, map[string]any) {
		t.Helper()
		return call{t, map[string]string{"X-Session-API-Key": key}}.do("POST", url+"/execute_action", runAction(cmd))
	}

	rid1, url1, key1 := start()
	if status, body := execute(url1, key1, "echo first-run"); status != http.StatusOK || !strings.Contains(body["content"].(string), "first-run") {
		t.Fatalf("/execute_action: %d %v", status, body)
	}
	before, err := eng.History(ctx, sid, 0)
	if err != nil || len(before) == 0 {
		t.Fatalf("history before stop: %d events, %v", len(before), err)
	}
	if status, body := ctl.do("POST", api+"/stop", map[string]string{"runtime_id": rid1}); status != http.StatusOK {
		t.Fatalf("/stop: %d %v", status, body)
	}
	if _, body := ctl.do("GET", api+"/sessions/"+sid, nil); body["status"] == "running" {
		t.Fatalf("session after /stop: %v", body)
	}

	rid2, url2, key2 := start()
	if rid2 != rid1 || url2 != url1 {
		t.Fatalf("restart changed the runtime: %s %s, was %s %s", rid2, url2, rid1, url1)
	}
	if key2 == key1 {
		t.Fatal("the restarted sandbox kept the old session_api_key")
	}
	if status, body := execute(url2, key2, "echo second-run"); status != http.StatusOK || !strings.Contains(body["content"].(string), "second-run") {
		t.Fatalf("/execute_action with the new key: %d %v", status, body)
	}
	if status, body := execute(url2, key1, "echo stale"); status != http.StatusForbidden && status != http.StatusUnauthorized {
		t.Fatalf("/execute_action with the old key: %d %v, want 401/403", status, body)
	}

	after, err := eng.History(ctx, sid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) <= len(before) {
		t.Fatalf("no new events after the restart: %d, were %d", len(after), len(before))
	}
	for i, it := range after {
		if it.ID != after[0].ID+int64(i) {
			t.Fatalf("event ids do not continue: event %d has id %d after %d", i, it.ID, after[i-1].ID)
		}
		if i < len(before) && it.ID != before[i].ID {
			t.Fatalf("event %d changed id across the restart: %d, was %d", i, it.ID, before[i].ID)
		}
	}
	if n := wb.connects.Load(); n != 2 {
		t.Fatalf("%d agent connections, want 2 (one per sandbox)", n)
	}
	if n := wb.requests.Load(); n != 3 {
		t.Fatalf("%d requests over the backend's connections, want the 3 proxied ones", n)
	}
}

// TestProxyRefusesARuntimeWithoutHTTP: the in-process cli runtime has no
// agent to speak HTTP to, and nothing else may dial one.
func TestProxyRefusesARuntimeWithoutHTTP(t *testing.T) {
	cli := local.NewInProcess(local.InProcessTempDir(t.TempDir()))
	srv, _ := newEnv(t, &EngineProvisioner{LocalRuntime: "cli"}, cli)
	api := srv.URL + "/runtime-api"
	ctl := call{t, map[string]string{"X-API-Key": apiKey}}
	status, body := ctl.do("POST", api+"/start", map[string]any{"image": "local", "session_id": "oh-cli"})
	if status != http.StatusOK || body["pod_status"] != "ready" {
		t.Fatalf("/start on cli: %d %v", status, body)
	}
	url, _ := body["url"].(string)
	key, _ := body["session_api_key"].(string)
	status, body = call{t, map[string]string{"X-Session-API-Key": key}}.do("POST", url+"/execute_action", runAction("true"))
	if d, _ := body["detail"].(string); status != http.StatusNotImplemented || !strings.Contains(d, "no HTTP API") {
		t.Fatalf("proxy on cli: %d %v, want 501 naming the missing HTTP API", status, body)
	}
}

// TestResourceFactor: OpenHands' resource_factor scales the runtime's
// default limits where the backend enforces limits, is ignored at 1, and is
// refused (400, naming the field) where the backend cannot enforce limits.
func TestResourceFactor(t *testing.T) {
	limited := newWrapped(t, "limited", runtimes.Capabilities{Pause: true, Limits: true})
	prov := &EngineProvisioner{ImageRuntime: "limited", DefaultResources: map[string]runtimes.Resources{
		"limited": {MemoryBytes: 1 << 30, NanoCPUs: 1e9, PidsLimit: 512},
	}}
	srv, _ := newEnv(t, prov, limited)
	api := srv.URL + "/runtime-api"
	ctl := call{t, map[string]string{"X-API-Key": apiKey}}

	refused := []struct {
		name string
		body map[string]any
	}{
		{"local cannot enforce limits", map[string]any{"image": "local", "session_id": "rf-local", "resource_factor": 2}},
		{"negative", map[string]any{"image": "img:1", "session_id": "rf-neg", "resource_factor": -1}},
	}
	for _, tc := range refused {
		status, body := ctl.do("POST", api+"/start", tc.body)
		if d, _ := body["detail"].(string); status != http.StatusBadRequest || !strings.Contains(d, "resource_factor") {
			t.Fatalf("%s: %d %v, want 400 naming resource_factor", tc.name, status, body)
		}
		if status, _ := ctl.do("GET", api+"/sessions/"+tc.body["session_id"].(string), nil); status != http.StatusNotFound {
			t.Fatalf("%s: a refused /start created the session (%d)", tc.name, status)
		}
	}
	if status, body := ctl.do("POST", api+"/start", map[string]any{"image": "local", "session_id": "rf-local-1", "resource_factor": 1}); status != http.StatusOK {
		t.Fatalf("factor 1 on local: %d %v", status, body)
	}

	for _, tc := range []struct {
		sid    string
		factor any
		want   runtimes.Resources
	}{
		{"rf-1", 1, runtimes.Resources{}},        // the runtime's defaults
		{"rf-absent", nil, runtimes.Resources{}}, // OpenHands always sends it; absent means 1
		{"rf-2", 2, runtimes.Resources{MemoryBytes: 2 << 30, NanoCPUs: 2e9}},
		{"rf-half", 0.5, runtimes.Resources{MemoryBytes: 512 << 20, NanoCPUs: 5e8}},
	} {
		req := map[string]any{"image": "img:1", "session_id": tc.sid}
		if tc.factor != nil {
			req["resource_factor"] = tc.factor
		}
		if status, body := ctl.do("POST", api+"/start", req); status != http.StatusOK || body["pod_status"] != "ready" {
			t.Fatalf("%s: /start %d %v", tc.sid, status, body)
		}
		if got := limited.lastSpec(t).Resources; got != tc.want {
			t.Fatalf("%s: sandbox resources %+v, want %+v", tc.sid, got, tc.want)
		}
	}

	// Without the registry a provisioner cannot tell: it refuses.
	p := &EngineProvisioner{}
	if _, err := p.resources("docker", 2); statusOf(err, 0) != http.StatusBadRequest {
		t.Fatalf("factor 2 without a registry: %v", err)
	}
}
