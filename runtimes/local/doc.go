// Package local provides two sandbox backends that run on the host:
//
//   - Backend ("local"): corral-agent as a host subprocess in its own process
//     group, reached over agentwire on a unix socket with a fresh random
//     token, optionally from a warm pool of agents started ahead of time.
//   - InProcess ("cli"): the sandbox executor inside this process, no agent
//     and no socket: the smallest footprint, as OpenHands' CLIRuntime.
//
// Local agents outlive the Corral that started them: each runs in its own
// process group with no parent-death signal, writes its output to
// agent.log in its socket directory (never to a pipe, whose closing would
// kill it with SIGPIPE), and is recorded in a state file
// <state dir>/<sandbox id>.json (0600: {"version":1,"handle":{...}} with pid,
// socket, token, workspace and owner). So a restarted Corral finds it (List),
// re-attaches (Recover, from the handle alone: pid alive with the recorded
// start time, its command line a corral-agent listening on the handle's
// socket, the socket answering) and connects (Connect); runtimes.Reap
// removes the sandboxes of dead owners.
//
// Neither backend isolates anything: commands run as the host user with the
// host's filesystem. This package must never kill processes it did not
// start (every signal goes to a process group after checking its leader is
// still the agent the handle names: a recycled pid is ErrNotFound), never
// delete a workspace it did not create, and never reap on its own.
package local
