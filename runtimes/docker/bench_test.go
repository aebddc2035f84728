package docker

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
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

// BenchmarkStartReady measures Start (create, start, agent ready) with both
// readiness strategies against the `docker run --rm IMAGE true` baseline,
// interleaved in the same loop so machine load hits all three alike.
// Reports p50s and ratio = socket-readiness p50 / baseline p50 (target
// <= 1.25).
func BenchmarkStartReady(b *testing.B) {
	sock := newBackend(b, WithReadiness(ReadySocket))
	logs := newBackend(b, WithReadiness(ReadyLogs))
	ctx := context.Background()
	var base, bySock, byLogs []time.Duration
	startOne := func(be *Backend, name string, i int, into *[]time.Duration) {
		t0 := time.Now()
		h, err := be.Start(ctx, runtimes.Spec{SessionID: fmt.Sprintf("bench-%s-%d", name, i)})
		if err != nil {
			b.Fatal(err)
		}
		*into = append(*into, time.Since(t0))
		b.StopTimer()
		if err := be.Destroy(ctx, h); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if err := runTrue(ctx, sock, env.image); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(t0))
		startOne(sock, "sock", i, &bySock)
		startOne(logs, "logs", i, &byLogs)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(bySock, .5)), "ready-socket-p50-ms")
	b.ReportMetric(ms(pct(byLogs, .5)), "ready-logs-p50-ms")
	b.ReportMetric(ms(pct(base, .5)), "docker-run-true-p50-ms")
	b.ReportMetric(float64(pct(bySock, .5))/float64(pct(base, .5)), "ratio")
}

// BenchmarkEchoRoundTrip measures `echo hi` through agentwire into a running
// sandbox against the baseline `docker exec SANDBOX echo hi` through the
// API (exec create + attach/start + inspect), in the same run. The baseline
// runs after the measured loop (at most 100 times): interleaved, each ~80 ms
// docker exec disturbed the ~1 ms round trips that followed it (p50 3 ms
// interleaved vs 1 ms alone).
func BenchmarkEchoRoundTrip(b *testing.B) {
	be := newBackend(b)
	h := start(b, be, runtimes.Spec{})
	c := dial(b, h)
	ctx := context.Background()
	run(b, c, "true") // warm the shell
	var ours, base []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if out, _ := run(b, c, "echo hi"); out != "hi" {
			b.Fatalf("echo hi = %q", out)
		}
		ours = append(ours, time.Since(t0))
	}
	b.StopTimer()
	for range min(b.N, 100) {
		t0 := time.Now()
		if err := dockerExec(ctx, be, h.ID, "echo", "hi"); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(t0))
	}
	b.ReportMetric(float64(pct(ours, .5).Microseconds())/1000, "agentwire-p50-ms")
	b.ReportMetric(float64(pct(ours, .99).Microseconds())/1000, "agentwire-p99-ms")
	b.ReportMetric(float64(pct(base, .5).Microseconds())/1000, "docker-exec-p50-ms")
	b.ReportMetric(float64(pct(ours, .5))/float64(pct(base, .5)), "ratio")
}

func dockerExec(ctx context.Context, be *Backend, id string, cmd ...string) error {
	ex, err := be.cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return err
	}
	att, err := be.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return err
	}
	defer att.Close()
	if _, err := io.Copy(io.Discard, att.Reader); err != nil {
		return err
	}
	insp, err := be.cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return err
	}
	if insp.ExitCode != 0 {
		return fmt.Errorf("docker exec %v: exit %d", cmd, insp.ExitCode)
	}
	return nil
}

// BenchmarkParallelStart50 starts 50 sandboxes at once per iteration and
// reports the p50/p99 time to ready, the wall time and the errors, against
// the baseline of 50 concurrent `docker run --rm IMAGE true` (API) run just
// before in the same iteration. ratio = wall / baseline wall.
func BenchmarkParallelStart50(b *testing.B) {
	for _, limit := range []int{4, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", limit), func(b *testing.B) { benchParallelStart(b, limit) })
	}
}

