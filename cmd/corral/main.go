// Command corral is Corral's command line: run actions in a sandbox (exec,
// shell), replay OpenHands trajectories (replay), serve the API (serve),
// run evaluation farms (farm), benchmarks (bench) and build images (image).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `usage: corral <command> [flags]

commands:
  exec     run OpenHands action events (JSON lines on stdin, or --file) in one session
  replay   re-run the actions of an OpenHands trajectory and compare observations
  shell    interactive: type a command, see its output
  serve    HTTP + WebSocket API, web UI and engine
  farm     run many jobs (evaluation farm)
  bench    benchmarks with same-run baselines
  image    build sandbox images
  logs     print (or follow) a session's sandbox log, from corral serve
  fork     fork a running session (events and filesystem), through corral serve
  node     list a cluster's members or drain one, through corral serve
  version  print the version

Run "corral <command> --help" for a command's flags.
`

// endSignals end a command the way Ctrl-C does: it stops what it runs and
// releases its sandboxes before exiting. SIGHUP is what a command gets when
// its terminal is closed (the window, the SSH connection), SIGTERM what a
// service manager or kill sends.
var endSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// signalContext is the context commands run under: it ends on the first of
// endSignals. `corral shell` leaves Ctrl-C (SIGINT) out: it handles Ctrl-C
// itself (interrupting the running command) and ends on SIGTERM/SIGHUP.
func signalContext(args []string) (context.Context, context.CancelFunc) {
	sigs := endSignals
	if len(args) > 0 && args[0] == "shell" {
		sigs = []os.Signal{syscall.SIGTERM, syscall.SIGHUP}
	}
	return signal.NotifyContext(context.Background(), sigs...)
}

func main() {
	ctx, stop := signalContext(os.Args[1:])
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	rest := args[1:]
	switch args[0] {
	case "exec":
		return runExec(ctx, rest, stdin, stdout, stderr)
	case "replay":
		return runReplay(ctx, rest, stdout, stderr)
	case "shell":
		return runShell(ctx, rest, stdin, stdout, stderr)
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "farm":
		return runFarm(ctx, rest, stdin, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "image":
		return runImage(ctx, rest, stdout, stderr)
	case "logs":
		return runLogs(ctx, rest, stdout, stderr)
	case "fork":
		return runFork(ctx, rest, stdout, stderr)
	case "node":
		return runNode(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "corral %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "corral: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}
