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
  version  print the version

Run "corral <command> --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
