package actors

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/local"
	"corral/transport/agentwire"
)

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p * float64(len(s)-1))
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func benchBackend(b *testing.B, opts ...local.Option) *local.Backend {
	b.Helper()
	opts = append([]local.Option{local.WithAgentBinary(agentBin), local.WithTempDir(b.TempDir()), local.WithEnv("HOME=" + b.TempDir())}, opts...)
	lb, err := local.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lb.Close() })
	return lb
}

func benchEngine(b *testing.B, lb *local.Backend, cfg Config) *Engine {
	b.Helper()
	reg, _ := runtimes.NewRegistry(lb)
	cfg.DefaultRuntime = "local"
	e, err := NewEngine(cfg, reg, WithLogger(quietLogger()), WithHostEnv([]string{}), WithStore(defaultBenchStore(b)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { shutdown(b, e) })
	return e
}

// defaultBenchStore is a store on the default settings (sync = batch), as
// `corral serve` runs, for an engine created after it: the store closes
// after that engine's shutdown (cleanups run last-registered first).
func defaultBenchStore(b *testing.B) *eventbus.Store {
	st := openBenchStore(b, b.TempDir(), "")
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkLocalStart: CreateSession to STATUS$READY through the engine,
// cold (an agent is started) and from a warm pool, beside the backend's own
// Start+dial measured in the same run.
func BenchmarkLocalStart(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"cold", "warm"} {
		b.Run(mode, func(b *testing.B) {
			var opts []local.Option
			if mode == "warm" {
				opts = append(opts, local.WithWarmPool(4))
			}
			lb := benchBackend(b, opts...)
			e := benchEngine(b, lb, testConfig())
			waitWarm := func() {
				for mode == "warm" && lb.WarmReady() < 4 {
					time.Sleep(time.Millisecond)
				}
			}
			// Baseline: the backend alone (start the agent, dial agentwire).
			var base []time.Duration
			for i := 0; i < b.N; i++ {
				waitWarm()
				t0 := time.Now()
				h, err := lb.Start(ctx, runtimes.Spec{SessionID: "base"})
				if err != nil {
					b.Fatal(err)
				}
				c, err := agentwire.Dial(ctx, h.AgentAddr, h.Token, agentwire.WithClientLogger(quietLogger()))
				if err != nil {
					b.Fatal(err)
				}
				base = append(base, time.Since(t0))
				c.Close()
				lb.Destroy(ctx, h)
			}
			var eng []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				waitWarm()
				t0 := time.Now()
				info, err := e.CreateSession(ctx, SessionSpec{})
				if err != nil {
					b.Fatal(err)
				}
				if err := e.WaitReady(ctx, info.ID); err != nil {
					b.Fatal(err)
				}
				eng = append(eng, time.Since(t0))
				b.StopTimer()
				if _, err := e.Stop(ctx, info.ID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(ms(pct(eng, 0.5)), "ready_p50_ms")
			b.ReportMetric(ms(pct(base, 0.5)), "backend_start_p50_ms")
			b.ReportMetric(float64(pct(eng, 0.5))/float64(pct(base, 0.5)), "ratio_vs_backend")
		})
	}
}

// BenchmarkEchoFullPath: `echo hi` through Engine.Run (Manager -> Session
// -> Runtime -> agent -> back, action and observation persisted) beside a
// bare agentwire round trip to an agent of the same backend, same run.
func BenchmarkEchoFullPath(b *testing.B) {
	ctx := context.Background()
	lb := benchBackend(b)
	e := benchEngine(b, lb, testConfig())
	h, err := lb.Start(ctx, runtimes.Spec{SessionID: "baseline"})
	if err != nil {
		b.Fatal(err)
	}
	defer lb.Destroy(ctx, h)
	c, err := agentwire.Dial(ctx, h.AgentAddr, h.Token, agentwire.WithClientLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	sid := startSession(b, e, SessionSpec{})
	echo := func() *eventbus.Event {
		a := cmd("echo hi")
		a.SetHardTimeout(120, false)
		return a
	}
	for i := 0; i < 20; i++ { // warm both paths up
		c.Execute(ctx, "", echo(), nil)
		e.Run(ctx, sid, cmd("echo hi"))
	}
	var wire, full []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Interleaved, so both see the same machine load.
		t0 := time.Now()
		if _, err := c.Execute(ctx, "", echo(), nil); err != nil {
			b.Fatal(err)
		}
		wire = append(wire, time.Since(t0))
		t0 = time.Now()
		_, obs, err := e.Run(ctx, sid, cmd("echo hi"))
		if err != nil || obs.Type() != "run" {
			b.Fatal(obs, err)
		}
		full = append(full, time.Since(t0))
	}
	b.ReportMetric(float64(pct(full, 0.5).Microseconds()), "engine_p50_us")
	b.ReportMetric(float64(pct(wire, 0.5).Microseconds()), "agentwire_p50_us")
	b.ReportMetric(float64(pct(full, 0.5))/float64(pct(wire, 0.5)), "ratio_p50")
}

// BenchmarkConcurrentSessions: N local sessions (env CORRAL_BENCH_SESSIONS,
// default 1000) each run 20 actions at once. Every observation must be
// stored (zero lost events); reports p50/p99 action latency and the
// engine's heap per idle session (agents and bash are other processes).
func BenchmarkConcurrentSessions(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("CORRAL_BENCH_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	const actions = 20
	ctx := context.Background()
	for it := 0; it < b.N; it++ {
		lb := benchBackend(b)
		cfg := testConfig()
		cfg.MaxSessions, cfg.MaxQueued = n, n
		cfg.StartTimeout = Duration(5 * time.Minute)
		e := benchEngine(b, lb, cfg)

		runtime.GC()
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)
		sids := make([]string, n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		t0 := time.Now()
		for i := range sids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				info, err := e.CreateSession(ctx, SessionSpec{})
				if err == nil {
					err = e.WaitReady(ctx, info.ID)
				}
				if err != nil {
					errs <- err
					return
				}
				sids[i] = info.ID
			}()
		}
		wg.Wait()
		startAll := time.Since(t0)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		time.Sleep(time.Second)
		runtime.GC()
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		perIdle := float64(m1.HeapInuse+m1.StackInuse-m0.HeapInuse-m0.StackInuse) / float64(n) / 1024

		lat := make([][]time.Duration, n)
		t1 := time.Now()
		for i, sid := range sids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < actions; j++ {
					t := time.Now()
					_, obs, err := e.Run(ctx, sid, cmd(fmt.Sprintf("echo %d", j)))
					if err != nil || obs == nil {
						b.Errorf("session %s action %d: %v", sid, j, err)
						return
					}
					lat[i] = append(lat[i], time.Since(t))
				}
			}()
		}
		wg.Wait()
		runAll := time.Since(t1)
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		lost := 0
		for _, sid := range sids {
			items, err := e.History(ctx, sid, 0)
			if err != nil {
				b.Fatal(err)
			}
			acts, obs := 0, 0
			for _, item := range items {
				ev, _ := item.Event()
				if ev.Type() == "run" {
					if ev.IsAction() {
						acts++
					} else {
						obs++
					}
				}
			}
			if acts != actions || obs != actions {
				lost++
			}
		}
		t2 := time.Now()
		for _, sid := range sids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.Stop(ctx, sid); err != nil {
					b.Errorf("stop %s: %v", sid, err)
				}
			}()
		}
		wg.Wait()
		stopAll := time.Since(t2)
		b.Logf("sessions=%d lost=%d action p50=%.1fms p99=%.1fms actions/s=%.0f start_all=%.1fs stop_all=%.1fs engine KiB/idle session=%.1f",
			n, lost, ms(pct(all, 0.5)), ms(pct(all, 0.99)), float64(len(all))/runAll.Seconds(), startAll.Seconds(), stopAll.Seconds(), perIdle)
		b.ReportMetric(stopAll.Seconds(), "stop_all_s")
		b.ReportMetric(float64(n), "sessions")
		b.ReportMetric(float64(lost), "sessions_with_lost_events")
		b.ReportMetric(ms(pct(all, 0.5)), "action_p50_ms")
		b.ReportMetric(ms(pct(all, 0.99)), "action_p99_ms")
		b.ReportMetric(float64(len(all))/runAll.Seconds(), "actions_per_s")
		b.ReportMetric(startAll.Seconds(), "start_all_s")
		b.ReportMetric(perIdle, "engine_KiB_per_idle_session")
	}
}
