package agentwire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"corral/eventbus"
)

// PathUpdateMCPServer is OpenHands' endpoint that (re)configures the MCP
// servers the agent serves on /mcp/sse and /mcp.
const PathUpdateMCPServer = "/update_mcp_server"

// MCPStartError is ConfigureMCP's error when the agent took the
// configuration but some servers did not start: the others serve their
// tools. Log is the agent's router_error_log.
type MCPStartError struct{ Log string }

func (e *MCPStartError) Error() string { return "some MCP servers failed to start: " + e.Log }

// MCPStartFailures returns the agent's report of the servers that failed.
func (e *MCPStartError) MCPStartFailures() string { return e.Log }

// ConfigureMCP replaces the agent's whole MCP configuration with cfg (the
// object form of POST /update_mcp_server; OpenHands' list form keeps the
// remote servers). It returns *MCPStartError when some servers did not
// start, and an error matching errors.ErrUnsupported when the agent
// predates MCP support.
func (c *Client) ConfigureMCP(ctx context.Context, cfg eventbus.MCPConfig) error {
	body, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("agentwire: encode the MCP configuration: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+PathUpdateMCPServer, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("agentwire: configure MCP servers: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Session-API-Key", c.token) // the agent accepts its token as a session key
	resp, err := c.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("agentwire: configure MCP servers: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("agentwire: configure MCP servers: reading the agent's answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		return fmt.Errorf("agentwire: the sandbox's agent (version %s) has no MCP support (POST %s answered HTTP %d); upgrade corral-agent: %w",
			c.AgentVersion(), PathUpdateMCPServer, resp.StatusCode, errors.ErrUnsupported)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("agentwire: configure MCP servers: agent answered HTTP %d: %s", resp.StatusCode, detailOf(data))
	}
	var ans struct {
		RouterErrorLog string `json:"router_error_log"`
	}
	if err := json.Unmarshal(data, &ans); err != nil {
		return fmt.Errorf("agentwire: configure MCP servers: the agent's answer is not JSON {\"detail\", \"router_error_log\"}: %w", err)
	}
	if ans.RouterErrorLog != "" {
		return &MCPStartError{Log: ans.RouterErrorLog}
	}
	return nil
}

// detailOf extracts FastAPI's {"detail": ...} from an error body, or
// returns the body itself.
func detailOf(body []byte) string {
	var d struct {
		Detail any `json:"detail"`
	}
	if json.Unmarshal(body, &d) == nil && d.Detail != nil {
		if s, ok := d.Detail.(string); ok {
			return s
		}
		b, _ := json.Marshal(d.Detail)
		return string(b)
	}
	return string(bytes.TrimSpace(body))
}
