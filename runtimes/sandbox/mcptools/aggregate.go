package mcptools

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
)

// aggregate is the one MCP server that lists the tools of all stdio servers
// under their plain names (the first server offering a name wins), as
// OpenHands' action-execution server does at /mcp/sse, so OpenHands' own
// MCP client works unchanged.
type aggregate struct {
	h   *Hub
	srv *mcpserver.MCPServer

	mu         sync.Mutex // guards sse and streamable
	sse        *mcpserver.SSEServer
	streamable *mcpserver.StreamableHTTPServer
}

func newAggregate(h *Hub) *aggregate {
	return &aggregate{h: h, srv: mcpserver.NewMCPServer("corral-agent", "1.0.0", mcpserver.WithToolCapabilities(true))}
}

// sync replaces the served tools with the stdio servers' ones.
func (a *aggregate) sync(running []*server) {
	seen := map[string]bool{}
	var tools []mcpserver.ServerTool
	for _, s := range running {
		if s.kind != KindStdio {
			continue
		}
		for _, t := range s.toolList() {
			if seen[t.Name] {
				continue
			}
			seen[t.Name] = true
			tools = append(tools, mcpserver.ServerTool{Tool: t, Handler: a.handler(s)})
		}
	}
	a.srv.SetTools(tools...)
}

// handler forwards a tool call to stdio server s (not to a remote server
// that offers the same name). Failures become tool errors (isError results
// with the explanation); JSON-RPC errors stay errors.
func (a *aggregate) handler(s *server) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		args := req.GetArguments()
		if a.h.isClosed() {
			return mcp.NewToolResultError(ErrClosed.Error()), nil
		}
		res, err := callOn(ctx, s, req.Params.Name, args, 0)
		var rpc *RPCError
		switch {
		case err == nil:
			return res, nil
		case errors.As(err, &rpc):
			return nil, rpc.Err
		}
		return mcp.NewToolResultError(err.Error()), nil
	}
}

// Handler serves the aggregated server under prefix (e.g. "/mcp"):
// streamable HTTP at prefix, SSE at prefix+"/sse" with its message
// endpoint at prefix+"/message". The SSE endpoint event names
// X-Forwarded-Prefix + prefix + "/message", so a client that reaches the
// agent through a proxy mounting it under a path posts to the right place.
// Every SSE event is flushed as it is written. It is the caller's job to
// authenticate requests; localhost DNS-rebinding checks are off for that
// reason (proxies reach the agent from localhost with a foreign Host).
func (h *Hub) Handler(prefix string) http.Handler {
	a := h.agg
	prefix = "/" + strings.Trim(prefix, "/")
	sse := mcpserver.NewSSEServer(a.srv,
		mcpserver.WithDynamicBasePath(func(r *http.Request, _ string) string {
			return strings.TrimSuffix(r.Header.Get("X-Forwarded-Prefix"), "/") + prefix
		}),
		mcpserver.WithSSEEndpoint("/sse"),
		mcpserver.WithMessageEndpoint("/message"),
		mcpserver.WithUseFullURLForMessageEndpoint(false),
		mcpserver.WithSSEDisableLocalhostProtection(true),
	)
	streamable := mcpserver.NewStreamableHTTPServer(a.srv,
		mcpserver.WithEndpointPath(prefix),
		mcpserver.WithDisableLocalhostProtection(true),
	)
	a.mu.Lock()
	a.sse, a.streamable = sse, streamable
	a.mu.Unlock()
	mux := http.NewServeMux()
	mux.Handle(prefix+"/sse", sse.SSEHandler())
	mux.Handle(prefix+"/message", sse.MessageHandler())
	mux.Handle(prefix, streamable)
	return mux
}

// close ends the open SSE and streamable sessions.
func (a *aggregate) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sse != nil {
		a.sse.CloseSessions()
	}
	if a.streamable != nil {
		_ = a.streamable.Shutdown(context.Background())
	}
}
