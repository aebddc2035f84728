package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"corral/eventbus"
)

const benchUsage = `usage: corral bench SCENARIO [--json] [flags]

Measures Corral and, in the same run, a baseline doing the same work without
Corral; every figure is printed with its baseline and ratio = value/baseline.

Scenarios:
  events     event store: durable and never appends, fan-out, replay
             (baselines: raw write(2) + fdatasync; write(2); Go channels; read(2); encoding/json)
  roundtrip  one action's round trip at each layer        (baseline: fork/exec of bash -c true)
  start      sandbox start per backend, docker also from a warm pool (warm_pool = 1)
             (baseline: bash -c true; docker run --rm IMAGE true via the API)
  sessions   N concurrent sessions x M actions, at N = each of --sessions
  farm       a farm of N synthetic jobs                   (baseline: sum of sandbox starts / concurrency)
  cluster    --nodes corral serve processes on loopback: echo routed through a non-owner
             (baseline: the owner, interleaved; --actions pairs, default 500 here), failover
             after kill -9 of the owner x --kills (baseline: one node's restart on its store),
             farm of --jobs on the cluster (baseline: a cluster of one node)

Flags:
`

// figure is one measured number with the baseline it is compared to.
// ratio = value / baseline_value; whether higher is better depends on the
// unit (latency: lower; throughput: higher).
type figure struct {
	Name          string  `json:"name"`
	Value         float64 `json:"value"`
	Unit          string  `json:"unit"`
	Baseline      string  `json:"baseline"`
	BaselineValue float64 `json:"baseline_value"`
	Ratio         float64 `json:"ratio"`
	// Settings names the event store settings the figure ran with: the
	// defaults unless it says otherwise.
	Settings string `json:"settings,omitempty"`
}

// on returns f labelled with the store settings it ran with.
func (f figure) on(settings string) figure {
	f.Settings = settings
	return f
}

// storeSettings describes cfg for a figure's label: "defaults (sync =
// batch)", or the settings that differ from the defaults.
func storeSettings(cfg eventbus.Config) string {
	def := eventbus.DefaultConfig()
	var diff []string
	if cfg.Sync != def.Sync {
		diff = append(diff, "sync = "+string(cfg.Sync))
	}
	if cfg.SubscriberBuffer != def.SubscriberBuffer {
		diff = append(diff, fmt.Sprintf("subscriber_buffer = %d", cfg.SubscriberBuffer))
	}
	if len(diff) == 0 {
		return fmt.Sprintf("defaults (sync = %s)", def.Sync)
	}
	return strings.Join(diff, ", ")
}

func newFigure(name string, value float64, unit, baseline string, baseValue float64) figure {
	f := figure{Name: name, Value: value, Unit: unit, Baseline: baseline, BaselineValue: baseValue}
	if baseValue != 0 {
		f.Ratio = value / baseValue
	}
	return f
}

type benchOpts struct {
	json           bool
	events         int
	durableEvents  int
	appendSessions int
	replayEvents   int
	subscribers    int
	sessions       string
	actions        int
	jobs           int
	concurrency    int
	runtime        string
	image          string
	iterations     int
	backends       string
	dir            string
	nodes          int
	kills          int
	corral         string          // cluster: the corral executable nodes run ("": this one)
	set            map[string]bool // flags given on the command line
}

func benchFlags(w io.Writer, o *benchOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("corral bench", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.BoolVar(&o.json, "json", false, "print one JSON object per figure instead of a table")
	fs.IntVar(&o.events, "events", 20000, "events: events appended by the 100-session, never and fan-out figures")
	fs.IntVar(&o.durableEvents, "durable-events", 2000, "events: events appended by the durable single writer (one fdatasync each)")
	fs.IntVar(&o.appendSessions, "append-sessions", 100, "events: sessions appending at once in the durable many-session figure")
	fs.IntVar(&o.replayEvents, "replay-events", 100000, "events: events of the replayed session")
	fs.IntVar(&o.subscribers, "subscribers", 100, "events: subscribers of the fan-out stream")
	fs.StringVar(&o.sessions, "sessions", "10,100,1000", "sessions: concurrent session counts (the scaling curve)")
	fs.IntVar(&o.actions, "actions", 20, "sessions: actions per session")
	fs.IntVar(&o.jobs, "jobs", 200, "farm: synthetic jobs")
	fs.IntVar(&o.concurrency, "concurrency", 16, "farm: jobs at once")
	fs.StringVar(&o.runtime, "runtime", "local", "sessions, farm: backend")
	fs.StringVar(&o.image, "image", "", "docker image (default: the backend's)")
	fs.IntVar(&o.iterations, "n", 200, "roundtrip, start: iterations per layer")
	fs.StringVar(&o.backends, "backends", "local,docker", "start: backends to measure")
	fs.IntVar(&o.nodes, "nodes", 3, "cluster: members")
	fs.IntVar(&o.kills, "kills", 20, "cluster: kill -9 failovers (and single-node restarts) measured")
	fs.StringVar(&o.dir, "dir", "", "scratch directory (default: a temporary one, removed afterwards)")
	return fs
}

// scenario measures and emits figures.
type scenario func(ctx context.Context, o *benchOpts, emit func(figure)) error

func benchScenarios() map[string]scenario {
	return map[string]scenario{
		"events":    benchEvents,
		"roundtrip": benchRoundtrip,
		"start":     benchStart,
		"sessions":  benchSessions,
		"farm":      benchFarm,
		"cluster":   benchCluster,
	}
}

// runBench implements `corral bench`. args excludes "bench".
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o benchOpts
	fs := benchFlags(stderr, &o)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	scenarios := benchScenarios()
	if len(pos) != 1 || scenarios[pos[0]] == nil {
		names := make([]string, 0, len(scenarios))
		for n := range scenarios {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "corral bench: want one scenario of: %s (got %q)\n", strings.Join(names, ", "), pos)
		return 2
	}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "corral-bench-")
		if err != nil {
			fmt.Fprintf(stderr, "corral bench: scratch dir: %v\n", err)
			return 1
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	var figs []figure
	enc := json.NewEncoder(stdout)
	emit := func(f figure) {
		figs = append(figs, f)
		if o.json {
			_ = enc.Encode(f)
		}
	}
	start := time.Now()
	err = scenarios[pos[0]](ctx, &o, emit)
	if !o.json {
		printFigures(stdout, figs)
		fmt.Fprintf(stdout, "(%s, %s)\n", pos[0], time.Since(start).Round(time.Millisecond))
	}
	if err != nil {
		fmt.Fprintf(stderr, "corral bench %s: %v\n", pos[0], err)
		return 1
	}
	return 0
}

func printFigures(w io.Writer, figs []figure) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\tvalue\tunit\tbaseline\tbaseline value\tratio\tstore\t")
	for _, f := range figs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2fx\t%s\t\n", f.Name, fmtNum(f.Value), f.Unit, f.Baseline, fmtNum(f.BaselineValue), f.Ratio, f.Settings)
	}
	tw.Flush()
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// latencies collects durations and reports percentiles in microseconds.
type latencies []time.Duration

func (l latencies) pct(p float64) float64 {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(float64(len(s))*p/100+0.999999) - 1
	k = min(max(k, 0), len(s)-1)
	return float64(s[k]) / float64(time.Microsecond)
}
