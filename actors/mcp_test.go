package actors

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"

	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/local"
	"corral/runtimes/sandbox/mcptools/mcptest"
)

func buildMCPServer(t *testing.T) string { return mcptest.Server(t) }

func mcpCall(name, args string) *eventbus.Event {
	return runAction(eventbus.SourceAgent, &eventbus.MCPAction{Name: name, Arguments: json.RawMessage(args), SecurityRisk: eventbus.RiskUnknown})
}

func stdioMCP(bin string) *eventbus.MCPConfig {
	return &eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "tools", Command: bin}}}
}

// wantEchoed checks obs is the mcp observation of echo carrying text.
func wantEchoed(t *testing.T, obs *eventbus.Event, text string) {
	t.Helper()
	if _, ok := obs.Observation.(*eventbus.MCPObservation); !ok || !strings.Contains(obs.Content, `"text": "`+text+`"`) {
		t.Fatalf("call_tool_mcp answered %T %q, want the mcp observation with %q", obs.Observation, obs.Content, text)
	}
}

// hiddenMCPBackend hands out connections that only have the
// runtimes.AgentConn methods: like a runtime whose connection cannot
// configure MCP servers.
type hiddenMCPBackend struct{ runtimes.Backend }

type plainConn struct{ runtimes.AgentConn }

func (b hiddenMCPBackend) Connect(ctx context.Context, h *runtimes.Handle) (runtimes.AgentConn, error) {
	c, err := b.Backend.Connect(ctx, h)
	if err != nil {
		return nil, err
	}
	return plainConn{c}, nil
}

// failingMCPConn is a connection whose agent refuses MCP configuration
// (an agent older than MCP support answers 404, i.e. ErrUnsupported) or
// reports servers that failed to start.
type failingMCPConn struct {
	runtimes.AgentConn
	err error
}

func (c failingMCPConn) ConfigureMCP(context.Context, eventbus.MCPConfig) error { return c.err }

type failingMCPBackend struct {
	runtimes.Backend
	err error
}

func (b failingMCPBackend) Connect(ctx context.Context, h *runtimes.Handle) (runtimes.AgentConn, error) {
	c, err := b.Backend.Connect(ctx, h)
	if err != nil {
		return nil, err
	}
	return failingMCPConn{c, b.err}, nil
}

type startFailures struct{ log string }

func (e startFailures) Error() string            { return "some failed: " + e.log }
func (e startFailures) MCPStartFailures() string { return e.log }

func TestSessionStartsWhenItsMCPServersCannotBeConfiguredAndCallToolSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(runtimes.Backend) runtimes.Backend
		want []string // in the call_tool_mcp error observation; nil: the call reaches the agent
	}{
		{"connection without MCP support", func(b runtimes.Backend) runtimes.Backend { return hiddenMCPBackend{b} },
			[]string{`MCP tool "echo" cannot be called`, "[tools]", "cannot configure MCP servers"}},
		{"agent older than MCP support", func(b runtimes.Backend) runtimes.Backend {
			return failingMCPBackend{b, errors.Join(errors.New("the agent has no /update_mcp_server (HTTP 404)"), errors.ErrUnsupported)}
		}, []string{"are not available", "HTTP 404"}},
		{"configuration failed", func(b runtimes.Backend) runtimes.Backend {
			return failingMCPBackend{b, errors.New("connection reset by peer")}
		}, []string{"could not be configured", "connection reset by peer"}},
		{"some servers failed to start: the call reaches the agent", func(b runtimes.Backend) runtimes.Backend {
			return failingMCPBackend{b, startFailures{"tools: exited"}}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newWrappedCLIEngine(t, testConfig(), tc.wrap)
			sid := startSession(t, e, SessionSpec{MCP: stdioMCP("/bin/true")})
			ctx := ctxT(t)
			_, obs, err := e.Run(ctx, sid, mcpCall("echo", `{"text":"x"}`))
			if err != nil {
				t.Fatal(err)
			}
			eo, isErr := obs.Observation.(*eventbus.ErrorObservation)
			if tc.want == nil {
				// The agent itself answers (its hub has no servers here).
				if isErr && eo.ErrorID == errorMCPUnavailable {
					t.Fatalf("call_tool_mcp answered by the engine: %q, want it sent to the agent", obs.Content)
				}
				return
			}
			if !isErr || eo.ErrorID != errorMCPUnavailable {
				t.Fatalf("call_tool_mcp answered %T %q, want an %s error observation", obs.Observation, obs.Content, errorMCPUnavailable)
			}
			for _, w := range tc.want {
				if !strings.Contains(obs.Content, w) {
					t.Fatalf("observation %q does not say %q", obs.Content, w)
				}
			}
			// Everything else works.
			if _, out, err := e.Run(ctx, sid, cmd("echo still-fine")); err != nil || !strings.Contains(out.Content, "still-fine") {
				t.Fatalf("run after the MCP failure: %v %v", out, err)
			}
		})
	}
}

