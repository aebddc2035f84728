package docker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"corral/runtimes"
)

// runTrue is the baseline: `docker run --rm IMAGE true` through the API
// (create + start + wait + remove) on the same image.
func runTrue(ctx context.Context, b *Backend, img string) error {
	c, err := b.cli.ContainerCreate(ctx, &container.Config{Image: img, Cmd: []string{"true"}}, &container.HostConfig{}, nil, nil, "")
	if err != nil {
		return err
	}
	waitC, errC := b.cli.ContainerWait(ctx, c.ID, container.WaitConditionNextExit)
	if err := b.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return err
	}
	select {
	case <-waitC:
	case err := <-errC:
		return err
	}
	return b.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// BenchmarkStartReady measures Start (create, start, agent answering
// /alive) against the `docker run --rm IMAGE true` baseline, interleaved in
// the same run. Reports p50 of both and their ratio (target <= 1.25).
func BenchmarkStartReady(b *testing.B) {
	for _, r := range []Readiness{ReadySocket, ReadyLogs} {
		b.Run("readiness="+string(r), func(b *testing.B) { benchStartReady(b, r) })
	}
}

func benchStartReady(b *testing.B, r Readiness) {
	be := newBackend(b, WithReadiness(r))
	ctx := context.Background()
	var ours, base []time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if err := runTrue(ctx, be, env.image); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(t0))
		t0 = time.Now()
		h, err := be.Start(ctx, runtimes.Spec{SessionID: fmt.Sprintf("bench-start-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		ours = append(ours, time.Since(t0))
		b.StopTimer()
		if err := be.Destroy(ctx, h); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(pct(ours, .5).Microseconds())/1000, "ready-p50-ms")
	b.ReportMetric(float64(pct(base, .5).Microseconds())/1000, "docker-run-true-p50-ms")
	b.ReportMetric(float64(pct(ours, .5))/float64(pct(base, .5)), "ratio")
}

// BenchmarkParallelStart50 starts 50 sandboxes at once per iteration and
// reports the p50/p99 time to ready, the wall time and the errors.
func BenchmarkParallelStart50(b *testing.B) {
	be := newBackend(b, WithNodeID(env.node+"-bench50"))
	ctx := context.Background()
	const n = 50
	var all []time.Duration
	var wall time.Duration
	errs := 0
	for it := 0; b.Loop(); it++ {
		handles := make([]*runtimes.Handle, n)
		lat := make([]time.Duration, n)
		fails := make([]error, n)
		var wg sync.WaitGroup
		t0 := time.Now()
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := time.Now()
				handles[i], fails[i] = be.Start(ctx, runtimes.Spec{SessionID: fmt.Sprintf("bench50-%d-%d", it, i)})
				lat[i] = time.Since(s)
			}()
		}
		wg.Wait()
		wall += time.Since(t0)
		b.StopTimer()
		for i, h := range handles {
			if fails[i] != nil {
				errs++
				b.Log(fails[i])
				continue
			}
			all = append(all, lat[i])
			wg.Add(1)
			go func() { defer wg.Done(); be.Destroy(ctx, h) }()
		}
		wg.Wait()
		b.StartTimer()
	}
	if left := listTestContainers(ctx, be.cli, env.node+"-bench50"); len(left) != 0 {
		b.Errorf("%d containers leaked", len(left))
	}
	b.ReportMetric(float64(pct(all, .5).Microseconds())/1000, "ready-p50-ms")
	b.ReportMetric(float64(pct(all, .99).Microseconds())/1000, "ready-p99-ms")
	b.ReportMetric(float64(wall.Microseconds())/1000/float64(b.N), "wall-ms")
	b.ReportMetric(float64(errs), "errors")
}
