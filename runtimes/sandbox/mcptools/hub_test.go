package mcptools

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"

	"corral/eventbus"
	"corral/runtimes/sandbox/mcptools/mcptest"
)

// serverBin is the test MCP server, built once by TestMain.
var serverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcptools-test-")
	if err != nil {
		panic(err)
	}
	serverBin, err = mcptest.BuildTestServer(dir)
	if err != nil {
		os.RemoveAll(dir)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			println("goleak:", err.Error())
			code = 1
		}
		if n := mcptest.CountProcesses(serverBin); n != 0 {
			println("leaked test MCP server processes:", n)
			code = 1
		}
	}
	os.Exit(code)
}

func stdio(name string, env map[string]string) eventbus.MCPStdioServer {
	return eventbus.MCPStdioServer{Name: name, Command: serverBin, Env: env}
}

func newHub(t *testing.T, opts ...Option) *Hub {
	t.Helper()
	h := New(opts...)
	t.Cleanup(func() { h.Close() })
	return h
}

func call(t *testing.T, h *Hub, name, args string) (*mcp.CallToolResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return h.Call(ctx, name, []byte(args), time.Minute)
}

func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res == nil || len(res.Content) != 1 {
		t.Fatalf("want one content item, got %+v", res)
	}
	tc, ok := res.Content[0].(mcp.TextContent)
	if !ok {
		t.Fatalf("content is %T, want text", res.Content[0])
	}
	return tc.Text
}

func mustConfigure(t *testing.T, h *Hub, cfg eventbus.MCPConfig) {
	t.Helper()
	if err := h.Configure(context.Background(), cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
}

func TestCallReachesStdioServerInItsDirAndEnv(t *testing.T) {
	dir := t.TempDir()
	h := newHub(t, WithDir(func() string { return dir }), WithEnv(append(os.Environ(), "CORRAL_TEST_EXEC_ENV=from-executor")))
	mustConfigure(t, h, eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{stdio("one", map[string]string{"MCPSERVER_TAG": "t1"})}})
	var names []string
	for _, tool := range h.Tools() {
		names = append(names, tool.Name)
	}
	if got := strings.Join(names, ","); got != "add,corrupt,crash,echo,fail,slow" {
		t.Fatalf("tools = %s", got)
	}
	tests := []struct{ name, tool, args, want string }{
		{"echo answers with its text", "echo", `{"text":"hi"}`, "hi"},
		{"server runs in the configured directory", "echo", `{"text":"x","show":"cwd"}`, "x cwd=" + dir},
		{"server sees its own env on top of the executor's", "echo", `{"text":"x","show":"env"}`, "x tag=t1 home_env=from-executor"},
		{"numbers reach the tool", "add", `{"a":2,"b":3.5}`, "5.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := call(t, h, tc.tool, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if got := text(t, res); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCallFailuresAreTyped(t *testing.T) {
	h := newHub(t)
	if _, err := call(t, h, "echo", `{}`); !errors.Is(err, ErrNoServers) {
		t.Fatalf("no servers: err = %v, want ErrNoServers", err)
	}
	mustConfigure(t, h, eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{stdio("one", nil)}})

	res, err := call(t, h, "fail", `{}`)
	if err != nil || !res.IsError || text(t, res) != "the tool failed on purpose" {
		t.Fatalf("tool error: res=%+v err=%v, want an isError result", res, err)
	}

	_, err = call(t, h, "nope", `{}`)
	var unknown *UnknownToolError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "add, corrupt, crash, echo, fail, slow") {
		t.Fatalf("unknown tool: err = %v", err)
	}

	_, err = call(t, h, "corrupt", `{}`)
	var invalid *InvalidResultError
	if !errors.As(err, &invalid) || invalid.Server != "one" {
		t.Fatalf("corrupt result: err = %v, want InvalidResultError", err)
	}

	if _, err := call(t, h, "echo", `[1,2]`); err == nil || !strings.Contains(err.Error(), "JSON object") {
		t.Fatalf("array arguments: err = %v", err)
	}

	_, err = h.Call(context.Background(), "slow", []byte(`{}`), 300*time.Millisecond)
	var timeout *TimeoutError
	if !errors.As(err, &timeout) || timeout.After != 300*time.Millisecond {
		t.Fatalf("slow tool: err = %v, want TimeoutError after 300ms", err)
	}
	if res, err := call(t, h, "echo", `{"text":"still alive"}`); err != nil || text(t, res) != "still alive" {
		t.Fatalf("after a timeout the server must still answer: %v", err)
	}
}

