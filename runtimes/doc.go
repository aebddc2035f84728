// Package runtimes defines the Backend contract every sandbox provider
// implements (local processes, Docker, remote hosts), the AgentConn a
// backend's Connect returns (the one way to reach a sandbox's agent), and
// the Registry that maps a runtime name from configuration to a Backend.
//
// It also holds the one place where sandbox ownership is decided: every
// sandbox records its Owner (Spec.Owner, kept in labels, state files and
// Handle.Meta under the Meta* keys); OwnerAlive tells a live owner from a
// dead one by an flock on the owner's lock file; Reap destroys, for any
// backend that is a Lister, exactly the sandboxes nobody will use again.
//
// It must never import a concrete backend, the actor engine or any
// transport: backends depend on it, not the other way round. It must never
// destroy a sandbox it cannot prove abandoned (another host's, one with no
// owner recorded, a live owner's). It holds no package-level mutable state;
// a Registry is a value its caller builds.
package runtimes
