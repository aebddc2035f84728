package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"

	"corral/eventbus"
	"corral/runtimes/sandbox/mcptools"
	"corral/runtimes/sandbox/mcptools/mcptest"
)

// mcpCall runs a call_tool_mcp action given as OpenHands' JSON.
func mcpCall(t *testing.T, x *Executor, name, args string, timeout float64) *eventbus.Event {
	t.Helper()
	ev, err := eventbus.Unmarshal([]byte(`{"id": 7, "source": "agent", "action": "call_tool_mcp", "args": {"name": "` + name + `", "arguments": ` + args + `, "thought": ""}, "timeout": ` + pyFloat(timeout) + `}`))
	if err != nil {
		t.Fatal(err)
	}
	obs := x.Execute(context.Background(), ev, nil)
	if obs.Cause == nil || *obs.Cause != 7 {
		t.Fatalf("cause not set: %+v", obs)
	}
	return obs
}

func wantMCP(t *testing.T, obs *eventbus.Event, name, args, content string) {
	t.Helper()
	o, ok := obs.Observation.(*eventbus.MCPObservation)
	if !ok {
		t.Fatalf("want an mcp observation, got %s %q", obs.Type(), obs.Content)
	}
	if o.Name != name || string(o.Arguments) != args {
		t.Fatalf("observation name/arguments = %q %s, want %q %s", o.Name, o.Arguments, name, args)
	}
	if obs.Content != content {
		t.Fatalf("content:\n got %s\nwant %s", obs.Content, content)
	}
}

func wantErrorContaining(t *testing.T, obs *eventbus.Event, parts ...string) {
	t.Helper()
	if _, ok := obs.Observation.(*eventbus.ErrorObservation); !ok {
		t.Fatalf("want an error observation, got %s %q", obs.Type(), obs.Content)
	}
	for _, p := range parts {
		if !strings.Contains(obs.Content, p) {
			t.Errorf("error %q does not mention %q", obs.Content, p)
		}
	}
}

