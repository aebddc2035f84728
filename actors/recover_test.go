package actors

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/local"
)

// durableEngine is an engine over the local backend b and a durable store
// in dir, as `corral serve` runs.
func durableEngine(t *testing.T, dir string, b runtimes.Backend, cfg Config) *Engine {
	t.Helper()
	scfg := eventbus.DefaultConfig()
	scfg.StoreDir = dir
	st, err := eventbus.OpenStore(scfg)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := runtimes.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultRuntime = b.Name()
	e, err := NewEngine(cfg, reg, WithStore(st), WithLogger(testLogger(t)), WithHostEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		shutdown(t, e)
		_ = st.Close()
	})
	return e
}

func localBackend(t *testing.T, stateDir string) *local.Backend {
	t.Helper()
	// Socket paths are limited to 107 bytes: not under t.TempDir(), whose
	// name carries the test's.
	tmp, err := os.MkdirTemp("", "crl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	b, err := local.New(local.WithAgentBinary(agentBin), local.WithTempDir(tmp), local.WithEnv("HOME="+t.TempDir()),
		local.WithStateDir(stateDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// detachAndReopen ends e without ending its sessions (as a crash does,
// but flushed) and closes its store so the next engine can take it.
func detachAndReopen(t *testing.T, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverReattachesAndCollectsTheInFlightResult(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	first := durableEngine(t, dir, localBackend(t, state), testConfig())
	sid := startSession(t, first, SessionSpec{})
	ctx := ctxT(t)
	if _, _, err := first.Run(ctx, sid, cmd("export KEPT=yes")); err != nil {
		t.Fatal(err)
	}
	inflight, err := first.Submit(ctx, sid, cmd("sleep 1; echo done-after-detach"))
	if err != nil {
		t.Fatal(err)
	}
	queued, err := first.Submit(ctx, sid, cmd("echo queued-$KEPT"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the agent has started it
	detachAndReopen(t, first)

	second := durableEngine(t, dir, localBackend(t, state), testConfig())
	rep, err := second.Recover(ctx)
	if err != nil || len(rep.Sessions) != 1 || rep.Sessions[0] != sid {
		t.Fatalf("Recover = %+v, %v; want session %s", rep, err, sid)
	}
	obs, err := waitObservation(ctx, second, sid, inflight)
	if err != nil || !strings.Contains(obs.Content, "done-after-detach") {
		t.Fatalf("in-flight action answered with %v (%v), want its real output", obs, err)
	}
	if obs, err := waitObservation(ctx, second, sid, queued); err != nil || !strings.Contains(obs.Content, "queued-yes") {
		t.Fatalf("queued action answered with %v (%v), want it run in the same shell", obs, err)
	}
	runs := 0
	for _, ev := range history(t, second, sid) {
		if !ev.IsAction() && ev.Cause != nil && *ev.Cause == inflight {
			runs++
		}
	}
	if runs != 1 {
		t.Fatalf("the in-flight action has %d observations, want exactly 1", runs)
	}
}

func TestRecoverAnswersTheInFlightActionWhenTheSandboxIsGone(t *testing.T) {
	for _, mode := range []string{LostSandboxRestart, LostSandboxStop} {
		t.Run(mode, func(t *testing.T) {
			dir, state := t.TempDir(), t.TempDir()
			b := localBackend(t, state)
			first := durableEngine(t, dir, b, testConfig())
			sid := startSession(t, first, SessionSpec{})
			ctx := ctxT(t)
			info, err := first.Get(ctx, sid)
			if err != nil || info.Handle == nil {
				t.Fatalf("Get = %+v, %v", info, err)
			}
			inflight, err := first.Submit(ctx, sid, cmd("sleep 30"))
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			detachAndReopen(t, first)
			// The sandbox is removed by hand while no engine runs.
			if err := b.Destroy(ctx, info.Handle); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig()
			cfg.OnLostSandbox = mode
			second := durableEngine(t, dir, localBackend(t, state), cfg)
			if _, err := second.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			obs, err := waitObservation(ctx, second, sid, inflight)
			if err != nil {
				t.Fatalf("%v; events: %s", err, describeAll(history(t, second, sid)))
			}
			if e, ok := obs.Observation.(*eventbus.ErrorObservation); !ok || e.ErrorID != ErrIDSandboxLost {
				t.Fatalf("in-flight action answered with %s %q, want an error %s", obs.Type(), obs.Content, ErrIDSandboxLost)
			}
			if mode == LostSandboxStop {
				waitFor(t, func() bool { i, err := second.Get(ctx, sid); return err == nil && i.State == StateStopped })
				if _, err := second.Start(ctx, sid); err != nil {
					t.Fatalf("Start after on_lost_sandbox=stop: %v", err)
				}
			}
			if err := second.WaitReady(ctx, sid); err != nil {
				t.Fatal(err)
			}
			if _, obs, err := second.Run(ctx, sid, cmd("echo fresh")); err != nil || !strings.Contains(obs.Content, "fresh") {
				t.Fatalf("after the lost sandbox: %v %v", obs, err)
			}
		})
	}
}

func TestWaitReadyNeverSeesAnEarlierRunsReady(t *testing.T) {
	dir := t.TempDir()
	e := durableEngine(t, dir, local.NewInProcess(local.InProcessTempDir(t.TempDir())), testConfig())
	sid := startSession(t, e, SessionSpec{})
	ctx := ctxT(t)
	if _, err := e.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitReady(ctx, sid); err == nil {
		t.Fatal("WaitReady of a stopped session succeeded (an old READY counted)")
	}
	before := len(history(t, e, sid))
	if _, err := e.Start(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitReady(ctx, sid); err != nil {
		t.Fatal(err)
	}
	id, obs, err := e.Run(ctx, sid, cmd("echo again"))
	if err != nil || !strings.Contains(obs.Content, "again") {
		t.Fatalf("after Start: %v %v", obs, err)
	}
	if id < int64(before) {
		t.Fatalf("action id %d after restart, want ids continuing from %d", id, before)
	}
}

func describeAll(evs []*eventbus.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.Type() + "(" + ev.Content + ") ")
	}
	return b.String()
}

func TestAStoppedSessionKeepsItsTimesAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	first := durableEngine(t, dir, local.NewInProcess(local.InProcessTempDir(t.TempDir())), testConfig())
	sid := startSession(t, first, SessionSpec{Image: "img:1"})
	ctx := ctxT(t)
	time.Sleep(20 * time.Millisecond) // activity later than creation, at ms resolution
	if _, _, err := first.Run(ctx, sid, cmd("true")); err != nil {
		t.Fatal(err)
	}
	before, err := first.Stop(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	detachAndReopen(t, first)

	second := durableEngine(t, dir, local.NewInProcess(local.InProcessTempDir(t.TempDir())), testConfig())
	got, err := second.Get(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateStopped || got.Runtime != "cli" || got.Image != "img:1" || !got.Created.Equal(before.Created) {
		t.Fatalf("after a restart: %+v, want STOPPED cli img:1 created %v", got, before.Created)
	}
	if !got.LastActivity.After(got.Created) {
		t.Fatalf("last activity %v is not after creation %v", got.LastActivity, got.Created)
	}
}
