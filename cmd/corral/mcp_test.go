package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"corral/eventbus"
	"corral/runtimes/sandbox/mcptools/mcptest"
)

func TestMCPSectionIsTheDefaultMCPConfig(t *testing.T) {
	for _, tc := range []struct {
		name, text, wantErr string
		want                eventbus.MCPConfig
	}{
		{name: "no section: no servers"},
		{name: "URLs and stdio servers", text: `
[mcp]
sse_servers = ["http://127.0.0.1:8080/sse", { url = "https://mcp.example.com/sse", api_key = "k" }]
shttp_servers = [{ url = "https://mcp.example.com/mcp", timeout = 30 }]

[[mcp.stdio_servers]]
name = "fetch"
command = "uvx"
args = ["mcp-server-fetch"]
env = { LOG_LEVEL = "info" }

[[mcp.stdio_servers]]
name = "files"
command = "npx"
args = "-y @modelcontextprotocol/server-filesystem /workspace"
`, want: eventbus.MCPConfig{
			SSEServers:   []eventbus.MCPRemoteServer{{URL: "http://127.0.0.1:8080/sse"}, {URL: "https://mcp.example.com/sse", APIKey: "k"}},
			SHTTPServers: []eventbus.MCPRemoteServer{{URL: "https://mcp.example.com/mcp", Timeout: 30}},
			StdioServers: []eventbus.MCPStdioServer{
				{Name: "fetch", Command: "uvx", Args: []string{"mcp-server-fetch"}, Env: map[string]string{"LOG_LEVEL": "info"}},
				{Name: "files", Command: "npx", Args: []string{"-y", "@modelcontextprotocol/server-filesystem", "/workspace"}},
			},
		}},
		{name: "bad stdio name names the field", text: "[[mcp.stdio_servers]]\nname = \"a b\"\ncommand = \"x\"\n", wantErr: `[mcp]: mcp.stdio_servers[0].name "a b" is not valid`},
		{name: "URL without scheme names the field", text: "[mcp]\nsse_servers = [\"localhost:1\"]\n", wantErr: "[mcp]: mcp.sse_servers[0].url"},
		{name: "unknown key is named", text: "[mcp]\nstdio = []\n", wantErr: "unknown key(s) mcp.stdio"},
		{name: "unknown key of a stdio server is named", text: "[[mcp.stdio_servers]]\nname = \"a\"\ncommand = \"x\"\nargv = []\n", wantErr: `unknown field "argv"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultServeConfig()
			err := decodeConfig("corral.toml", tc.text, &cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.MCP, tc.want) {
				t.Fatalf("[mcp] = %+v, want %+v", cfg.MCP, tc.want)
			}
		})
	}
}

func TestExecWithMCPConfigRunsCallToolMCP(t *testing.T) {
	cliEnv(t)
	bin, err := mcptest.BuildTestServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mcpFile := write("mcp.json", `{"stdio_servers":[{"name":"tools","command":"`+bin+`"}]}`)
	confFile := write("corral.toml", "[[mcp.stdio_servers]]\nname = \"dflt\"\ncommand = \""+bin+"\"\nenv = { MCPSERVER_PREFIX = \"d_\" }\n")
	badFile := write("bad.json", `{"stdio_servers":[{"name":"t","command":"npx -y x"}]}`)

	call := func(tool string) string {
		return `{"action":"call_tool_mcp","args":{"name":"` + tool + `","arguments":{"text":"via exec"}},"source":"agent"}` + "\n"
	}
	for _, tc := range []struct {
		name string
		args []string
		tool string
	}{
		{"--mcp-config on the local runtime", []string{"--runtime", "local", "--mcp-config", mcpFile}, "echo"},
		{"--mcp-config on the cli runtime", []string{"--runtime", "cli", "--mcp-config", mcpFile}, "echo"},
		{"[mcp] of --config when no --mcp-config", []string{"--runtime", "cli", "--config", confFile}, "d_echo"},
		{"--mcp-config replaces [mcp]", []string{"--runtime", "cli", "--config", confFile, "--mcp-config", mcpFile}, "echo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, call(tc.tool), append([]string{"exec"}, tc.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			var obs *eventbus.Event
			for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
				if ev, err := eventbus.Unmarshal([]byte(line)); err == nil && !ev.IsAction() {
					obs = ev
				}
			}
			if obs == nil || obs.Type() != "mcp" || !strings.Contains(obs.Content, `"text": "via exec"`) {
				t.Fatalf("last observation %+v, want the mcp observation of %s; stdout:\n%s", obs, tc.tool, stdout)
			}
		})
	}
	t.Run("a bad --mcp-config is a usage error naming the field", func(t *testing.T) {
		code, _, stderr := runCLI(t, call("echo"), "exec", "--runtime", "cli", "--mcp-config", badFile)
		if code != exitUsage || !strings.Contains(stderr, "mcp_config.stdio_servers[0].command") || !strings.Contains(stderr, badFile) {
			t.Fatalf("exit %d, stderr %q; want %d naming the file and the field", code, stderr, exitUsage)
		}
	})
}

// FuzzMCPSection: any corral.toml text either is refused with an error or
// gives a valid MCP configuration that means the same in the API's JSON.
func FuzzMCPSection(f *testing.F) {
	for _, seed := range []string{
		"",
		"[mcp]\nsse_servers = [\"http://h/sse\", { url = \"https://h/sse\", api_key = \"k\" }]\n",
		"[mcp]\nshttp_servers = [{ url = \"http://h/mcp\", timeout = 30 }]\n",
		"[[mcp.stdio_servers]]\nname = \"a\"\ncommand = \"x\"\nargs = \"-v -q\"\nenv = \"A=1,B=2\"\n",
		"[[mcp.stdio_servers]]\nname = \"a\"\ncommand = \"x\"\nargs = [\"1\"]\nenv = { A = \"1\" }\n",
		"[mcp]\nstdio_servers = 5\n",
		"[mcp]\nsse_servers = [1, true]\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cfg := defaultServeConfig()
		if err := decodeConfig("fuzz.toml", text, &cfg); err != nil {
			return
		}
		if err := cfg.MCP.Validate(); err != nil {
			t.Fatalf("accepted an invalid [mcp]: %v\n%s", err, text)
		}
		data, err := json.Marshal(cfg.MCP)
		if err != nil {
			t.Fatal(err)
		}
		again, err := eventbus.ParseMCPConfig(data)
		if err != nil || !reflect.DeepEqual(normalMCP(again), normalMCP(cfg.MCP)) {
			t.Fatalf("[mcp] %+v does not round-trip through mcp_config JSON: %+v, %v", cfg.MCP, again, err)
		}
	})
}

// normalMCP makes empty and nil lists and maps alike.
func normalMCP(c eventbus.MCPConfig) string {
	b, _ := json.Marshal(c)
	return strings.NewReplacer("null", "[]", "{}", "[]").Replace(string(b))
}
