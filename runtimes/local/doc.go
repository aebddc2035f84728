// Package local provides two sandbox backends that run on the host:
//
//   - Backend ("local"): corral-agent as a host subprocess in its own process
//     group, reached over agentwire on a unix socket with a fresh random
//     token, optionally from a warm pool of agents started ahead of time.
//   - InProcess ("cli"): the sandbox executor inside this process, no agent
//     and no socket: the smallest footprint, as OpenHands' CLIRuntime.
//
// Neither isolates anything: commands run as the host user with the host's
// filesystem. This package must never kill processes it did not start
// (every signal goes to a process group it created, after checking the
// group still belongs to its agent) and never delete a workspace it did
// not create.
package local
