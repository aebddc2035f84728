package docker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"corral/runtimes"
)

// BenchmarkFork100MB measures a fork of a sandbox whose /workspace holds
// 100 MB (Fork: docker commit of the parent plus a copy of its workspace
// into a new volume, then Start of the child to READY) against a cold
// Start of the same image to READY, interleaved in the same loop so load
// hits both alike. Reports p50s and ratio = fork p50 / cold p50.
func BenchmarkFork100MB(b *testing.B) {
	be := newBackend(b)
	ctx := context.Background()
	parent := start(b, be, runtimes.Spec{SessionID: "bench-fork-parent"})
	if out, code := run(b, dial(b, parent), "head -c 100m /dev/urandom > /workspace/blob && ls -l /workspace/blob"); code != 0 {
		b.Fatalf("writing the parent's 100 MB: exit %d: %s", code, out)
	}
	var forks, colds []time.Duration
	startTimed := func(spec runtimes.Spec, since time.Time, into *[]time.Duration) {
		h, err := be.Start(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		*into = append(*into, time.Since(since))
		b.StopTimer()
		if err := be.Destroy(ctx, h); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		spec, err := be.Fork(ctx, parent, runtimes.Spec{SessionID: fmt.Sprintf("bench-fork-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		startTimed(spec, t0, &forks)
		startTimed(runtimes.Spec{SessionID: fmt.Sprintf("bench-cold-%d", i)}, time.Now(), &colds)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(forks, .5)), "fork-100MB-p50-ms")
	b.ReportMetric(ms(pct(colds, .5)), "cold-start-p50-ms")
	b.ReportMetric(float64(pct(forks, .5))/float64(pct(colds, .5)), "ratio")
}
