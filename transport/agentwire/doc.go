// Package agentwire is the protocol between the Corral controller and the
// corral-agent that runs inside a sandbox: JSON frames over one WebSocket
// (github.com/coder/websocket) on a unix socket or TCP, authenticated by a
// per-sandbox bearer token. PROTOCOL.md describes every frame.
//
// The package holds both ends: Server (mounted by cmd/corral-agent around a
// sandbox executor, together with OpenHands' action-execution HTTP API) and
// Client (used by the runtimes to drive an agent). Output streams as numbered
// chunks; a client that loses its connection reconnects and resumes from the
// last chunk it saw; a re-sent request id is answered from the running or
// stored request and is never executed twice.
//
// An interrupt frame (Client.Interrupt) reaches the sandbox out of band,
// from any connection, while an exec is running: the executor sends Ctrl-C
// to the running command (Interrupter) and the exec ends with its own
// result. Frames added after protocol 1 are announced in the agent's hello
// features, so a client can tell an older agent ("upgrade it") from a
// silent one.
//
// The agent is also the only way into the sandbox's own network: PathPorts
// lists its listening TCP ports and reverse-proxies HTTP and WebSocket
// requests to 127.0.0.1:{port} from inside (preview ports), so no host port
// is ever published.
//
// Request ids may be chosen by the caller (Client.Execute's reqID), and the
// agent ties nothing to a connection, so requests also outlive the
// controller process: after a crash a new process dials again and re-sends
// the id (Execute, or Resume, which never runs anything) to get the one
// run's output and result. Completed requests are kept DefaultResultTTL (30
// minutes) or for the last DefaultKeepResults (1024); corral-agent's
// --result-ttl and --keep-results change that. An agent that restarted
// knows no earlier id: Resume fails with ErrUnknownRequest, and
// Client.AgentInstance tells the controller which agent process it talks to.
//
// agentwire must never import runtimes/* (the executor is reached through the
// small Executor interface defined here), never run commands itself, and never
// drop output silently: when a resume asks for chunks that were evicted from
// the bounded buffer, it says so with a "gap" frame naming the lost bytes.
package agentwire
