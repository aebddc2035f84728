package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"corral/actors"
	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/docker"
	"corral/runtimes/local"
	"corral/runtimes/sandbox/mcptools/mcptest"
)

// mcpServerBin builds the sandbox's test MCP server (a real stdio server
// using mcp-go) once per test.
func mcpServerBin(t *testing.T) string { return mcptest.Server(t) }

// mcpEngine is the HTTP API over the real engine on backend and a durable
// store in dir; stop ends it (once), so that a second engine can take the
// same store.
type mcpEngine struct {
	*fixture
	eng  *actors.Engine
	stop func()
}

func newMCPEngine(t *testing.T, dir string, backend closableBackend, opts ...actors.Option) *mcpEngine {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := runtimes.NewRegistry(backend)
	if err != nil {
		t.Fatal(err)
	}
	scfg := eventbus.DefaultConfig()
	scfg.StoreDir, scfg.Sync = dir, eventbus.SyncNever
	store, err := eventbus.OpenStore(scfg, eventbus.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ecfg := actors.DefaultConfig()
	ecfg.SkipGitConfig = true
	ecfg.DefaultRuntime = backend.Name()
	eng, err := actors.NewEngine(ecfg, reg, append([]actors.Option{actors.WithStore(store), actors.WithLogger(quiet), actors.WithHostEnv([]string{})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(NewEngineAdapter(eng), DefaultConfig(), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			ts.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := eng.Shutdown(ctx); err != nil {
				t.Errorf("engine shutdown: %v", err)
			}
			if err := backend.Close(); err != nil {
				t.Errorf("backend close: %v", err)
			}
			if err := store.Close(); err != nil {
				t.Errorf("store close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &mcpEngine{fixture: &fixture{t: t, srv: srv, ts: ts}, eng: eng, stop: stop}
}

func newLocalBackend(t *testing.T) closableBackend {
	t.Helper()
	dir, err := os.MkdirTemp("", "cmcp-") // the agent's socket path must stay short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b, err := local.New(local.WithAgentBinary(buildAgent(t)), local.WithTempDir(dir),
		local.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitReady waits until the session is RUNNING and READY.
func (m *mcpEngine) waitReady(id string) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.eng.WaitReady(ctx, id); err != nil {
		m.t.Fatalf("session %s never became ready: %v", id, err)
	}
}

// callTool runs call_tool_mcp through the API and returns its observation.
func (m *mcpEngine) callTool(id, name string, args map[string]any) *eventbus.Event {
	m.t.Helper()
	body, _ := json.Marshal(map[string]any{"action": "call_tool_mcp", "args": map[string]any{"name": name, "arguments": args}})
	code, b, _ := m.do("POST", "/api/sessions/"+id+"/actions?wait=true", string(body))
	if code != 200 {
		m.t.Fatalf("call_tool_mcp %s = %d %s", name, code, b)
	}
	obs, err := eventbus.Unmarshal(b)
	if err != nil {
		m.t.Fatalf("observation %s: %v", b, err)
	}
	return obs
}

// wantEcho checks the observation of echo(text) is OpenHands' mcp
// observation carrying the tool's text.
func wantEcho(t *testing.T, obs *eventbus.Event, text string) {
	t.Helper()
	o, ok := obs.Observation.(*eventbus.MCPObservation)
	if !ok || o.Name != "echo" {
		t.Fatalf("observation %T %q, want the mcp observation of echo", obs.Observation, obs.Content)
	}
	var res struct {
		Content []struct{ Type, Text string } `json:"content"`
		IsError bool                          `json:"isError"`
	}
	if err := json.Unmarshal([]byte(obs.Content), &res); err != nil || res.IsError || len(res.Content) != 1 || res.Content[0].Text != text {
		t.Fatalf("mcp content %q (%v), want the tool result with text %q", obs.Content, err, text)
	}
}

func stdioConfig(bin string) map[string]any {
	return map[string]any{"stdio_servers": []any{map[string]any{"name": "tools", "command": bin}}}
}

func TestMCPConfigThroughTheAPIRunsCallToolMCP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real sandboxes and MCP servers; skipped in -short mode")
	}
	bin := mcpServerBin(t)
	for _, tc := range []struct {
		name    string
		backend func(*testing.T) closableBackend
	}{
		{"local runtime (corral-agent over HTTP)", newLocalBackend},
		{"cli runtime (in-process executor)", newInProcessBackend},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := newMCPEngine(t, dir, tc.backend(t))
			var s Session
			m.mustJSON("POST", "/api/sessions", map[string]any{"mcp_config": stdioConfig(bin)}, 201, &s)
			m.waitReady(s.ID)
			wantEcho(t, m.callTool(s.ID, "echo", map[string]any{"text": "hello mcp"}), "hello mcp")

			// A tool no server offers gets a clear error observation.
			obs := m.callTool(s.ID, "no_such_tool", nil)
			if _, isErr := obs.Observation.(*eventbus.ErrorObservation); !isErr || !strings.Contains(obs.Content, "no_such_tool") || !strings.Contains(obs.Content, "echo") {
				t.Fatalf("unknown tool answered %T %q, want an error naming it and the known tools", obs.Observation, obs.Content)
			}
		})
	}
}

// inProcessBackend gives the cli backend the Close the fixture calls.
type inProcessBackend struct{ *local.InProcess }

func newInProcessBackend(t *testing.T) closableBackend {
	return inProcessBackend{local.NewInProcess(local.InProcessTempDir(t.TempDir()))}
}

func (inProcessBackend) Close() error { return nil }

func TestMCPConfigSurvivesAnEngineRestartOnTheSameStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real sandboxes and MCP servers; skipped in -short mode")
	}
	bin := mcpServerBin(t)
	dir := t.TempDir()
	first := newMCPEngine(t, dir, newLocalBackend(t))
	var s Session
	first.mustJSON("POST", "/api/sessions", map[string]any{"mcp_config": stdioConfig(bin)}, 201, &s)
	first.waitReady(s.ID)
	wantEcho(t, first.callTool(s.ID, "echo", map[string]any{"text": "before"}), "before")
	// Shutdown stops the session: its sandbox and MCP server are gone.
	first.stop()
	if n := mcptest.CountProcesses(bin); n != 0 {
		t.Fatalf("%d MCP server processes left after the engine stopped the session", n)
	}

	// A new engine on the same store starts the session again in a new
	// sandbox, whose agent gets the servers from the stored session.
	second := newMCPEngine(t, dir, newLocalBackend(t))
	second.mustJSON("POST", "/api/sessions/"+s.ID+"/start", nil, 200, nil)
	second.waitReady(s.ID)
	wantEcho(t, second.callTool(s.ID, "echo", map[string]any{"text": "after restart"}), "after restart")
}

func TestMCPDefaultFromConfigAppliesUnlessTheSessionGivesItsOwn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real sandboxes and MCP servers; skipped in -short mode")
	}
	bin := mcpServerBin(t)
	def := eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "dflt", Command: bin, Env: map[string]string{"MCPSERVER_PREFIX": "d_"}}}}
	m := newMCPEngine(t, t.TempDir(), newLocalBackend(t), actors.WithDefaultMCP(def))

	var plain, own Session
	m.mustJSON("POST", "/api/sessions", map[string]any{}, 201, &plain)
	m.mustJSON("POST", "/api/sessions", map[string]any{"mcp_config": stdioConfig(bin)}, 201, &own)
	m.waitReady(plain.ID)
	m.waitReady(own.ID)

	if obs := m.callTool(plain.ID, "d_echo", map[string]any{"text": "from default"}); !strings.Contains(obs.Content, "from default") {
		t.Fatalf("session without mcp_config: d_echo answered %T %q, want the default server's tool", obs.Observation, obs.Content)
	}
	// The session's own config replaces the default as a whole.
	wantEcho(t, m.callTool(own.ID, "echo", map[string]any{"text": "own"}), "own")
	if obs := m.callTool(own.ID, "d_echo", map[string]any{"text": "x"}); !strings.Contains(obs.Content, "No matching MCP agent found for tool name: d_echo") {
		t.Fatalf("session with its own mcp_config: d_echo answered %T %q, want unknown tool (the default replaced)", obs.Observation, obs.Content)
	}
}

