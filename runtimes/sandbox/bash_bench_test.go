package sandbox

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"

	"corral/eventbus"
)

// BenchmarkBashRoundTrip measures `echo hi` on a warm session (send, PS1
// detection, observation) against the baseline of spawning
// `bash -c 'echo hi'` in the same run, and reports both p50s and their
// ratio (session p50 / spawn p50; below 1 means the warm session is faster).
func BenchmarkBashRoundTrip(b *testing.B) {
	s, err := NewBashSession(context.Background(), BashOptions{WorkDir: b.TempDir(), Env: []string{"HOME=" + b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	a := btCmd("echo hi")
	for range 20 { // warm up
		s.Run(ctx, a, nil, nil)
	}

	sess := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		ev := s.Run(ctx, a, nil, nil)
		sess = append(sess, time.Since(t0))
		if ev.Content != "hi" {
			b.Fatalf("content %q", ev.Content)
		}
	}
	b.StopTimer()

	// Baseline: a fresh bash per command, as a naive runner would do.
	n := min(b.N, 2000)
	spawn := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		out, err := exec.Command("bash", "-c", "echo hi").Output()
		spawn = append(spawn, time.Since(t0))
		if err != nil || string(out) != "hi\n" {
			b.Fatalf("baseline: %q %v", out, err)
		}
	}
	p50 := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds())
	}
	sp, bp := p50(sess), p50(spawn)
	b.ReportMetric(float64(sess[len(sess)*9/10].Microseconds()), "session-p90-µs")
	b.ReportMetric(sp, "session-p50-µs")
	b.ReportMetric(bp, "spawn-p50-µs")
	if bp > 0 {
		b.ReportMetric(sp/bp, "session/spawn")
	}
}

// BenchmarkInterruptSleep measures Interrupt to observation for a running
// `sleep 100` on a warm session (the issue asks for under 1 s), against the
// same session's `echo hi` round trip in the same run as the baseline.
func BenchmarkInterruptSleep(b *testing.B) {
	s, err := NewBashSession(context.Background(), BashOptions{WorkDir: b.TempDir(), Env: []string{"HOME=" + b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	echo := make([]time.Duration, 0, b.N)
	for range b.N {
		r := startRun(s, &eventbus.CmdRunAction{Command: "echo started; sleep 100", Blocking: true}, "started")
		<-r.seen
		t0 := time.Now()
		if _, err := s.Interrupt(); err != nil {
			b.Fatal(err)
		}
		ev := <-r.obs
		lat = append(lat, time.Since(t0))
		if o, ok := ev.Observation.(*eventbus.CmdOutputObservation); !ok || o.Metadata.ExitCode != 130 {
			b.Fatalf("not interrupted: %q", ev.Content)
		}
		t0 = time.Now()
		s.Run(ctx, btCmd("echo hi"), nil, nil)
		echo = append(echo, time.Since(t0))
	}
	p := func(d []time.Duration, q int) float64 {
		slices.Sort(d)
		return float64(d[len(d)*q/100].Microseconds())
	}
	ip50, ep50 := p(lat, 50), p(echo, 50)
	b.ReportMetric(ip50, "interrupt-p50-µs")
	b.ReportMetric(p(lat, 99), "interrupt-p99-µs")
	b.ReportMetric(ep50, "echo-p50-µs")
	if ep50 > 0 {
		b.ReportMetric(ip50/ep50, "interrupt/echo")
	}
}
