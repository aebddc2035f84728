// Package mcptools is the sandbox side of MCP (Model Context Protocol) tools:
// a Hub that starts the stdio MCP servers of an eventbus.MCPConfig inside the
// sandbox, connects to its SSE and streamable-HTTP servers, indexes their
// tools by name, calls a tool with a timeout, and serves one aggregated MCP
// server (SSE at {prefix}/sse and streamable HTTP at {prefix}) listing the
// tools of all stdio servers under their plain names, the way OpenHands'
// action-execution server exposes its stdio servers at /mcp/sse.
//
// The protocol itself is github.com/mark3labs/mcp-go (client and server);
// this package only manages servers and maps failures to typed errors
// (UnknownToolError, ServerError, TimeoutError, RPCError,
// InvalidResultError) that the executor turns into observations.
//
// It must never leak a server process (every stdio server runs in its own
// process group, is killed with it on Close or removal, and gets SIGKILL if
// the agent dies), never let one failing server fail the others, never
// block a call on Configure, and never import anything above eventbus.
package mcptools
