package main

import (
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The cluster scenario runs briefly (3 real serve processes, one kill -9,
// a farm of 3 jobs) so it cannot rot: every figure comes with a measured
// baseline, and no process it started outlives it.
func TestBenchClusterReportsEachFigureWithItsBaselineAndLeavesNoProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real corral serve cluster members; skipped in -short mode")
	}
	corral, _ := buildCorral(t, t.TempDir())
	var o benchOpts
	fs := benchFlags(io.Discard, &o)
	if err := fs.Parse([]string{"--nodes", "3", "--kills", "1", "--actions", "5", "--jobs", "3", "--concurrency", "2", "--dir", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	o.set, o.corral = map[string]bool{"actions": true}, corral
	var figs []figure
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := benchCluster(ctx, &o, func(f figure) { figs = append(figs, f) }); err != nil {
		t.Fatalf("bench cluster: %v", err)
	}
	want := []string{ // name prefixes, in order
		"routed `echo` action round trip via a non-owner, p50 of 5, 3 nodes",
		"routed `echo` action round trip via a non-owner, p99 of 5, 3 nodes",
		"routed action p50 overhead",
		"routed GET /api/sessions/{id} via a non-owner, p50 of 5, 3 nodes",
		"routed GET p50 overhead",
		"failover: kill -9 of the owner (3 nodes) until its session serves again through a survivor, p50 of 1",
		"failover: kill -9 of the owner (3 nodes) until its session serves again through a survivor, max of 1",
		"farm 3 jobs on 3 nodes (local, concurrency 2): throughput",
	}
	if len(figs) != len(want) {
		t.Fatalf("got %d figures, want %d: %+v", len(figs), len(want), figs)
	}
	for i, f := range figs {
		if !strings.HasPrefix(f.Name, want[i]) {
			t.Errorf("figure %d is %q, want %q...", i, f.Name, want[i])
		}
		// The overhead is a difference and may be negative; the rest are
		// times and rates.
		if (f.Value <= 0 && !strings.Contains(f.Name, "overhead")) || f.Baseline == "" || f.BaselineValue <= 0 || f.Ratio != f.Value/f.BaselineValue {
			t.Errorf("incomplete figure %+v", f)
		}
	}
	if out, err := exec.Command("pgrep", "-f", corral+" serve").Output(); err == nil {
		t.Errorf("serve processes of %s still run: %s", corral, out)
	}
}

func TestBenchClusterRefusesTooFewNodesOrKills(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    benchOpts
	}{
		{"one node has no non-owner to route through", benchOpts{nodes: 1, kills: 1, actions: 1, jobs: 1}},
		{"no kill measures no failover", benchOpts{nodes: 3, kills: 0, actions: 1, jobs: 1}},
		{"no job measures no farm", benchOpts{nodes: 3, kills: 1, actions: 1, jobs: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.set = map[string]bool{"actions": true}
			err := benchCluster(context.Background(), &tc.o, func(figure) { t.Error("a figure was emitted") })
			if err == nil || !strings.Contains(err.Error(), "--nodes >= 2") {
				t.Errorf("err = %v, want one naming the valid ranges", err)
			}
		})
	}
}
