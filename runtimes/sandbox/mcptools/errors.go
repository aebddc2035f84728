package mcptools

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNoServers is returned by Call when no MCP server is configured.
var ErrNoServers = errors.New("no MCP servers are configured for this sandbox: give the session an mcp_config (sse_servers, shttp_servers or stdio_servers) or POST it to the agent's /update_mcp_server")

// ErrClosed is returned by Configure and Call after Close.
var ErrClosed = errors.New("the MCP hub is closed")

// ServerError is a server that could not be started or connected, or that
// died (its process exited, its connection broke) while a tool ran.
type ServerError struct {
	Kind   string // "stdio", "sse" or "shttp"
	Server string // the stdio server's name, or the remote server's URL
	Err    error
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("MCP %s server %q: %v", e.Kind, e.Server, e.Err)
}

func (e *ServerError) Unwrap() error { return e.Err }

// PartialError is what Configure returns when some servers failed to start
// or connect. It is not fatal: the other servers run and their tools can be
// called; the failed ones are retried by the next Configure.
type PartialError struct {
	Failed []*ServerError
}

func (e *PartialError) Error() string {
	lines := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		lines[i] = f.Error()
	}
	return strings.Join(lines, "\n")
}

// Partial marks the error as non-fatal for callers that cannot import this
// package (agentwire tests for interface{ Partial() bool } with errors.As).
func (e *PartialError) Partial() bool { return true }

func (e *PartialError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f
	}
	return out
}

// UnknownToolError is a call of a tool no running server offers.
type UnknownToolError struct {
	Tool   string
	Known  []string       // tools of the running servers, sorted
	Failed []*ServerError // servers that failed to start (their tools are unknown)
}

func (e *UnknownToolError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "No matching MCP agent found for tool name: %s.", e.Tool)
	if len(e.Known) > 0 {
		fmt.Fprintf(&b, " The available MCP tools are: %s.", strings.Join(e.Known, ", "))
	} else {
		b.WriteString(" No MCP tools are available.")
	}
	for _, f := range e.Failed {
		fmt.Fprintf(&b, "\n%s (its tools are not available)", f.Error())
	}
	return b.String()
}

// TimeoutError is a call that did not answer in time. After is the limit
// that applied: the action's timeout or, when smaller, an shttp server's.
type TimeoutError struct {
	Tool  string
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("Tool %q timed out after %g seconds", e.Tool, e.After.Seconds())
}

// RPCError is a JSON-RPC error the server answered a call with (OpenHands'
// McpError).
type RPCError struct {
	Tool string
	Err  error
}

func (e *RPCError) Error() string { return e.Err.Error() }
func (e *RPCError) Unwrap() error { return e.Err }

// InvalidResultError is a call whose result is not a valid MCP
// CallToolResult (bad JSON, unknown content type, missing content).
type InvalidResultError struct {
	Tool, Server string
	Err          error
}

func (e *InvalidResultError) Error() string {
	return fmt.Sprintf("MCP tool %q of server %q returned a result that is not a valid MCP tool result: %v", e.Tool, e.Server, e.Err)
}

func (e *InvalidResultError) Unwrap() error { return e.Err }
