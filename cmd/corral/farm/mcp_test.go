package farm

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"corral/actors"
	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/local"
	"corral/runtimes/sandbox/mcptools/mcptest"
)

func TestJobRuntimeMCPConfigIsParsedAndValidated(t *testing.T) {
	jobs, bad, err := ParseJobs(strings.NewReader(strings.Join([]string{
		`{"id":"ok","actions":[],"runtime":{"backend":"cli","mcp_config":{"stdio_servers":[{"name":"t","command":"srv","args":"-a -b","env":"K=V"}],"sse_servers":["http://h/sse"]}}}`,
		`{"id":"badname","actions":[],"runtime":{"mcp_config":{"stdio_servers":[{"name":"a b","command":"srv"}]}}}`,
		`{"id":"badfield","actions":[],"runtime":{"mcp_config":{"stdio_servers":[{"name":"a","cmd":"srv"}]}}}`,
	}, "\n")), "jobs.jsonl", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Runtime.MCP == nil {
		t.Fatalf("jobs = %+v, want the one valid job with its MCP config", jobs)
	}
	got, _ := json.Marshal(jobs[0].Runtime.MCP)
	if want := `{"sse_servers":[{"url":"http://h/sse"}],"stdio_servers":[{"name":"t","command":"srv","args":["-a","-b"],"env":{"K":"V"}}],"shttp_servers":null}`; string(got) != want {
		t.Fatalf("MCP config = %s, want %s", got, want)
	}
	if len(bad) != 2 || bad[0].Line != 2 || !strings.Contains(bad[0].Error(), "job badname: runtime.mcp_config.stdio_servers[0].name") ||
		bad[1].Line != 3 || !strings.Contains(bad[1].Error(), `"cmd"`) {
		t.Fatalf("bad lines = %v, want lines 2 and 3 naming the MCP field", bad)
	}
}

func TestJobMCPConfigReachesTheSession(t *testing.T) {
	bin, err := mcptest.BuildTestServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := runtimes.NewRegistry(local.NewInProcess(local.InProcessTempDir(t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	cfg := actors.DefaultConfig()
	cfg.DefaultRuntime, cfg.SkipGitConfig = "cli", true
	eng, err := actors.NewEngine(cfg, reg, actors.WithHostEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mcp := &eventbus.MCPConfig{StdioServers: []eventbus.MCPStdioServer{{Name: "tools", Command: bin}}}
	s, err := NewActorsEngine(eng).StartSession(ctx, SessionSpec{JobID: "j", Runtime: Runtime{Backend: "cli", MCP: mcp}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.WithoutCancel(ctx))
	obs, err := s.Run(ctx, eventbus.NewAction(eventbus.SourceAgent, &eventbus.MCPAction{Name: "echo", Arguments: json.RawMessage(`{"text":"from a job"}`)}))
	if err != nil {
		t.Fatal(err)
	}
	if obs.Type() != "mcp" || !strings.Contains(obs.Content, `"text": "from a job"`) {
		t.Fatalf("call_tool_mcp in the job's session = %s %q, want the mcp observation", obs.Type(), obs.Content)
	}
}
