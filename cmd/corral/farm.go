package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"corral/cmd/corral/farm"
)

const farmUsage = `usage: corral farm [flags] JOBS.jsonl

Runs an evaluation farm: every line of JOBS.jsonl (or - for stdin) is one job
  {"id": "...", "trajectory": "traj.json" | "actions": [OpenHands actions...],
   "runtime": {"backend": "local"|"docker"|"kubernetes", "image": "...", "env": {...}},
   "timeout": SECONDS, "check": "shell command; exit 0 = pass"}
each in its own sandbox. Results go to OUT/results.jsonl (one line per job,
fsynced), OUT/events/<id>.jsonl (OpenHands JSON lines) and OUT/report.html.
Rerunning with the same --out runs the jobs without a result and those whose
last status was error (an infrastructure error: fix its cause and rerun;
--retry-errors=false keeps them); passed, failed and timeout results are kept
unless --rerun names them (--rerun all runs every job again). Ctrl-C stops
starting jobs and lets running ones finish for --grace; a second Ctrl-C
stops them at once.

With --cluster HOST:PORT[,...] the jobs run on a running cluster (corral
serve --join) through its members' APIs instead of in this process: the
cluster spreads the sessions over its members, a member that dies mid-job
hands the job's session to another (its action is answered once, never
sent twice), and each result names the node that ran it.

Exit status: 0 all jobs passed; 1 some job did not pass, a line was malformed
or the run was interrupted; 2 bad usage or unusable output folder.

Flags:
`

type farmOpts struct {
	concurrency int
	out         string
	retries     int
	runtime     string
	image       string
	timeout     time.Duration
	grace       time.Duration
	progress    string
	verbose     bool
	config      string
	retryErrors bool
	rerun       string
	cluster     string // --cluster: API addresses of a cluster's members
	token       string
}

func farmFlags(w io.Writer, o *farmOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("corral farm", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.IntVar(&o.concurrency, "concurrency", farm.DefaultConcurrency, "jobs running at once")
	fs.StringVar(&o.out, "out", "farm-out", "output folder (reuse it to resume)")
	fs.IntVar(&o.retries, "retries", farm.DefaultRetries, "retries per job after an infrastructure error (never after a failed check)")
	fs.StringVar(&o.runtime, "runtime", "local", "backend of jobs whose runtime names none: local, docker or kubernetes (a pod per job; [runtime.kubernetes] in --config, else $KUBECONFIG)")
	fs.StringVar(&o.image, "image", "", "image of jobs whose runtime names none (docker, kubernetes; default: the backend's)")
	fs.DurationVar(&o.timeout, "timeout", farm.DefaultTimeout, "timeout of jobs that give none")
	fs.DurationVar(&o.grace, "grace", farm.DefaultGrace, "after Ctrl-C, how long running jobs may finish before they are stopped")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: auto (bar on a terminal, else lines), bar, lines or none")
	fs.BoolVar(&o.verbose, "v", false, "log retries and teardown errors to stderr")
	fs.StringVar(&o.config, "config", "", "corral's TOML configuration file ([engine] and [runtime] sections apply)")
	fs.BoolVar(&o.retryErrors, "retry-errors", true, "rerun with the same --out: run again the jobs whose last status was error (false keeps their results)")
	fs.StringVar(&o.rerun, "rerun", "", "rerun with the same --out: also run again the jobs whose last status is in this comma-separated list (passed, failed, timeout, error), or all")
	fs.StringVar(&o.cluster, "cluster", "", "run the jobs on a running cluster: API addresses HOST:PORT[,HOST:PORT...] of its members (any of them; the cluster spreads sessions, the farm fails over when one dies)")
	fs.StringVar(&o.token, "token", os.Getenv("CORRAL_TOKEN"), "with --cluster: bearer token, one of the servers' [server] auth_tokens (env CORRAL_TOKEN)")
	return fs
}

// parseInterspersed parses args with fs, allowing positional arguments
// between flags ("a --x 1 b --y"), and returns the positional ones in
// order. "--" ends the flags as usual.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args)-len(rest) > 0 && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
}

