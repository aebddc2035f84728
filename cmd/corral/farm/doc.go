// Package farm runs evaluation farms: many independent jobs, each replaying
// OpenHands actions (a trajectory file or an inline list) in its own sandbox
// and optionally running a check command, with bounded concurrency, retries
// on infrastructure errors, a crash-safe resumable results file, a per-job
// event log, live progress and a self-contained HTML report.
//
// It talks to sandboxes only through the small Engine interface defined
// here; cmd/corral adapts the actors engine to it.
//
// It must never run a finished job twice when resuming, never lose a result
// it acknowledged (results.jsonl is fsynced per line), never leave a sandbox
// behind when a job ends (pass, fail, timeout, error or Ctrl-C), and never
// make network requests from the report it writes.
package farm