func TestCrashedServerIsReportedAndRestartedByTheNextCall(t *testing.T) {
	h := newHub(t)
	mustConfigure(t, h, eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{stdio("crashy", nil)}})
	before, _ := call(t, h, "echo", `{"text":"a","show":"pid"}`)
	_, err := call(t, h, "crash", `{}`)
	var se *ServerError
	if !errors.As(err, &se) || se.Server != "crashy" {
		t.Fatalf("crash: err = %v, want ServerError of crashy", err)
	}
	for _, want := range []string{"exit status 7", "crashing on purpose"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("crash error %q does not mention %q", err, want)
		}
	}
	after, err := call(t, h, "echo", `{"text":"a","show":"pid"}`)
	if err != nil {
		t.Fatalf("next call must restart the server: %v", err)
	}
	if text(t, before) == text(t, after) {
		t.Fatalf("the server was not restarted: %s", text(t, after))
	}
	if n := mcptest.CountProcesses(serverBin); n != 1 {
		t.Fatalf("%d server processes run, want 1", n)
	}
}

func TestConfigureReportsStartFailuresAndKeepsTheRest(t *testing.T) {
	h := newHub(t)
	err := h.Configure(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{
		{Name: "missing", Command: "corral-no-such-mcp-server"},
		stdio("dies", map[string]string{"MCPSERVER_FAIL": "cannot open the database"}),
		stdio("good", nil),
	}})
	var partial *PartialError
	if !errors.As(err, &partial) || len(partial.Failed) != 2 {
		t.Fatalf("err = %v, want PartialError with 2 servers", err)
	}
	for _, want := range []string{`"missing"`, "corral-no-such-mcp-server", "not found", `"dies"`, "exit status 3", "cannot open the database"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if len(h.Errors()) != 2 {
		t.Fatalf("Errors() = %v", h.Errors())
	}
	if res, err := call(t, h, "echo", `{"text":"ok"}`); err != nil || text(t, res) != "ok" {
		t.Fatalf("the good server must work: %v", err)
	}
	_, err = call(t, h, "other", `{}`)
	if err == nil || !strings.Contains(err.Error(), "cannot open the database") {
		t.Fatalf("unknown tool error must name the failed servers: %v", err)
	}
	if err := h.Configure(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "bad name", Command: "x"}}}); err == nil || errors.As(err, &partial) {
		t.Fatalf("invalid config: err = %v, want a validation error", err)
	}
	if res, err := call(t, h, "echo", `{"text":"ok"}`); err != nil || text(t, res) != "ok" {
		t.Fatalf("an invalid config must change nothing: %v", err)
	}
}

