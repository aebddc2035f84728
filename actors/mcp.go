package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"corral/eventbus"
	"corral/runtimes"
)

// mcpConfigurer is what the Runtime needs from an agent connection to give
// the sandbox the session's MCP servers (agentwire.Client over HTTP,
// local.InProcessConn in process). ConfigureMCP replaces the agent's whole
// MCP configuration.
type mcpConfigurer interface {
	ConfigureMCP(ctx context.Context, cfg eventbus.MCPConfig) error
}

// mcpStartFailures is implemented by the error ConfigureMCP returns when the
// configuration was applied but some servers did not start (OpenHands'
// router_error_log): the others serve their tools, so the session goes on.
type mcpStartFailures interface {
	error
	MCPStartFailures() string
}

// mcpConfigureTimeout bounds applying the MCP configuration (starting stdio
// servers included); OpenHands gives /update_mcp_server 60 s.
const mcpConfigureTimeout = 90 * time.Second

// errorMCPUnavailable is the error_id of the observation call_tool_mcp gets
// when the session's MCP servers could not be configured on its sandbox.
const errorMCPUnavailable = "AGENT_ERROR$MCP_UNAVAILABLE"

// applyMCP gives the agent behind conn the session's MCP configuration. It
// returns why call_tool_mcp cannot work on this connection ("" when it can,
// or when the session has no MCP servers); servers that failed to start are
// only logged: the agent reports them itself when their tools are called.
func applyMCP(ctx context.Context, conn runtimes.AgentConn, cfg *eventbus.MCPConfig, backend, sid string, logger *slog.Logger) string {
	if cfg == nil || cfg.IsZero() {
		return ""
	}
	mc, ok := conn.(mcpConfigurer)
	if !ok {
		logger.Warn("the session asks for MCP servers but its runtime cannot configure them; call_tool_mcp will fail", "session", sid, "runtime", backend)
		return fmt.Sprintf("the session's MCP servers (%s) are not available: the %s runtime's sandbox connection cannot configure MCP servers; use a runtime whose agent serves MCP (local, docker, remote)",
			mcpServerNames(*cfg), backend)
	}
	cctx, cancel := context.WithTimeout(ctx, mcpConfigureTimeout)
	defer cancel()
	err := mc.ConfigureMCP(cctx, *cfg)
	if err == nil {
		return ""
	}
	if sf, ok := errors.AsType[mcpStartFailures](err); ok {
		logger.Warn("some MCP servers of the session failed to start; their tools are missing", "session", sid,
			"servers", mcpServerNames(*cfg), "errors", sf.MCPStartFailures())
		return ""
	}
	logger.Warn("configuring the session's MCP servers failed; call_tool_mcp will fail", "session", sid, "servers", mcpServerNames(*cfg), "err", err)
	if errors.Is(err, errors.ErrUnsupported) {
		return fmt.Sprintf("the session's MCP servers (%s) are not available: %v", mcpServerNames(*cfg), err)
	}
	return fmt.Sprintf("the session's MCP servers (%s) could not be configured on its sandbox when it (re)started: %v", mcpServerNames(*cfg), err)
}

// mcpServerNames lists a config's servers for messages: stdio servers by
// name, remote ones by URL.
func mcpServerNames(c eventbus.MCPConfig) string {
	var out []string
	for _, s := range c.StdioServers {
		out = append(out, s.Name)
	}
	for _, s := range c.SSEServers {
		out = append(out, s.URL)
	}
	for _, s := range c.SHTTPServers {
		out = append(out, s.URL)
	}
	return fmt.Sprint(out)
}

// mcpUnavailable answers a call_tool_mcp the runtime knows cannot work,
// saying why, instead of sending it to an agent without the servers.
func mcpUnavailable(action *eventbus.Event, reason string) *eventbus.Event {
	name := ""
	if a, ok := action.Action.(*eventbus.MCPAction); ok {
		name = a.Name
	}
	return eventbus.NewError(action.ID, errorMCPUnavailable, fmt.Sprintf("MCP tool %q cannot be called: %s", name, reason))
}