func TestCreateSessionRefusesABadMCPConfigNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"stdio name with a space", `{"mcp_config":{"stdio_servers":[{"name":"my tools","command":"srv"}]}}`, `mcp_config.stdio_servers[0].name "my tools"`},
		{"command with arguments", `{"mcp_config":{"stdio_servers":[{"name":"t","command":"npx -y srv"}]}}`, `mcp_config.stdio_servers[0].command`},
		{"sse url without a scheme", `{"mcp_config":{"sse_servers":["localhost:8080"]}}`, `mcp_config.sse_servers[0].url`},
		{"shttp timeout out of range", `{"mcp_config":{"shttp_servers":[{"url":"http://h/mcp","timeout":5000}]}}`, `mcp_config.shttp_servers[0].timeout 5000 is out of range`},
		{"shttp timeout not an integer", `{"mcp_config":{"shttp_servers":[{"url":"http://h/mcp","timeout":0.5}]}}`, `timeout`},
		{"unknown field", `{"mcp_config":{"stdio":[]}}`, `unknown field "stdio"`},
		{"not an object", `{"mcp_config":[1]}`, `mcp_config`},
		{"duplicate stdio names", `{"mcp_config":{"stdio_servers":[{"name":"a","command":"x"},{"name":"a","command":"y"}]}}`, `mcp_config.stdio_servers[1].name "a" is already used`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			code, b, _ := f.do("POST", "/api/sessions", tc.body)
			var e errorBody
			_ = json.Unmarshal(b, &e)
			if code != 400 || e.Error.Code != "invalid_request" || !strings.Contains(e.Error.Message, tc.want) {
				t.Fatalf("POST /api/sessions %s = %d %s, want 400 invalid_request naming %q", tc.body, code, b, tc.want)
			}
		})
	}
}

