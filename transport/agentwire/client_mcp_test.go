package agentwire_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes/sandbox"
	"corral/transport/agentwire"
)

// noMCPExecutor hides the executor's MCP methods: an agent built before
// MCP support serves no /update_mcp_server.
type noMCPExecutor struct{ agentwire.Executor }

func dialMCPAgent(t *testing.T, url string) *agentwire.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := agentwire.Dial(ctx, strings.TrimPrefix(url, "http://"), mcpToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientConfigureMCP(t *testing.T) {
	a := startMCPAgent(t)
	c := dialMCPAgent(t, a.url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tools := eventbus.MCPStdioServer{Name: "tools", Command: a.bin}
	for _, tc := range []struct {
		name    string
		cfg     eventbus.MCPConfig
		check   func(error) bool
		running []string // stdio servers configured on the agent afterwards
	}{
		{"all servers start", eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{tools}},
			func(err error) bool { return err == nil }, []string{"tools"}},
		{"a server that exits at once is a start failure naming it; the others run",
			eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{tools, {Name: "broken", Command: a.bin, Env: map[string]string{"MCPSERVER_FAIL": "no licence"}}}},
			func(err error) bool {
				se, ok := errors.AsType[*agentwire.MCPStartError](err)
				return ok && strings.Contains(se.MCPStartFailures(), `"broken"`) && !strings.Contains(se.MCPStartFailures(), `"tools"`)
			}, []string{"tools", "broken"}},
		{"a command that does not exist is a start failure",
			eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "ghost", Command: "/no/such/mcp-server"}}},
			func(err error) bool {
				se, ok := errors.AsType[*agentwire.MCPStartError](err)
				return ok && strings.Contains(se.Error(), "ghost")
			}, []string{"ghost"}},
		{"an invalid config is refused with the agent's reason and changes nothing",
			eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "bad name", Command: "x"}}},
			func(err error) bool {
				_, partial := errors.AsType[*agentwire.MCPStartError](err)
				return err != nil && !partial && strings.Contains(err.Error(), "HTTP 400") && strings.Contains(err.Error(), `"bad name"`)
			}, []string{"ghost"}},
		{"an empty config stops every server", eventbus.MCPConfig{}, func(err error) bool { return err == nil }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.ConfigureMCP(ctx, tc.cfg)
			if !tc.check(err) {
				t.Fatalf("ConfigureMCP = %v", err)
			}
			var names []string
			for _, s := range a.x.MCPConfig().StdioServers {
				names = append(names, s.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.running, ",") {
				t.Fatalf("agent's stdio servers afterwards %v, want %v", names, tc.running)
			}
		})
	}
}

func TestClientConfigureMCPOnAnAgentWithoutMCPIsUnsupported(t *testing.T) {
	dir := t.TempDir()
	x, err := sandbox.New(context.Background(), sandbox.WithWorkDir(dir), sandbox.WithEnv([]string{"HOME=" + dir}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := agentwire.NewServer(noMCPExecutor{x}, mcpToken)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
		x.Close()
	})
	c := dialMCPAgent(t, hs.URL)
	err = c.ConfigureMCP(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "t", Command: "x"}}})
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), "upgrade corral-agent") {
		t.Fatalf("ConfigureMCP on an agent without MCP = %v, want ErrUnsupported saying to upgrade", err)
	}
}
