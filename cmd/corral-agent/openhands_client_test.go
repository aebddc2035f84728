package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgentAnswersEveryEndpointOfOpenHandsClient: every request OpenHands'
// ActionExecutionClient (openhands/runtime/impl/action_execution/
// action_execution_client.py) sends to the action-execution server gets
// the answer shape it reads, from the real agent binary: check_if_alive
// (/alive), list_files, copy_from (/download_files), copy_to
// (/upload_file), get_vscode_token (/vscode/connection_token),
// send_action_for_execution (/execute_action), get_mcp_config
// (/update_mcp_server) and call_tool_mcp's MCP client (/mcp/sse). The key
// is SESSION_API_KEY, as OpenHands sets it.
func TestAgentAnswersEveryEndpointOfOpenHandsClient(t *testing.T) {
	work := t.TempDir()
	const key = "oh-session-key"
	p := startAgent(t, nil, []string{"SESSION_API_KEY=" + key, "CORRAL_AGENT_TOKEN=" + token}, "--listen", "127.0.0.1:0", "--workdir", work)
	base := "http://" + p.addr
	hc := &http.Client{Timeout: 60 * time.Second}
	defer hc.CloseIdleConnections()
	if err := os.WriteFile(filepath.Join(work, "f.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "up.txt")
	_, _ = fw.Write([]byte("up"))
	mw.Close()

	for _, tc := range []struct {
		client, method, path, ctype, body string
		check                             func(body []byte) bool
	}{
		{"check_if_alive", "GET", "/alive", "", "", func(b []byte) bool { return string(b) == `{"status":"ok"}` }},
		{"list_files", "POST", "/list_files", "application/json", `{}`, func(b []byte) bool { return strings.Contains(string(b), `"f.txt"`) }},
		{"copy_from", "GET", "/download_files?path=" + work, "", "", func(b []byte) bool { return bytes.HasPrefix(b, []byte("PK")) }},
		{"copy_to", "POST", "/upload_file?destination=" + work + "&recursive=false", mw.FormDataContentType(), mp.String(),
			func(b []byte) bool {
				return string(b) == `{"destination":"`+work+`","filename":"up.txt","recursive":false}`
			}},
		{"get_vscode_token", "GET", "/vscode/connection_token", "", "", func(b []byte) bool { return string(b) == `{"token":null}` }},
		{"send_action_for_execution", "POST", "/execute_action", "application/json", `{"action":{"action":"run","args":{"command":"echo hi","blocking":true},"timeout":30}}`,
			func(b []byte) bool { return strings.Contains(string(b), `"observation":"run"`) }},
		{"get_mcp_config", "POST", "/update_mcp_server", "application/json", `[]`,
			func(b []byte) bool {
				var r map[string]string
				return json.Unmarshal(b, &r) == nil && r["detail"] != "" && len(r) == 2 && r["router_error_log"] == ""
			}},
	} {
		t.Run(tc.client+" "+tc.path, func(t *testing.T) {
			do := func(key string) (int, []byte) {
				req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
				if tc.ctype != "" {
					req.Header.Set("Content-Type", tc.ctype)
				}
				if key != "" {
					req.Header.Set("X-Session-API-Key", key)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, b
			}
			if code, b := do(key); code != 200 || !tc.check(b) {
				t.Fatalf("%s %s = %d %s", tc.method, tc.path, code, b)
			}
			if tc.path == "/alive" {
				return // OpenHands' middleware lets /alive through without a key
			}
			if code, b := do("wrong"); code != 403 || string(b) != `{"detail":"Invalid API Key"}` {
				t.Fatalf("%s %s with a wrong key = %d %s, want OpenHands' 403", tc.method, tc.path, code, b)
			}
		})
	}

	t.Run("call_tool_mcp /mcp/sse", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/mcp/sse", nil)
		req.Header.Set("X-Session-API-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET /mcp/sse = %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "event: endpoint" {
			t.Fatalf("first line of the stream %q (%v), want the endpoint event", line, err)
		}
	})
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
	}
}
