package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/local"
)

// agentBin is the corral-agent built by TestMain for tests that run the
// local backend.
var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "corral-actors-test-")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "corral-agent")
	out, err := exec.Command("go", "build", "-o", agentBin, "../cmd/corral-agent").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic("building corral-agent: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return quietLogger()
}

// testConfig skips `git config --global` (it would change the host's
// ~/.gitconfig) and keeps restarts fast.
func testConfig() Config {
	c := DefaultConfig()
	c.SkipGitConfig = true
	c.RestartInitialBackoff = Duration(20 * time.Millisecond)
	c.DataDir = ""
	return c
}

// newCLIEngine returns an engine whose only runtime is the in-process one.
func newCLIEngine(t testing.TB, cfg Config, opts ...Option) *Engine {
	t.Helper()
	return newWrappedCLIEngine(t, cfg, nil, opts...)
}

// refusingBackend is a backend whose agents refuse every connection.
type refusingBackend struct{ runtimes.Backend }

func (refusingBackend) Connect(context.Context, *runtimes.Handle) (runtimes.AgentConn, error) {
	return nil, errors.New("agent refused the connection (test)")
}

// newWrappedCLIEngine is newCLIEngine with the in-process backend wrapped
// by wrap (nil: as is).
func newWrappedCLIEngine(t testing.TB, cfg Config, wrap func(runtimes.Backend) runtimes.Backend, opts ...Option) *Engine {
	t.Helper()
	var cli runtimes.Backend = local.NewInProcess(local.InProcessTempDir(t.TempDir()))
	if wrap != nil {
		cli = wrap(cli)
	}
	reg, err := runtimes.NewRegistry(cli)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultRuntime = "cli"
	// No SANDBOX_ENV_* of the host leak into test sandboxes (they would be
	// persisted to the real ~/.bashrc).
	opts = append([]Option{WithLogger(testLogger(t)), WithHostEnv([]string{})}, opts...)
	e, err := NewEngine(cfg, reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, e) })
	return e
}

// newLocalEngine returns an engine over the local (subprocess) backend.
func newLocalEngine(t testing.TB, cfg Config, bopts ...local.Option) (*Engine, *local.Backend) {
	t.Helper()
	// A HOME of its own: the host's ~/.bashrc may be slow (pyenv) and set-up
	// steps append to it.
	bopts = append([]local.Option{local.WithAgentBinary(agentBin), local.WithTempDir(t.TempDir()), local.WithEnv("HOME=" + t.TempDir())}, bopts...)
	b, err := local.New(bopts...)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := runtimes.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultRuntime = "local"
	e, err := NewEngine(cfg, reg, WithLogger(testLogger(t)), WithHostEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		shutdown(t, e)
		if err := b.Close(); err != nil {
			t.Errorf("closing the local backend: %v", err)
		}
	})
	return e, b
}

func shutdown(t testing.TB, e *Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Errorf("engine shutdown: %v", err)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startSession creates a session and waits for READY.
func startSession(t testing.TB, e *Engine, spec SessionSpec) string {
	t.Helper()
	ctx := ctxT(t)
	info, err := e.CreateSession(ctx, spec)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if err := e.WaitReady(ctx, info.ID); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	return info.ID
}

func runAction(src eventbus.Source, a eventbus.Action) *eventbus.Event {
	return eventbus.NewAction(src, a)
}

func cmd(c string) *eventbus.Event {
	return runAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: c, SecurityRisk: eventbus.RiskUnknown})
}

// history returns every stored event of a session.
func history(t testing.TB, e *Engine, sid string) []*eventbus.Event {
	t.Helper()
	items, err := e.History(ctxT(t), sid, 0)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	out := make([]*eventbus.Event, len(items))
	for i, it := range items {
		ev, err := it.Event()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = ev
	}
	return out
}

func describe(evs []*eventbus.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.Type())
		if st, ok := ev.Observation.(*eventbus.RuntimeStatusObservation); ok {
			b.WriteString("(" + st.Status + ")")
		}
		b.WriteString(" ")
	}
	return b.String()
}

// waitObservation waits for the observation answering action id, reading
// the session's stream (live while it runs, then its history).
func waitObservation(ctx context.Context, e *Engine, sid string, id int64) (*eventbus.Event, error) {
	match := func(it *eventbus.Item) (*eventbus.Event, error) {
		ev, err := it.Event()
		if err != nil || ev.IsAction() || ev.Cause == nil || *ev.Cause != id {
			return nil, err
		}
		return ev, nil
	}
	sub, err := e.Subscribe(ctx, sid, id+1)
	if err == nil {
		defer sub.Close()
		for it := range sub.C() {
			if ev, err := match(it); ev != nil || err != nil {
				return ev, err
			}
		}
	}
	items, err := e.History(ctx, sid, id+1)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if ev, err := match(it); ev != nil || err != nil {
			return ev, err
		}
	}
	return nil, fmt.Errorf("session %s ended before action %d was answered", sid, id)
}
