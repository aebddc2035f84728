package agentwire

import (
	"bytes"
	"context"
	"errors"
	"net/http"

	"corral/eventbus"
)

// MCPServers is implemented by executors that run MCP servers
// (runtimes/sandbox.Executor). A server whose executor has it answers
// OpenHands' POST /update_mcp_server and serves the aggregated MCP server
// of the sandbox's stdio servers at /mcp (streamable HTTP) and /mcp/sse
// (SSE, with its message endpoint /mcp/message), all behind
// X-Session-API-Key like the other OpenHands endpoints. They are mounted
// even with WithoutOpenHandsAPI: Corral's controller configures MCP through
// them (Client.ConfigureMCP).
type MCPServers interface {
	// ConfigureMCP replaces the whole MCP configuration. An error that
	// has a Partial() bool method returning true is not fatal: the named
	// servers failed to start, the others run.
	ConfigureMCP(ctx context.Context, cfg eventbus.MCPConfig) error
	// MCPConfig is the configuration last given to ConfigureMCP.
	MCPConfig() eventbus.MCPConfig
	// MCPHandler serves the aggregated MCP server under prefix.
	MCPHandler(prefix string) http.Handler
}

// mcpUpdated is OpenHands' answer to POST /update_mcp_server.
type mcpUpdated struct {
	Detail         string `json:"detail"`
	RouterErrorLog string `json:"router_error_log"`
}

// mountMCP adds the MCP routes when the executor runs MCP servers.
func (s *Server) mountMCP(mux *http.ServeMux) {
	m, ok := s.exec.(MCPServers)
	if !ok {
		return
	}
	mux.HandleFunc("POST /update_mcp_server", s.sessionKey(func(w http.ResponseWriter, r *http.Request) {
		s.serveUpdateMCP(m, w, r)
	}))
	h := m.MCPHandler("/mcp")
	mux.HandleFunc("/mcp", s.sessionKey(h.ServeHTTP))
	mux.HandleFunc("/mcp/", s.sessionKey(h.ServeHTTP))
}

// serveUpdateMCP takes OpenHands' body (a JSON list of stdio servers: it
// replaces the stdio servers and keeps the remote ones) or Corral's (an
// MCPConfig object: it replaces everything). Servers that fail to start
// are listed in router_error_log, as OpenHands does; the answer is still
// 200.
func (s *Server) serveUpdateMCP(m MCPServers, w http.ResponseWriter, r *http.Request) {
	body, ok := readLimited(w, r, s.o.maxActionBody)
	if !ok {
		return
	}
	var cfg eventbus.MCPConfig
	switch trimmed := bytes.TrimSpace(body); {
	case len(trimmed) > 0 && trimmed[0] == '[':
		list, err := eventbus.ParseMCPStdioServers(trimmed)
		if err != nil {
			detail(w, http.StatusBadRequest, err.Error())
			return
		}
		cfg = m.MCPConfig()
		cfg.StdioServers = list
		if err := cfg.Validate(); err != nil {
			detail(w, http.StatusBadRequest, err.Error())
			return
		}
	case len(trimmed) > 0 && trimmed[0] == '{':
		c, err := eventbus.ParseMCPConfig(trimmed)
		if err != nil {
			detail(w, http.StatusBadRequest, err.Error())
			return
		}
		cfg = c
	default:
		detail(w, http.StatusBadRequest, `Request must be a list of MCP tools to sync ([{"name", "command", "args", "env"}], OpenHands' form) or an MCP config object ({"sse_servers", "shttp_servers", "stdio_servers"}, Corral's form)`)
		return
	}
	err := m.ConfigureMCP(r.Context(), cfg)
	var partial interface{ Partial() bool }
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, mcpUpdated{Detail: "MCP server updated successfully"})
	case errors.As(err, &partial) && partial.Partial():
		s.o.logger.Warn("some MCP servers failed to start", "err", err)
		writeJSON(w, http.StatusOK, mcpUpdated{Detail: "MCP server updated successfully", RouterErrorLog: err.Error()})
	default:
		detail(w, http.StatusInternalServerError, "Internal server error: updating the MCP servers: "+err.Error())
	}
}
