// Package sandbox is the executor that runs inside a sandbox: it turns one
// runnable OpenHands action (run, run_ipython, read, write, edit, ...) into
// exactly one observation, with OpenHands' texts, using a PTY bash session,
// a persistent python3 process, the filesystem and git. It also offers the
// file transfer calls behind OpenHands' /list_files, /upload_file and
// /download_files, and helpers that build OpenHands' env-var commands.
//
// It must never crash its host on bad input (every failure becomes an
// `error` observation), never run two non-static actions at once, never
// leak processes past Close, and never import anything above eventbus: it
// is embedded in corral-agent and in the local backend.
package sandbox
