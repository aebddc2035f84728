package actors

// Benchmarks of issue 11 ("Sessions outlive their process"): the engine on
// the DEFAULT durable store settings (eventbus.DefaultConfig(): sync =
// "batch", a real store in a temporary directory), each figure with its
// baseline measured in the same run and the ratio reported. See
// BENCHMARKS.md (bench/notes/30-engine.md) for the commands and figures.

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/local"
	"corral/transport/agentwire"
)

// openBenchStore opens a store with the default settings (sync "batch",
// the default sync method) in dir.
func openBenchStore(b *testing.B, dir string, sync eventbus.SyncPolicy) *eventbus.Store {
	b.Helper()
	cfg := eventbus.DefaultConfig()
	cfg.StoreDir = dir
	if sync == "batch-fsync" {
		sync, cfg.SyncMethod = eventbus.SyncBatch, eventbus.SyncMethodFsync
	}
	if sync != "" {
		cfg.Sync = sync
	}
	st, err := eventbus.OpenStore(cfg, eventbus.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// durableBenchEngine is an engine over lb on st (a durable owner: its
// sandboxes outlive it unless stopped, which Cleanup does).
func durableBenchEngine(b *testing.B, lb *local.Backend, st *eventbus.Store, cfg Config) *Engine {
	b.Helper()
	reg, err := runtimes.NewRegistry(lb)
	if err != nil {
		b.Fatal(err)
	}
	cfg.DefaultRuntime = "local"
	e, err := NewEngine(cfg, reg, WithLogger(quietLogger()), WithHostEnv([]string{}), WithStore(st))
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func reportPcts(b *testing.B, name string, ds []time.Duration, unit time.Duration, unitName string) {
	b.ReportMetric(float64(pct(ds, 0.5))/float64(unit), name+"_p50_"+unitName)
	b.ReportMetric(float64(pct(ds, 0.99))/float64(unit), name+"_p99_"+unitName)
}

// BenchmarkEchoDurable: `echo hi` through Engine.Run on the default store
// settings (sync = "batch": the action and its observation are each
// fsync'ed before Run returns) against a bare agentwire Execute to an
// agent of the same backend, interleaved in one loop. Built with
// -tags corralcount it also counts eventbus.Marshal/Unmarshal calls per
// action on each path; the engine's own share is full path minus bare
// agentwire (the Runtime makes the same agentwire call).
func BenchmarkEchoDurable(b *testing.B) {
	// batch-fsync: sync = "batch" with sync_method = "fsync" instead of the
	// default syncfs (which also flushes other writers on the filesystem).
	for _, sync := range []eventbus.SyncPolicy{eventbus.SyncBatch, "batch-fsync", eventbus.SyncNever} {
		b.Run("sync="+string(sync), func(b *testing.B) { benchEchoDurable(b, sync) })
	}
}

// BenchmarkCodecCallsPerAction is BenchmarkEchoDurable/sync=batch built
// with -tags corralcount (skipped without): eventbus.Marshal and Unmarshal
// calls per `echo` action on the full engine path and on the bare
// agentwire path, and the engine's share (the difference). The counters
// are atomic adds compiled in only with the tag (eventbus/codeccount.go),
// so latencies are taken from the untagged run.
func BenchmarkCodecCallsPerAction(b *testing.B) {
	if !eventbus.CodecCountEnabled {
		b.Skip("build with -tags corralcount to count codec calls")
	}
	benchEchoDurable(b, eventbus.SyncBatch)
}

func benchEchoDurable(b *testing.B, sync eventbus.SyncPolicy) {
	ctx := context.Background()
	lb := benchBackend(b, local.WithStateDir(b.TempDir()))
	st := openBenchStore(b, b.TempDir(), sync)
	e := durableBenchEngine(b, lb, st, testConfig())
	defer func() {
		shutdown(b, e)
		st.Close()
	}()
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
		if _, err := c.Execute(ctx, "", echo(), nil); err != nil {
			b.Fatal(err)
		}
		if _, _, err := e.Run(ctx, sid, cmd("echo hi")); err != nil {
			b.Fatal(err)
		}
	}
	var wire, full []time.Duration
	var wireEnc, wireDec, fullEnc, fullDec int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Interleaved, so both see the same machine load.
		a := echo()
		e0, d0 := eventbus.CodecCounts()
		t0 := time.Now()
		if _, err := c.Execute(ctx, "", a, nil); err != nil {
			b.Fatal(err)
		}
		wire = append(wire, time.Since(t0))
		e1, d1 := eventbus.CodecCounts()
		a = cmd("echo hi")
		t0 = time.Now()
		_, obs, err := e.Run(ctx, sid, a)
		if err != nil || obs.Type() != "run" {
			b.Fatal(obs, err)
		}
		full = append(full, time.Since(t0))
		e2, d2 := eventbus.CodecCounts()
		wireEnc, wireDec = wireEnc+e1-e0, wireDec+d1-d0
		fullEnc, fullDec = fullEnc+e2-e1, fullDec+d2-d1
	}
	b.StopTimer()
	reportPcts(b, "engine", full, time.Microsecond, "us")
	reportPcts(b, "agentwire", wire, time.Microsecond, "us")
	b.ReportMetric(float64(pct(full, 0.5))/float64(pct(wire, 0.5)), "ratio_p50")
	b.ReportMetric(float64(pct(full, 0.99))/float64(pct(wire, 0.99)), "ratio_p99")
	if eventbus.CodecCountEnabled {
		n := float64(b.N)
		b.ReportMetric(float64(fullEnc)/n, "full_encodes/action")
		b.ReportMetric(float64(fullDec)/n, "full_decodes/action")
		b.ReportMetric(float64(wireEnc)/n, "agentwire_encodes/action")
		b.ReportMetric(float64(wireDec)/n, "agentwire_decodes/action")
		b.ReportMetric(float64(fullEnc-wireEnc)/n, "engine_encodes/action")
		b.ReportMetric(float64(fullDec-wireDec)/n, "engine_decodes/action")
	}
}

// BenchmarkStartWarmVsCold: CreateSession to STATUS$READY on the local
// backend from a warm pool of 4 (local.WithWarmPool) against a cold start
// (an agent is started), interleaved in one loop, each engine on its own
// store with the default settings (sync = "batch") and, as a second
// sub-benchmark, sync = "never" (status events not fsync'ed).
func BenchmarkStartWarmVsCold(b *testing.B) {
	for _, sync := range []eventbus.SyncPolicy{eventbus.SyncBatch, eventbus.SyncNever} {
		b.Run("sync="+string(sync), func(b *testing.B) { benchStartWarmVsCold(b, sync) })
	}
}

func benchStartWarmVsCold(b *testing.B, sync eventbus.SyncPolicy) {
	ctx := context.Background()
	const pool = 4
	coldB := benchBackend(b, local.WithStateDir(b.TempDir()))
	warmB := benchBackend(b, local.WithStateDir(b.TempDir()), local.WithWarmPool(pool))
	coldS, warmS := openBenchStore(b, b.TempDir(), sync), openBenchStore(b, b.TempDir(), sync)
	coldE := durableBenchEngine(b, coldB, coldS, testConfig())
	warmE := durableBenchEngine(b, warmB, warmS, testConfig())
	defer func() {
		shutdown(b, coldE)
		shutdown(b, warmE)
		coldS.Close()
		warmS.Close()
	}()
	waitWarm := func() {
		deadline := time.Now().Add(time.Minute)
		for warmB.WarmReady() < pool && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	start := func(e *Engine) time.Duration {
		t0 := time.Now()
		info, err := e.CreateSession(ctx, SessionSpec{})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.WaitReady(ctx, info.ID); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		if _, err := e.Stop(ctx, info.ID); err != nil {
			b.Fatal(err)
		}
		return d
	}
	for i := 0; i < 3; i++ { // warm-up
		waitWarm()
		start(warmE)
		start(coldE)
	}
	// The backend's share of a warm start: claim a warm agent (health
	// check included) and dial agentwire, no engine.
	claim := func() time.Duration {
		t0 := time.Now()
		h, err := warmB.Start(ctx, runtimes.Spec{SessionID: "claim"})
		if err != nil {
			b.Fatal(err)
		}
		c, err := agentwire.Dial(ctx, h.AgentAddr, h.Token, agentwire.WithClientLogger(quietLogger()))
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		c.Close()
		warmB.Destroy(ctx, h)
		return d
	}
	var cold, warm, claims []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A full pool before each start, as on a server between session
		// starts, and no refill competing with the start measured.
		waitWarm()
		warm = append(warm, start(warmE))
		waitWarm()
		cold = append(cold, start(coldE))
		waitWarm()
		claims = append(claims, claim())
	}
	b.StopTimer()
	reportPcts(b, "warm_ready", warm, time.Millisecond, "ms")
	reportPcts(b, "cold_ready", cold, time.Millisecond, "ms")
	b.ReportMetric(float64(pct(claims, 0.5))/float64(time.Millisecond), "warm_backend_claim_p50_ms")
	b.ReportMetric(float64(pct(warm, 0.5))/float64(pct(cold, 0.5)), "ratio_p50")
}

// BenchmarkRecover100: 100 local sessions are started at once on an
// engine over a durable store with the default settings (the baseline:
// cold start of 100, CreateSession to READY for all); that engine then
// Detaches (sandboxes keep running, sessions stay recorded as running,
// like a crash but orderly). Measured: from opening the store again, a new
// backend (same state directory) and a new engine on it, through Recover,
// to all 100 sessions re-attached and READY (WaitReady of each). Every
// session must come back on its own sandbox (same agent process).
func BenchmarkRecover100(b *testing.B) {
	const n = 100
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := testConfig()
	cfg.MaxSessions, cfg.MaxQueued = n, n
	cfg.StartTimeout = Duration(5 * time.Minute)
	var colds, recs []time.Duration
	for it := 0; it < b.N; it++ {
		stateDir, tempDir, storeDir, home := b.TempDir(), b.TempDir(), b.TempDir(), b.TempDir()
		newBackend := func() *local.Backend {
			lb, err := local.New(local.WithAgentBinary(agentBin), local.WithTempDir(tempDir), local.WithStateDir(stateDir), local.WithEnv("HOME="+home))
			if err != nil {
				b.Fatal(err)
			}
			return lb
		}
		b1, st1 := newBackend(), openBenchStore(b, storeDir, "")
		e1 := durableBenchEngine(b, b1, st1, cfg)
		var e2 *Engine
		handles := map[string]string{}
		finished := false
		// On a failure, stop what this iteration started: the sandboxes of
		// a durable owner would otherwise outlive the benchmark.
		b.Cleanup(func() {
			if finished {
				return
			}
			shutdown(b, e1) // no-op once detached
			if e2 != nil {
				shutdown(b, e2)
			}
			for _, id := range handles {
				if pid := agentPIDOfID(id); pid > 0 {
					_ = syscall.Kill(-pid, syscall.SIGKILL)
				}
			}
		})
		sids := make([]string, n)
		t0 := time.Now()
		startAll(b, ctx, n, func(i int) error {
			info, err := e1.CreateSession(ctx, SessionSpec{})
			if err == nil {
				sids[i] = info.ID
				err = e1.WaitReady(ctx, info.ID)
			}
			return err
		})
		cold := time.Since(t0)
		for _, sid := range sids {
			info, err := e1.Get(ctx, sid)
			if err != nil || info.Handle == nil {
				b.Fatalf("session %s: %+v %v", sid, info, err)
			}
			handles[sid] = info.Handle.ID
		}
		if err := e1.Detach(ctx); err != nil {
			b.Fatal(err)
		}
		st1.Close()
		b1.Close()
		alive := 0
		for _, id := range handles {
			if syscall.Kill(agentPIDOfID(id), 0) == nil {
				alive++
			}
		}
		if alive != n {
			b.Fatalf("after Detach %d of %d agents are alive", alive, n)
		}

		t1 := time.Now()
		b2, st2 := newBackend(), openBenchStore(b, storeDir, "")
		e2 = durableBenchEngine(b, b2, st2, cfg)
		rep, err := e2.Recover(ctx)
		if err != nil {
			b.Fatal(err)
		}
		startAll(b, ctx, len(rep.Sessions), func(i int) error { return e2.WaitReady(ctx, rep.Sessions[i]) })
		rec := time.Since(t1)

		same := 0
		for _, sid := range rep.Sessions {
			info, err := e2.Get(ctx, sid)
			if err == nil && info.Handle != nil && info.Handle.ID == handles[sid] {
				same++
			}
		}
		// The recovered sessions work.
		startAll(b, ctx, len(rep.Sessions), func(i int) error {
			_, obs, err := e2.Run(ctx, rep.Sessions[i], cmd("echo back"))
			if err == nil && obs.Type() != "run" {
				err = fmt.Errorf("observation %s", obs.Type())
			}
			return err
		})
		shutdown(b, e2)
		finished = true
		st2.Close()
		b2.Close()
		if len(rep.Sessions) != n || same != n {
			b.Errorf("recovered %d sessions, %d of them on their own sandbox; want %d", len(rep.Sessions), same, n)
		}
		colds, recs = append(colds, cold), append(recs, rec)
		b.ReportMetric(float64(same), "reattached_sessions")
	}
	b.ReportMetric(pct(recs, 0.5).Seconds()*1000, "recover_all_ready_ms")
	b.ReportMetric(pct(colds, 0.5).Seconds()*1000, "cold_start_all_ready_ms")
	b.ReportMetric(float64(pct(recs, 0.5))/float64(pct(colds, 0.5)), "ratio")
}

// startAll runs f(0..n-1) concurrently and fails b on the first error.
func startAll(b *testing.B, ctx context.Context, n int, f func(i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// agentPIDOfID is the agent pid a local sandbox id names.
func agentPIDOfID(id string) int {
	pid := 0
	for _, c := range id {
		if c < '0' || c > '9' {
			return -1
		}
		pid = pid*10 + int(c-'0')
	}
	return pid
}