// TestMCPAgainAfterRestart: a restarted sandbox's agent gets the session's
// MCP servers again. (A short name: the agent's socket path embeds it.)
func TestMCPAgainAfterRestart(t *testing.T) {
	bin := buildMCPServer(t)
	e, _ := newLocalEngine(t, testConfig())
	sid := startSession(t, e, SessionSpec{MCP: stdioMCP(bin)})
	ctx := ctxT(t)
	_, obs, err := e.Run(ctx, sid, mcpCall("echo", `{"text":"first agent"}`))
	if err != nil {
		t.Fatal(err)
	}
	wantEchoed(t, obs, "first agent")

	pid := agentPID(t, e, sid)
	must(t, syscall.Kill(pid, syscall.SIGKILL))
	// The runtime restarts the sandbox in a new agent.
	waitFor(t, func() bool {
		info, err := e.Get(ctx, sid)
		return err == nil && info.RuntimeStatus == eventbus.StatusReady && info.Restarts == 1
	})
	_, obs, err = e.Run(ctx, sid, mcpCall("echo", `{"text":"second agent"}`))
	if err != nil {
		t.Fatal(err)
	}
	if newPID := agentPID(t, e, sid); newPID == pid {
		t.Fatalf("agent pid unchanged (%d): the sandbox did not restart", pid)
	}
	wantEchoed(t, obs, "second agent")
}

func TestCreateSessionRefusesAnInvalidMCPConfig(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	_, err := e.CreateSession(ctxT(t), SessionSpec{MCP: &eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "bad name", Command: "x"}}}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "mcp_config.stdio_servers[0].name") {
		t.Fatalf("CreateSession with a bad MCP config = %v, want ErrInvalid naming the field", err)
	}
	reg, err := runtimes.NewRegistry(local.NewInProcess(local.InProcessTempDir(t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	bad := eventbus.MCPConfig{SSEServers: []eventbus.MCPRemoteServer{{URL: "no-scheme"}}}
	if _, err := NewEngine(testConfig(), reg, WithDefaultMCP(bad)); err == nil || !strings.Contains(err.Error(), "[mcp]") || !strings.Contains(err.Error(), "mcp_config.sse_servers[0].url") {
		t.Fatalf("NewEngine with a bad default MCP config = %v, want an error naming [mcp] and the field", err)
	}
}

func TestSessionSpecMCPRoundTripsThroughTheProtoMessage(t *testing.T) {
	in := SessionSpec{ID: "s", MCP: &eventbus.MCPConfig{
		SSEServers:   []eventbus.MCPRemoteServer{{URL: "http://h/sse", APIKey: "k"}},
		SHTTPServers: []eventbus.MCPRemoteServer{{URL: "https://h/mcp", Timeout: 30}},
		StdioServers: []eventbus.MCPStdioServer{{Name: "t", Command: "srv", Args: []string{"-v"}, Env: map[string]string{"A": "1"}}},
	}}
	out := specFromPB(specToPB(in))
	a, _ := json.Marshal(in.MCP)
	b, _ := json.Marshal(out.MCP)
	if string(a) != string(b) {
		t.Fatalf("MCP after the proto round trip = %s, want %s", b, a)
	}
	if got := specFromPB(specToPB(SessionSpec{ID: "s"})).MCP; got != nil {
		t.Fatalf("no MCP config came back as %+v, want nil (the engine's default applies)", got)
	}
}

// TestMCPAfterRecover: a session recovered by a new engine on the same
// store, whose sandbox died with the old one, gets its MCP servers in the
// new sandbox from its stored record.
func TestMCPAfterRecover(t *testing.T) {
	bin := buildMCPServer(t)
	dir, state := t.TempDir(), t.TempDir()
	first := durableEngine(t, dir, localBackend(t, state), testConfig())
	sid := startSession(t, first, SessionSpec{MCP: stdioMCP(bin)})
	ctx := ctxT(t)
	if _, obs, err := first.Run(ctx, sid, mcpCall("echo", `{"text":"before"}`)); err != nil {
		t.Fatal(err)
	} else {
		wantEchoed(t, obs, "before")
	}
	pid := agentPID(t, first, sid)
	detachAndReopen(t, first)
	must(t, syscall.Kill(pid, syscall.SIGKILL)) // the sandbox does not survive

	second := durableEngine(t, dir, localBackend(t, state), testConfig())
	if rep, err := second.Recover(ctx); err != nil || len(rep.Sessions) != 1 {
		t.Fatalf("Recover = %+v, %v", rep, err)
	}
	if err := second.WaitReady(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if newPID := agentPID(t, second, sid); newPID == pid {
		t.Fatalf("agent pid unchanged (%d): the session was not given a new sandbox", pid)
	}
	_, obs, err := second.Run(ctx, sid, mcpCall("echo", `{"text":"after recover"}`))
	if err != nil {
		t.Fatal(err)
	}
	wantEchoed(t, obs, "after recover")
}
