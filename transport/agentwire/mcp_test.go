package agentwire_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"corral/eventbus"
	"corral/runtimes/sandbox"
	"corral/runtimes/sandbox/mcptools"
	"corral/runtimes/sandbox/mcptools/mcptest"
	"corral/transport/agentwire"
)

const mcpToken = "mcp-test-token"

// mcpAgent is a real corral-agent stack: a sandbox executor behind
// agentwire's HTTP handler on a real socket.
type mcpAgent struct {
	url string
	x   *sandbox.Executor
	bin string
}

func startMCPAgent(t *testing.T) *mcpAgent {
	t.Helper()
	bin := mcptest.Server(t)
	dir := t.TempDir()
	x, err := sandbox.New(context.Background(), sandbox.WithWorkDir(dir), sandbox.WithEnv([]string{"HOME=" + dir}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := agentwire.NewServer(x, mcpToken)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		x.Close() // ends the MCP sessions, so hs.Close does not wait on SSE streams
		hs.Close()
		srv.Close()
	})
	return &mcpAgent{url: hs.URL, x: x, bin: bin}
}

func (a *mcpAgent) post(t *testing.T, path, key, body string) (int, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("X-Session-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]string
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s answered %d with non-JSON %q", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func stdioList(bin string, extra string) string {
	return `[{"name": "tools", "command": "` + bin + `", "args": [], "env": {}}` + extra + `]`
}

func TestUpdateMCPServerRejectsBadRequests(t *testing.T) {
	a := startMCPAgent(t)
	tests := []struct {
		name, key, body string
		status          int
		detail          string
	}{
		{"no session key", "", stdioList(a.bin, ""), 403, "Invalid API Key"},
		{"not JSON", mcpToken, `{"stdio_servers": [`, 400, "mcp_config"},
		{"neither list nor object", mcpToken, `"tools"`, 400, "Request must be a list of MCP tools to sync"},
		{"list of wrong shape", mcpToken, `[{"name": "x", "command": "y", "bogus": 1}]`, 400, "bogus"},
		{"invalid server name", mcpToken, `[{"name": "a b", "command": "y"}]`, 400, `mcp_config.stdio_servers[0].name "a b"`},
		{"invalid url in the object form", mcpToken, `{"sse_servers": ["ftp://x"]}`, 400, `mcp_config.sse_servers[0].url "ftp://x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := a.post(t, "/update_mcp_server", tc.key, tc.body)
			if status != tc.status || !strings.Contains(out["detail"], tc.detail) {
				t.Fatalf("got %d %q, want %d with detail containing %q", status, out["detail"], tc.status, tc.detail)
			}
		})
	}
}

func TestUpdateMCPServerThenOpenHandsClientsUseTheAggregate(t *testing.T) {
	a := startMCPAgent(t)
	status, out := a.post(t, "/update_mcp_server", mcpToken, stdioList(a.bin, `, {"name": "broken", "command": "corral-no-such-mcp-server"}`))
	if status != 200 || out["detail"] != "MCP server updated successfully" || !strings.Contains(out["router_error_log"], `"broken"`) || !strings.Contains(out["router_error_log"], "not found") {
		t.Fatalf("update: %d %v", status, out)
	}
	headers := map[string]string{"X-Session-API-Key": mcpToken, "Authorization": "Bearer " + mcpToken}
	sse, err := transport.NewSSE(a.url+"/mcp/sse", transport.WithHeaders(headers))
	if err != nil {
		t.Fatal(err)
	}
	shttp, err := transport.NewStreamableHTTP(a.url+"/mcp", transport.WithHTTPHeaders(headers))
	if err != nil {
		t.Fatal(err)
	}
	for name, tr := range map[string]transport.Interface{"sse": sse, "streamable http": shttp} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := client.NewClient(tr, client.WithLegacyProtocolOnly())
			defer c.Close()
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
				t.Fatal(err)
			}
			tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tool := range tools.Tools {
				names = append(names, tool.Name)
			}
			if strings.Join(names, ",") != "add,corrupt,crash,echo,fail,slow" {
				t.Fatalf("tools = %v, want the stdio server's under their plain names", names)
			}
			req := mcp.CallToolRequest{}
			req.Params.Name, req.Params.Arguments = "echo", map[string]any{"text": "via " + name}
			res, err := c.CallTool(ctx, req)
			if err != nil || len(res.Content) != 1 || res.Content[0].(mcp.TextContent).Text != "via "+name {
				t.Fatalf("echo: %v %+v", err, res)
			}
			req.Params.Name, req.Params.Arguments = "fail", nil
			if res, err := c.CallTool(ctx, req); err != nil || !res.IsError {
				t.Fatalf("fail: %v %+v", err, res)
			}
		})
	}
	resp, err := http.Get(a.url + "/mcp/sse")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("/mcp/sse without a session key: %d, want 403", resp.StatusCode)
	}
}

func TestUpdateMCPServerListKeepsRemoteServersAndExecuteActionCallsTools(t *testing.T) {
	a := startMCPAgent(t)
	remote := mcptools.New(mcptools.WithEnv([]string{"MCPSERVER_PREFIX=r_"}))
	if err := remote.Configure(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "r", Command: a.bin}}}); err != nil {
		t.Fatal(err)
	}
	rs := httptest.NewServer(remote.Handler("/mcp"))
	defer rs.Close()
	defer remote.Close()
	defer a.x.Close() // first: its client of rs says goodbye while rs runs

	status, out := a.post(t, "/update_mcp_server", mcpToken, `{"shttp_servers": [{"url": "`+rs.URL+`/mcp", "timeout": 30}], "stdio_servers": []}`)
	if status != 200 || out["router_error_log"] != "" {
		t.Fatalf("object form: %d %v", status, out)
	}
	status, out = a.post(t, "/update_mcp_server", mcpToken, stdioList(a.bin, ""))
	if status != 200 || out["router_error_log"] != "" {
		t.Fatalf("list form: %d %v", status, out)
	}
	if cfg := a.x.MCPConfig(); len(cfg.SHTTPServers) != 1 || len(cfg.StdioServers) != 1 {
		t.Fatalf("the list form must keep the remote server: %+v", cfg)
	}
	for _, tool := range []string{"r_echo", "echo"} {
		body := `{"action": {"action": "call_tool_mcp", "args": {"name": "` + tool + `", "arguments": {"text": "hi"}}, "timeout": 30}}`
		req, _ := http.NewRequest(http.MethodPost, a.url+"/execute_action", strings.NewReader(body))
		req.Header.Set("X-Session-API-Key", mcpToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var obs struct {
			Observation string `json:"observation"`
			Content     string `json:"content"`
			Extras      struct {
				Name      string          `json:"name"`
				Arguments json.RawMessage `json:"arguments"`
			} `json:"extras"`
		}
		_ = json.Unmarshal(raw, &obs)
		want := `{"meta": null, "content": [{"type": "text", "text": "hi", "annotations": null, "meta": null}], "structuredContent": null, "isError": false}`
		if resp.StatusCode != 200 || obs.Observation != "mcp" || obs.Content != want || obs.Extras.Name != tool || string(obs.Extras.Arguments) != `{"text":"hi"}` {
			t.Fatalf("%s: %d %s", tool, resp.StatusCode, raw)
		}
	}
}

// TestMCPSSEEndpointEventHonoursForwardedPrefix reads the first SSE event
// while the stream stays open (so it was flushed) and checks that a proxy's
// X-Forwarded-Prefix leads the message endpoint.
func TestMCPSSEEndpointEventHonoursForwardedPrefix(t *testing.T) {
	a := startMCPAgent(t)
	tests := []struct{ name, prefix, want string }{
		{"direct", "", "/mcp/message?sessionId="},
		{"behind a proxy", "/api/runtimes/r1/", "/api/runtimes/r1/mcp/message?sessionId="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.url+"/mcp/sse", nil)
			req.Header.Set("X-Session-API-Key", mcpToken)
			if tc.prefix != "" {
				req.Header.Set("X-Forwarded-Prefix", tc.prefix)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
				t.Fatalf("status %d, content type %q", resp.StatusCode, ct)
			}
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					if !strings.HasPrefix(data, tc.want) {
						t.Fatalf("endpoint %q, want prefix %q", data, tc.want)
					}
					return
				}
			}
			t.Fatalf("no endpoint event: %v", sc.Err())
		})
	}
}