// TestMCPOnADockerSandbox: a stdio server (a static binary in the
// workspace) runs inside the container, started by its agent from the
// session's mcp_config.
func TestMCPOnADockerSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real container; skipped in -short mode")
	}
	f := newDockerFixture(t)
	ws := t.TempDir()
	if err := os.Chmod(ws, 0o777); err != nil { // the sandbox's user is not root
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(ws, "mcpserver"), "../../runtimes/sandbox/mcptools/testdata/mcpserver")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // the minimal image has no libc
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the static MCP server: %v\n%s", err, out)
	}
	var s Session
	f.mustJSON("POST", "/api/sessions", map[string]any{"runtime": "docker", "image": docker.MinimalImage, "workspace": ws,
		"mcp_config": map[string]any{"stdio_servers": []any{map[string]any{"name": "tools", "command": "/workspace/mcpserver"}}}}, 201, &s)
	m := &mcpEngine{fixture: f}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		f.mustJSON("GET", "/api/sessions/"+s.ID, nil, 200, &s)
		if s.Status == actors.StateRunning && s.RuntimeStatus == eventbus.StatusReady {
			break
		}
		if s.Status == actors.StateError || time.Now().After(deadline) {
			t.Fatalf("docker session never became ready: %+v", s)
		}
	}
	obs := m.callTool(s.ID, "echo", map[string]any{"text": "in a container", "show": "cwd"})
	if _, ok := obs.Observation.(*eventbus.MCPObservation); !ok || !strings.Contains(obs.Content, "in a container cwd=/workspace") {
		t.Fatalf("call_tool_mcp in the container = %T %q, want the server's echo run in /workspace", obs.Observation, obs.Content)
	}
}
