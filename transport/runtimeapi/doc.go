// Package runtimeapi serves OpenHands' Runtime API (the control plane that
// OpenHands' RemoteRuntime talks to: /start, /stop, /pause, /resume,
// /sessions/{sid}, /runtime/{id}, /registry_prefix, /image_exists) on top of
// Corral's engine, and proxies each sandbox's action-execution API under
// /sandbox/{runtime_id}/ so OpenHands' client reaches the agent through the
// returned url with its X-Session-API-Key.
//
// The proxy dials nothing: each request runs on the connection the
// session's backend opened to its agent (Engine.AgentHTTP over a
// runtimes.HTTPAgent: unix socket, TLS or SSH tunnel alike); a runtime
// without an HTTP agent (cli) answers 501. Responses stream: every write is
// flushed (the agent's MCP SSE stream at /mcp/sse goes event by event, with
// no timeout), and the agent is told the public path (X-Forwarded-Prefix)
// so the URLs it names (the SSE message endpoint) stay behind the proxy. /start with the session_id of a
// stopped session starts it again (Engine.Start): a new sandbox and
// session_api_key, the same events. resource_factor scales the runtime's
// default limits (EngineProvisioner.DefaultResources) where the backend
// enforces limits; elsewhere only 1 is accepted (400 otherwise).
//
// It must never serve a control-plane call without a valid X-API-Key, and
// never build images: /build answers "not supported".
package runtimeapi
