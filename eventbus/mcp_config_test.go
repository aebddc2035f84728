package eventbus

import (
	"strings"
	"testing"
)

func TestParseMCPConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
		check   func(t *testing.T, c MCPConfig)
	}{
		{name: "OpenHands shape with objects", in: `{"sse_servers":[{"url":"http://127.0.0.1:1/sse","api_key":"k"}],"shttp_servers":[{"url":"https://h/mcp","timeout":5}],"stdio_servers":[{"name":"fs","command":"mcp-fs","args":["-v","/w"],"env":{"A":"1"}}]}`,
			check: func(t *testing.T, c MCPConfig) {
				if c.SSEServers[0].APIKey != "k" || c.SHTTPServers[0].Timeout != 5 || c.StdioServers[0].Args[1] != "/w" || c.StdioServers[0].Env["A"] != "1" {
					t.Fatalf("decoded %+v", c)
				}
			}},
		{name: "bare URL strings", in: `{"sse_servers":["http://a/sse"],"shttp_servers":["http://b/mcp"]}`,
			check: func(t *testing.T, c MCPConfig) {
				if c.SSEServers[0].URL != "http://a/sse" || c.SHTTPServers[0].URL != "http://b/mcp" {
					t.Fatalf("decoded %+v", c)
				}
			}},
		{name: "args and env as strings", in: `{"stdio_servers":[{"name":"x","command":"srv","args":"-a b","env":"K=V, L=W=X"}]}`,
			check: func(t *testing.T, c MCPConfig) {
				s := c.StdioServers[0]
				if len(s.Args) != 2 || s.Args[0] != "-a" || s.Env["K"] != "V" || s.Env["L"] != "W=X" {
					t.Fatalf("decoded %+v", s)
				}
			}},
		{name: "empty object is zero", in: `{}`, check: func(t *testing.T, c MCPConfig) {
			if !c.IsZero() {
				t.Fatal("not zero")
			}
		}},
		{name: "unknown field", in: `{"servers":[]}`, wantErr: `unknown field "servers"`},
		{name: "bad scheme", in: `{"sse_servers":["ftp://a"]}`, wantErr: "sse_servers[0].url"},
		{name: "no host", in: `{"shttp_servers":["http://"]}`, wantErr: "shttp_servers[0].url"},
		{name: "duplicate url", in: `{"sse_servers":["http://a"],"shttp_servers":["http://a"]}`, wantErr: "already given"},
		{name: "bad name", in: `{"stdio_servers":[{"name":"a b","command":"x"}]}`, wantErr: "stdio_servers[0].name"},
		{name: "duplicate name", in: `{"stdio_servers":[{"name":"a","command":"x"},{"name":"a","command":"y"}]}`, wantErr: "names must be unique"},
		{name: "command with spaces", in: `{"stdio_servers":[{"name":"a","command":"npx -y srv"}]}`, wantErr: "one executable"},
		{name: "quoted args string", in: `{"stdio_servers":[{"name":"a","command":"x","args":"--c \"a b\""}]}`, wantErr: "JSON list"},
		{name: "bad env name", in: `{"stdio_servers":[{"name":"a","command":"x","env":{"1A":"v"}}]}`, wantErr: "not a valid environment variable"},
		{name: "timeout out of range", in: `{"shttp_servers":[{"url":"http://a","timeout":4000}]}`, wantErr: "timeout 4000"},
		{name: "not an object", in: `[1]`, wantErr: "mcp_config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseMCPConfig([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseMCPStdioServersTakesOpenHandsUpdateBody(t *testing.T) {
	list, err := ParseMCPStdioServers([]byte(`[{"name":"fetch","command":"uvx","args":["mcp-server-fetch"],"env":{}}]`))
	if err != nil || len(list) != 1 || list[0].Command != "uvx" {
		t.Fatalf("list %+v err %v", list, err)
	}
	if _, err := ParseMCPStdioServers([]byte(`{"name":"x"}`)); err == nil || !strings.Contains(err.Error(), "must be a list") {
		t.Fatalf("object body: err = %v", err)
	}
}