func TestConfigureKeepsUnchangedServersAndStopsRemovedOnes(t *testing.T) {
	h := newHub(t)
	a, b := stdio("a", map[string]string{"MCPSERVER_PREFIX": "a_"}), stdio("b", map[string]string{"MCPSERVER_PREFIX": "b_"})
	mustConfigure(t, h, eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{a, b}})
	if n := mcptest.CountProcesses(serverBin); n != 2 {
		t.Fatalf("%d processes, want 2", n)
	}
	pidA, _ := call(t, h, "a_echo", `{"text":"","show":"pid"}`)
	b2 := b
	b2.Env = map[string]string{"MCPSERVER_PREFIX": "b2_"}
	mustConfigure(t, h, eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{a, b2}})
	pidA2, _ := call(t, h, "a_echo", `{"text":"","show":"pid"}`)
	if text(t, pidA) != text(t, pidA2) {
		t.Fatalf("unchanged server a was restarted: %s then %s", text(t, pidA), text(t, pidA2))
	}
	if _, err := call(t, h, "b2_echo", `{"text":"x"}`); err != nil {
		t.Fatalf("changed server b must run with its new config: %v", err)
	}
	if _, err := call(t, h, "b_echo", `{"text":"x"}`); err == nil {
		t.Fatal("the old b's tools must be gone")
	}
	mustConfigure(t, h, eventbus.MCPConfig{})
	if n := mcptest.CountProcesses(serverBin); n != 0 {
		t.Fatalf("%d processes after removing all servers, want 0", n)
	}
	if _, err := call(t, h, "a_echo", `{}`); !errors.Is(err, ErrNoServers) {
		t.Fatalf("err = %v, want ErrNoServers", err)
	}
}

// TestRemoteServersThroughTheAggregate connects one hub to another's
// aggregated server over SSE and streamable HTTP (real sockets), which
// covers the remote clients, the aggregate and the shttp timeout.
func TestRemoteServersThroughTheAggregate(t *testing.T) {
	inner := newHub(t)
	mustConfigure(t, inner, eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{stdio("inner", nil)}})
	srv := httptest.NewServer(inner.Handler("/mcp"))
	defer srv.Close()
	defer inner.Close() // ends open SSE streams before srv.Close waits for them

	tests := []struct {
		name string
		cfg  eventbus.MCPConfig
	}{
		{"sse", eventbus.MCPConfig{SSEServers: []eventbus.MCPRemoteServer{{URL: srv.URL + "/mcp/sse"}}}},
		{"shttp", eventbus.MCPConfig{SHTTPServers: []eventbus.MCPRemoteServer{{URL: srv.URL + "/mcp", Timeout: 1}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outer := newHub(t)
			mustConfigure(t, outer, tc.cfg)
			if n := len(outer.Tools()); n != 6 {
				t.Fatalf("%d tools through the aggregate, want 6", n)
			}
			res, err := call(t, outer, "add", `{"a":1,"b":2}`)
			if err != nil || text(t, res) != "3" {
				t.Fatalf("add: %v %+v", err, res)
			}
			res, err = call(t, outer, "fail", `{}`)
			if err != nil || !res.IsError {
				t.Fatalf("fail: %v %+v", err, res)
			}
			if tc.name == "shttp" {
				_, err := call(t, outer, "slow", `{}`)
				var timeout *TimeoutError
				if !errors.As(err, &timeout) || timeout.After != time.Second {
					t.Fatalf("slow over shttp with timeout 1: err = %v, want TimeoutError after 1s", err)
				}
			}
			outer.Close()
		})
	}
}

func TestCloseStopsEveryServer(t *testing.T) {
	h := New()
	mustConfigure(t, h, eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{stdio("x", map[string]string{"MCPSERVER_PREFIX": "x_"}), stdio("y", nil)}})
	if n := mcptest.CountProcesses(serverBin); n != 2 {
		t.Fatalf("%d processes, want 2", n)
	}
	h.Close()
	if n := mcptest.CountProcesses(serverBin); n != 0 {
		t.Fatalf("%d processes after Close, want 0", n)
	}
	if _, err := call(t, h, "echo", `{}`); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	if err := h.Configure(context.Background(), eventbus.MCPConfig{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Configure after Close: %v", err)
	}
}

