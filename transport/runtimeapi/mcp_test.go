package runtimeapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"corral/runtimes/sandbox/mcptools/mcptest"
)

// TestOpenHandsMCPThroughTheRuntimeAPIProxy does what OpenHands does with a
// remote runtime and a stdio MCP server configured: /start, POST
// /update_mcp_server with the list of stdio servers, then an MCP client on
// {url}/mcp/sse with the session key (its headers), through corral serve's
// proxy. VS Code's token answers "none" with the same key.
func TestOpenHandsMCPThroughTheRuntimeAPIProxy(t *testing.T) {
	bin, err := mcptest.BuildTestServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the engine's shutdown (cleanups run last first)
		if n := mcptest.CountProcesses(bin); n != 0 {
			t.Errorf("%d MCP server processes outlived the sandbox", n)
		}
	})
	srv, _ := newEnv(t, nil)
	api := srv.URL + "/runtime-api"
	ctl := call{t, map[string]string{"X-API-Key": apiKey}}
	status, body := ctl.do("POST", api+"/start", map[string]any{
		"image": "local", "command": []string{"ignored"}, "working_dir": "/openhands/code/",
		"environment": map[string]string{}, "session_id": "oh-mcp", "resource_factor": 1,
	})
	if status != http.StatusOK {
		t.Fatalf("/start: %d %v", status, body)
	}
	url, _ := body["url"].(string)
	key, _ := body["session_api_key"].(string)
	sess := call{t, map[string]string{"X-Session-API-Key": key}}

	if status, body := sess.do("GET", url+"/vscode/connection_token", nil); status != http.StatusOK || body["token"] != nil || len(body) != 1 {
		t.Fatalf("/vscode/connection_token = %d %v, want 200 {\"token\": null}", status, body)
	}
	if status, body := (call{t, nil}).do("GET", url+"/vscode/connection_token", nil); status != http.StatusForbidden {
		t.Fatalf("/vscode/connection_token without the key = %d %v, want 403", status, body)
	}

	// OpenHands' get_mcp_config body: model_dump of each stdio server,
	// sorted by name.
	status, body = sess.do("POST", url+"/update_mcp_server", []map[string]any{
		{"name": "tools", "command": bin, "args": []string{}, "env": map[string]string{"MCPSERVER_TAG": "via-proxy"}},
	})
	if status != http.StatusOK || body["router_error_log"] != "" {
		t.Fatalf("/update_mcp_server = %d %v, want 200 with an empty router_error_log", status, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.NewSSEMCPClient(url+"/mcp/sse", transport.WithHeaders(map[string]string{
		"Authorization": "Bearer " + key, "s": key, "X-Session-API-Key": key, // OpenHands' MCP client headers
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("SSE through the proxy: %v", err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "openhands-like", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "echo") {
		t.Fatalf("tools through the proxy: %v, want the stdio server's echo", names)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = "echo"
	req.Params.Arguments = map[string]any{"text": "hi", "show": "env"}
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("tools/call echo: %v", err)
	}
	if len(res.Content) != 1 || !strings.Contains(mcp.GetTextFromContent(res.Content[0]), "hi tag=via-proxy") {
		t.Fatalf("echo through the proxy = %+v, want its text with the env given in /update_mcp_server", res.Content)
	}
}