func TestCallToolMCPThroughTheExecutor(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	bin := mcptest.Server(t)
	x, _ := newTestExecutor(t)
	obs := mcpCall(t, x, "echo", `{"text": "hi"}`, 30)
	wantErrorContaining(t, obs, "No MCP clients found", "mcp_config", `"echo"`)

	err := x.ConfigureMCP(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{
		{Name: "tools", Command: bin},
		{Name: "broken", Command: bin, Env: map[string]string{"MCPSERVER_FAIL": "no license key"}},
	}})
	var partial *mcptools.PartialError
	if !errors.As(err, &partial) || len(partial.Failed) != 1 || !strings.Contains(err.Error(), "no license key") {
		t.Fatalf("ConfigureMCP: %v, want a PartialError naming broken", err)
	}
	tests := []struct {
		name, tool, args string
		timeout          float64
		content          string // an mcp observation with this content
		errParts         []string
	}{
		{name: "text result as OpenHands dumps it", tool: "echo", args: `{"text": "h\u00e9 \"q\""}`, timeout: 30,
			content: `{"meta": null, "content": [{"type": "text", "text": "h\u00e9 \"q\"", "annotations": null, "meta": null}], "structuredContent": null, "isError": false}`},
		{name: "structured content", tool: "add", args: `{"a": 2, "b": 3.5}`, timeout: 30,
			content: `{"meta": null, "content": [{"type": "text", "text": "5.5", "annotations": null, "meta": null}], "structuredContent": {"sum": 5.5}, "isError": false}`},
		{name: "tool error is an mcp observation with isError", tool: "fail", args: `{}`, timeout: 30,
			content: `{"meta": null, "content": [{"type": "text", "text": "the tool failed on purpose", "annotations": null, "meta": null}], "structuredContent": null, "isError": true}`},
		{name: "action timeout gives OpenHands' timeout content", tool: "slow", args: `{}`, timeout: 0.5,
			content: `{"isError": true, "error": "Tool \"slow\" timed out after 0.5 seconds", "content": []}`},
		{name: "unknown tool lists the known ones and the failed servers", tool: "nope", args: `{}`, timeout: 30,
			errParts: []string{"No matching MCP agent found for tool name: nope", "add, corrupt, crash, echo, fail, slow", `"broken"`, "no license key"}},
		{name: "invalid result", tool: "corrupt", args: `{}`, timeout: 30,
			errParts: []string{`"corrupt"`, `"tools"`, "not a valid MCP tool result"}},
		{name: "crash names the server, its exit and its stderr", tool: "crash", args: `{}`, timeout: 30,
			errParts: []string{`MCP stdio server "tools"`, "exit status 7", "crashing on purpose"}},
		{name: "the next call restarts the crashed server", tool: "echo", args: `{"text": "back"}`, timeout: 30,
			content: `{"meta": null, "content": [{"type": "text", "text": "back", "annotations": null, "meta": null}], "structuredContent": null, "isError": false}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := mcpCall(t, x, tc.tool, tc.args, tc.timeout)
			if tc.errParts != nil {
				wantErrorContaining(t, obs, tc.errParts...)
				return
			}
			// The observation carries the action's arguments as given.
			wantMCP(t, obs, tc.tool, tc.args, tc.content)
		})
	}
	x.Close()
	if n := mcptest.CountProcesses(bin); n != 0 {
		t.Fatalf("%d MCP server processes after Close", n)
	}
	if err := x.ConfigureMCP(context.Background(), eventbus.MCPConfig{}); err == nil {
		t.Fatal("ConfigureMCP after Close must fail")
	}
}

func TestStdioServerStartsInTheExecutorsCurrentDirectory(t *testing.T) {
	bin := mcptest.Server(t)
	x, dir := newTestExecutor(t)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	xExec(t, x, &eventbus.CmdRunAction{Command: "cd sub"})
	if err := x.ConfigureMCP(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "s", Command: bin}}}); err != nil {
		t.Fatal(err)
	}
	obs := mcpCall(t, x, "echo", `{"text": "x", "show": "cwd"}`, 30)
	if !strings.Contains(obs.Content, `"text": "x cwd=`+sub+`"`) {
		t.Fatalf("server did not start in %s: %s", sub, obs.Content)
	}
	if err := x.ConfigureMCP(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "bad", Command: "two words"}}}); err == nil || errors.As(err, new(*mcptools.PartialError)) {
		t.Fatalf("invalid config: err = %v, want a validation error", err)
	}
}

func TestStdioServerRunsAsTheExecutorsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: an executor runs its processes as another user only when it runs as root")
	}
	name := xLoginUser(t)
	bin := mcptest.Server(t)
	dir := t.TempDir()
	// t.TempDir's parents are private to root; the user must reach them.
	for _, d := range []string{filepath.Dir(dir), dir, filepath.Dir(bin), filepath.Dir(filepath.Dir(bin))} {
		os.Chmod(d, 0o755)
	}
	x, err := New(context.Background(), WithWorkDir(dir), WithUser(name), WithEnv([]string{"HOME=" + dir}))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.ConfigureMCP(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "s", Command: bin}}}); err != nil {
		t.Fatal(err)
	}
	obs := mcpCall(t, x, "echo", `{"text": "x", "show": "uid"}`, 30)
	if want := fmt.Sprintf(`"text": "x uid=%d"`, x.access.uid); !strings.Contains(obs.Content, want) {
		t.Fatalf("server does not run as %s (%s): %s", name, want, obs.Content)
	}
}

func TestDumpCallToolResultFollowsPythonModels(t *testing.T) {
	tests := []struct{ name, wire, want string }{
		{"image with annotations (priority is a float)",
			`{"content":[{"type":"image","data":"AAA=","mimeType":"image/png","annotations":{"audience":["user"],"priority":1}}]}`,
			`{"meta": null, "content": [{"type": "image", "data": "AAA=", "mimeType": "image/png", "annotations": {"audience": ["user"], "priority": 1.0}, "meta": null}], "structuredContent": null, "isError": false}`},
		{"embedded text resource and result meta",
			`{"_meta":{"k":1},"content":[{"type":"resource","resource":{"uri":"file:///a.txt","mimeType":"text/plain","text":"A"}}],"isError":true}`,
			`{"meta": {"k": 1}, "content": [{"type": "resource", "resource": {"uri": "file:///a.txt", "mimeType": "text/plain", "meta": null, "text": "A"}, "annotations": null, "meta": null}], "structuredContent": null, "isError": true}`},
		{"resource link: Python's field order, None for what is missing, AnyUrl's slash",
			`{"content":[{"type":"resource_link","uri":"https://example.com","name":"ex","size":12}]}`,
			`{"meta": null, "content": [{"name": "ex", "title": null, "uri": "https://example.com/", "description": null, "mimeType": null, "size": 12, "icons": null, "annotations": null, "meta": null, "type": "resource_link"}], "structuredContent": null, "isError": false}`},
		{"audio",
			`{"content":[{"type":"audio","data":"UklG","mimeType":"audio/wav"}]}`,
			`{"meta": null, "content": [{"type": "audio", "data": "UklG", "mimeType": "audio/wav", "annotations": null, "meta": null}], "structuredContent": null, "isError": false}`},
		{"structured content keeps key order and Python floats",
			`{"content":[],"structuredContent":{"z":1e20,"a":[1.50,-0.0001,"\u2603"],"m":null}}`,
			`{"meta": null, "content": [], "structuredContent": {"z": 1e+20, "a": [1.5, -0.0001, "\u2603"], "m": null}, "isError": false}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := json.RawMessage(tc.wire)
			res, err := mcp.ParseCallToolResult(&raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dumpCallToolResult(res)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// FuzzDumpCallToolResult: any result mcp-go accepts dumps to valid JSON
// without panicking.
func FuzzDumpCallToolResult(f *testing.F) {
	f.Add([]byte(`{"content":[{"type":"text","text":"hi"}]}`))
	f.Add([]byte(`{"content":[],"structuredContent":{"a":[1,2.5e-7]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		raw := json.RawMessage(data)
		res, err := mcp.ParseCallToolResult(&raw)
		if err != nil {
			return
		}
		out, err := dumpCallToolResult(res)
		if err != nil {
			return
		}
		if !json.Valid([]byte(out)) {
			t.Fatalf("dump of %s is not JSON: %s", data, out)
		}
	})
}

// BenchmarkCallToolMCP measures a call_tool_mcp round trip through the
// executor against mcp-go's client calling the same stdio server directly
// (the baseline, measured in the same run).
func BenchmarkCallToolMCP(b *testing.B) {
	bin := mcptest.Server(b)
	dir := b.TempDir()
	x, err := New(context.Background(), WithWorkDir(dir), WithEnv([]string{"HOME=" + dir}))
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	if err := x.ConfigureMCP(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "s", Command: bin}}}); err != nil {
		b.Fatal(err)
	}
	// The same protocol revision as the hub's clients, so that the ratio
	// is the executor's overhead only.
	direct := client.NewClient(transport.NewStdio(bin, nil), client.WithLegacyProtocolOnly())
	ctx := context.Background()
	if err := direct.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	if _, err := direct.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
		b.Fatal(err)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = "echo"
	req.Params.Arguments = map[string]any{"text": "hi"}
	ev, err := eventbus.Unmarshal([]byte(`{"id": 1, "source": "agent", "action": "call_tool_mcp", "args": {"name": "echo", "arguments": {"text": "hi"}}}`))
	if err != nil {
		b.Fatal(err)
	}
	// The two are interleaved so that load from other processes hits both
	// alike; ns/op is their sum, executor-ns/op and direct-ns/op each.
	var viaExec, viaDirect time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := direct.CallTool(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if obs := x.Execute(ctx, ev, nil); obs.Type() != "mcp" {
			b.Fatalf("observation %s %q", obs.Type(), obs.Content)
		}
		viaDirect += t1.Sub(t0)
		viaExec += time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(float64(viaExec.Nanoseconds())/float64(b.N), "executor-ns/op")
	b.ReportMetric(float64(viaDirect.Nanoseconds())/float64(b.N), "direct-ns/op")
	b.ReportMetric(float64(viaExec)/float64(viaDirect), "x-direct")
}