func benchParallelStart(b *testing.B, limit int) {
	be := newBackend(b, WithNodeID(env.node+"-bench50"), WithStartConcurrency(limit))
	ctx := context.Background()
	const n = 50
	var all, baseAll []time.Duration
	var wall, baseWall time.Duration
	errs := 0
	for it := 0; b.Loop(); it++ {
		var wg sync.WaitGroup
		baseLat := make([]time.Duration, n)
		t0 := time.Now()
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := time.Now()
				if err := runTrue(ctx, be, env.image); err != nil {
					b.Error(err)
				}
				baseLat[i] = time.Since(s)
			}()
		}
		wg.Wait()
		baseWall += time.Since(t0)
		baseAll = append(baseAll, baseLat...)

		handles := make([]*runtimes.Handle, n)
		lat := make([]time.Duration, n)
		fails := make([]error, n)
		t0 = time.Now()
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
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(all, .5)), "ready-p50-ms")
	b.ReportMetric(ms(pct(all, .99)), "ready-p99-ms")
	b.ReportMetric(ms(wall)/float64(b.N), "wall-ms")
	b.ReportMetric(ms(pct(baseAll, .99)), "docker-run-true-p99-ms")
	b.ReportMetric(ms(baseWall)/float64(b.N), "docker-run-true-wall-ms")
	b.ReportMetric(float64(wall)/float64(baseWall), "ratio")
	b.ReportMetric(float64(errs), "errors")
}

// BenchmarkWarmPoolStart measures Start to READY from the warm pool
// against a cold Start and `docker run --rm IMAGE true` on the same image,
// interleaved in one loop. The pool is refilled (untimed) before every
// warm claim, so this is the latency of a claim that finds a container
// waiting, not of a burst larger than warm_pool. Target: warm p50 <= 50 ms.
func BenchmarkWarmPoolStart(b *testing.B) {
	be := newBackend(b, WithNodeID(env.node+"-benchpool"), WithWarmPool(1))
	ctx := context.Background()
	var base, cold, warm []time.Duration
	for i := 0; b.Loop(); i++ {
		// No refill in flight while anything is timed.
		b.StopTimer()
		poolSettled(b, be, env.image, 1)
		b.StartTimer()
		t0 := time.Now()
		if err := runTrue(ctx, be, env.image); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(t0))
		// Env makes the spec one the pool cannot serve: a cold start.
		startTimed(b, be, runtimes.Spec{SessionID: fmt.Sprintf("bench-cold-%d", i), Env: map[string]string{"COLD": "1"}}, &cold)
		if h := startTimed(b, be, runtimes.Spec{SessionID: fmt.Sprintf("bench-warm-%d", i)}, &warm); h != "corral-pool-" {
			b.Fatalf("the warm start made %s, not a pool container", h)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(warm, .5)), "warm-p50-ms")
	b.ReportMetric(ms(pct(warm, .99)), "warm-p99-ms")
	b.ReportMetric(ms(pct(cold, .5)), "cold-p50-ms")
	b.ReportMetric(ms(pct(base, .5)), "docker-run-true-p50-ms")
	b.ReportMetric(float64(pct(warm, .5))/float64(pct(base, .5)), "ratio")
}

// startTimed starts spec on be, appends the time to READY to into, destroys
// the sandbox untimed and returns its container name's prefix (up to the
// last '-').
func startTimed(b *testing.B, be *Backend, spec runtimes.Spec, into *[]time.Duration) string {
	ctx := context.Background()
	t0 := time.Now()
	h, err := be.Start(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	*into = append(*into, time.Since(t0))
	b.StopTimer()
	defer b.StartTimer()
	if err := be.Destroy(ctx, h); err != nil {
		b.Fatal(err)
	}
	name := h.Meta["container_name"]
	return name[:strings.LastIndex(name, "-")+1]
}
