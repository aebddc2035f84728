// Package remote is the backend for sandboxes on other machines.
//
// Two modes: "agent" connects to a corral-agent that an operator already
// started on another host, over TCP with TLS and the per-sandbox token;
// "ssh" logs in with a key (host keys checked against known_hosts), uploads
// the static agent when the host's copy differs by SHA-256, starts it in its
// own process group on a remote unix socket and tunnels agentwire through the
// SSH connection. Dropped connections cost nothing: agentwire resumes every
// in-flight request from its last output chunk. Connect is the only way to
// reach a remote agent (TLS or the SSH tunnel, grace period from
// WithAgentGracePeriod). Remote sandboxes are not enumerable from here, so
// the backend is not a runtimes.Lister and runtimes.Reap skips it.
//
// This package must never send anything in clear text over TCP unless the
// configuration says so explicitly, and must never leave a remote process
// group running after Destroy.
package remote