// TestConcurrentCallsAndConfigureNeverLeak races calls (including crashes,
// whose restart may meet a removal) against configuration changes; under
// -race this checks the locking, and afterwards that no process is left.
func TestConcurrentCallsAndConfigureNeverLeak(t *testing.T) {
	h := New()
	cfgs := []eventbus.MCPConfig{
		{StdioServers: []eventbus.MCPStdioServer{stdio("a", nil)}},
		{StdioServers: []eventbus.MCPStdioServer{stdio("a", map[string]string{"MCPSERVER_TAG": "2"})}},
		{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			tool := []string{"echo", "crash", "add", "echo"}[i]
			for {
				select {
				case <-done:
					return
				default:
				}
				_, _ = h.Call(ctx, tool, []byte(`{"text":"x","a":1,"b":2}`), 10*time.Second)
			}
		})
	}
	for i := range 12 {
		if err := h.Configure(ctx, cfgs[i%len(cfgs)]); err != nil {
			t.Errorf("Configure %d: %v", i, err)
		}
	}
	close(done)
	wg.Wait()
	h.Close()
	if n := mcptest.CountProcesses(serverBin); n != 0 {
		t.Fatalf("%d processes after Close, want 0", n)
	}
}

func TestServerThatNeverAnswersIsStoppedAtTheStartTimeout(t *testing.T) {
	h := newHub(t, WithStartTimeout(500*time.Millisecond))
	err := h.Configure(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{stdio("mute", map[string]string{"MCPSERVER_HANG": "1"})}})
	var partial *PartialError
	if !errors.As(err, &partial) {
		t.Fatalf("err = %v, want PartialError", err)
	}
	for _, want := range []string{`"mute"`, "no answer to initialize within 500ms", "hanging before the handshake"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := mcptest.CountProcesses(serverBin); n != 0 {
		t.Fatalf("%d processes left after the failed start, want 0", n)
	}
}

func TestTailKeepsTheLastBytes(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"short output is kept whole", []string{"a", "b\n"}, "ab"},
		{"long output keeps its end", []string{"0123456789", "abcdef"}, "89abcdef"},
		{"one huge write keeps its end", []string{"xxxxxxxxxxxxxxxxxxxxyz"}, "xxxxxxyz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTail(8)
			for _, w := range tc.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := tl.String(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCloseAbortsARunningConfigure(t *testing.T) {
	h := New(WithStartTimeout(time.Hour))
	errc := make(chan error, 1)
	go func() {
		errc <- h.Configure(context.Background(), eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{stdio("mute", map[string]string{"MCPSERVER_HANG": "1"})}})
	}()
	deadline := time.Now().Add(time.Minute)
	for mcptest.CountProcesses(serverBin) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server process never started")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not synchronising on time
	}
	h.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Configure = %v, want ErrClosed", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Configure did not return after Close")
	}
	if n := mcptest.CountProcesses(serverBin); n != 0 {
		t.Fatalf("%d processes left, want 0", n)
	}
}

// TestAggregateCallsTheStdioServerEvenWhenARemoteOneHasTheName: Call picks
// the first server in OpenHands' order (remote ones first), but the
// aggregate lists stdio tools and must run them on the stdio server.
func TestAggregateCallsTheStdioServerEvenWhenARemoteOneHasTheName(t *testing.T) {
	inner := newHub(t)
	mustConfigure(t, inner, eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{stdio("inner", nil)}})
	innerSrv := httptest.NewServer(inner.Handler("/mcp"))
	defer innerSrv.Close()
	defer inner.Close()

	outer := newHub(t)
	mustConfigure(t, outer, eventbus.MCPConfig{
		SHTTPServers: []eventbus.MCPRemoteServer{{URL: innerSrv.URL + "/mcp"}},
		StdioServers: []eventbus.MCPStdioServer{stdio("local", nil)},
	})
	outerSrv := httptest.NewServer(outer.Handler("/mcp"))
	defer outerSrv.Close()
	defer outer.Close()

	viaCall, err := call(t, outer, "echo", `{"text":"","show":"pid"}`)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := transport.NewStreamableHTTP(outerSrv.URL + "/mcp")
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, client.WithLegacyProtocolOnly())
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
		t.Fatal(err)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = "echo", map[string]any{"text": "", "show": "pid"}
	viaAggregate, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if text(t, viaCall) == text(t, viaAggregate) {
		t.Fatalf("the aggregate ran echo on the remote server (%s), not on the stdio one", text(t, viaAggregate))
	}
}