// runFarm implements `corral farm`. args excludes "farm".
func runFarm(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o farmOpts
	fs := farmFlags(stderr, &o)
	fs.Usage = func() { fmt.Fprint(stderr, farmUsage); fs.PrintDefaults() }
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "corral farm: want exactly one jobs file, got %d arguments (see corral farm -h)\n", len(pos))
		return 2
	}
	if o.concurrency < 1 || o.retries < 0 || o.timeout <= 0 || o.grace < 0 {
		fmt.Fprintln(stderr, "corral farm: --concurrency must be >= 1, --retries >= 0, --timeout > 0 and --grace >= 0")
		return 2
	}
	rerun, err := farm.RerunStatuses(o.rerun, o.retryErrors)
	if err != nil {
		fmt.Fprintf(stderr, "corral farm: %v\n", err)
		return 2
	}

	// Read and parse the jobs before anything starts, so the summary can
	// name every malformed line.
	name, baseDir := pos[0], filepath.Dir(pos[0])
	var data []byte
	if name == "-" {
		name, baseDir = "<stdin>", "."
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		fmt.Fprintf(stderr, "corral farm: read jobs: %v\n", err)
		return 2
	}
	jobs, bad, err := farm.ParseJobs(bytes.NewReader(data), name, baseDir)
	if err != nil {
		fmt.Fprintf(stderr, "corral farm: %v\n", err)
		return 2
	}
	for _, le := range bad {
		fmt.Fprintf(stderr, "corral farm: skipping malformed job: %v\n", le)
	}
	var cfg *serveConfig
	if o.config != "" {
		c := defaultServeConfig()
		if err := loadConfigFile(o.config, &c); err != nil {
			fmt.Fprintf(stderr, "corral farm: %v\n", err)
			return 2
		}
		cfg = &c
	}
	if err := farm.Prepare(o.out); err != nil {
		fmt.Fprintf(stderr, "corral farm: %v\n", err)
		return 2
	}

	level := slog.LevelError
	if o.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	backends := []string{o.runtime}
	for _, j := range jobs {
		if b := j.Runtime.Backend; b != "" && !slices.Contains(backends, b) {
			backends = append(backends, b)
		}
	}
	eng, closeEngine, err := farmEngine(ctx, o, backends, logger, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "corral farm: %v\n", err)
		return 2
	}
	defer closeEngine(stderr)

	// First SIGINT/SIGTERM/SIGHUP: stop starting jobs (grace); second: stop now.
	runCtx, stopStarting := context.WithCancel(ctx)
	defer stopStarting()
	force := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, endSignals...)
	defer signal.Stop(sigs)
	sigDone := make(chan struct{})
	defer close(sigDone)
	go func() {
		n := 0
		for {
			select {
			case <-sigDone:
				return
			case <-sigs:
				n++
				if n == 1 {
					fmt.Fprintf(stderr, "\ncorral farm: interrupted: no new jobs; running ones get %s to finish (Ctrl-C again to stop them now)\n", o.grace)
					stopStarting()
				} else if n == 2 {
					fmt.Fprintln(stderr, "\ncorral farm: stopping running jobs and destroying their sandboxes")
					close(force)
				}
			}
		}
	}()

	tty := false
	var progW io.Writer = stderr
	switch o.progress {
	case "auto":
		tty = isTerminal(stderr)
	case "bar":
		tty = true
	case "lines":
	case "none":
		progW = nil
	default:
		fmt.Fprintf(stderr, "corral farm: --progress %q: want auto, bar, lines or none\n", o.progress)
		return 2
	}
	f := farm.New(eng, o.out,
		farm.WithConcurrency(o.concurrency),
		farm.WithRetries(o.retries),
		farm.WithRuntime(farm.Runtime{Backend: o.runtime, Image: o.image}),
		farm.WithTimeout(o.timeout),
		farm.WithGrace(o.grace),
		farm.WithForceStop(force),
		farm.WithProgress(progW, tty),
		farm.WithLogger(logger),
		farm.WithRerun(rerun...),
	)
	sum, err := f.Run(runCtx, jobs, bad)
	if sum != nil {
		if sum.Resumed != nil && sum.Resumed.TornLine > 0 {
			fmt.Fprintf(stderr, "corral farm: %s line %d was incomplete (an earlier run was killed mid-write); ignored it, its job ran again\n",
				filepath.Join(o.out, farm.ResultsFile), sum.Resumed.TornLine)
		}
		if sum.Resumed != nil {
			for _, le := range sum.Resumed.Bad {
				fmt.Fprintf(stderr, "corral farm: ignoring unreadable result line (its job ran again): %v\n", le)
			}
		}
		farm.WriteSummary(stdout, sum)
		fmt.Fprintf(stdout, "results: %s\nreport:  %s\n", filepath.Join(o.out, farm.ResultsFile), filepath.Join(o.out, farm.ReportFile))
	}
	if err != nil {
		fmt.Fprintf(stderr, "corral farm: %v\n", err)
		return 2
	}
	if !sum.OK() {
		return 1
	}
	return 0
}

// farmEngine is the engine the farm runs on: a cluster's API (--cluster),
// else an in-process engine with the backends the jobs need. closeEngine
// stops it (the in-process one drains and destroys its sandboxes).
func farmEngine(ctx context.Context, o farmOpts, backends []string, logger *slog.Logger, cfg *serveConfig) (farm.Engine, func(io.Writer), error) {
	if o.cluster != "" {
		cf, err := newClusterFarm(o.cluster, o.token, logger)
		return cf, func(io.Writer) {}, err
	}
	// The engine outlives Ctrl-C (ctx): it must drain and destroy sandboxes.
	be, err := newBenchEngine(context.WithoutCancel(ctx), engineSettings{backends: backends, maxSessions: o.concurrency, image: o.image, logger: logger, config: cfg})
	if err != nil {
		return nil, nil, err
	}
	closeEngine := func(stderr io.Writer) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := be.Close(sctx); err != nil {
			fmt.Fprintf(stderr, "corral farm: engine shutdown: %v\n", err)
		}
	}
	return farm.NewActorsEngine(be.Engine), closeEngine, nil
}

// isTerminal reports whether w is a terminal (TCGETS succeeds on its fd).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
