package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"corral/eventbus"
	"corral/runtimes/sandbox"
	"corral/transport/agentwire"
)

// runAction is one layer's way to run an action and get its observation.
type runAction func(ctx context.Context, a *eventbus.Event) (*eventbus.Event, error)

// trueAction is the action every round trip runs: `true`, blocking.
func trueAction() *eventbus.Event {
	act, _ := eventbus.NewActionOf("run")
	act.(*eventbus.CmdRunAction).Command = "true"
	return eventbus.NewAction(eventbus.SourceAgent, act)
}

// measure runs n actions through run and returns their latencies; every
// observation must be a run observation with exit code 0.
func measure(ctx context.Context, n int, run runAction) (latencies, error) {
	lat := make(latencies, 0, n)
	for range n {
		t := time.Now()
		obs, err := run(ctx, trueAction())
		if err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t))
		o, ok := obs.Observation.(*eventbus.CmdOutputObservation)
		if !ok || o.Metadata.ExitCode != 0 {
			return lat, fmt.Errorf("`true` answered with %s %q", obs.Type(), obs.Content)
		}
	}
	return lat, nil
}

// bashBaseline is the latency of fork/exec of `bash -c true`.
func bashBaseline(ctx context.Context, n int) (latencies, error) {
	lat := make(latencies, 0, n)
	for range n {
		t := time.Now()
		if err := exec.CommandContext(ctx, "bash", "-c", "true").Run(); err != nil {
			return nil, fmt.Errorf("baseline bash -c true: %w", err)
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}

// benchRoundtrip measures one action's round trip at each layer that has
// landed: executor (PTY bash), agentwire (WebSocket over a unix socket),
// engine (actors, local runtime) and API (HTTP), against fork/exec.
func benchRoundtrip(ctx context.Context, o *benchOpts, emit func(figure)) error {
	n := max(o.iterations, 1)
	base, err := bashBaseline(ctx, n)
	if err != nil {
		return err
	}
	// settings: the event store's, for layers that have one ("" below the
	// engine, which stores nothing).
	report := func(layer, settings string, lat latencies) {
		emit(newFigure(layer+" round trip p50", lat.pct(50), "µs", "bash -c true p50", base.pct(50)).on(settings))
		emit(newFigure(layer+" round trip p99", lat.pct(99), "µs", "bash -c true p99", base.pct(99)).on(settings))
	}

	work := filepath.Join(o.dir, "roundtrip")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	x, err := sandbox.New(ctx, sandbox.WithWorkDir(work), sandbox.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	defer x.Close()
	lat, err := measure(ctx, n, func(ctx context.Context, a *eventbus.Event) (*eventbus.Event, error) {
		return x.Execute(ctx, a, nil), nil
	})
	if err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	report("executor", "", lat)

	cl, stop, err := serveAgentwire(ctx, x, filepath.Join(o.dir, "aw.sock"))
	if err != nil {
		return fmt.Errorf("agentwire: %w", err)
	}
	defer stop()
	lat, err = measure(ctx, n, func(ctx context.Context, a *eventbus.Event) (*eventbus.Event, error) {
		return cl.Execute(ctx, "", a, nil)
	})
	if err != nil {
		return fmt.Errorf("agentwire: %w", err)
	}
	report("agentwire", "", lat)

	return benchRoundtripUpper(ctx, o, n, report)
}

// serveAgentwire serves x over agentwire on a unix socket and dials it.
func serveAgentwire(ctx context.Context, x agentwire.Executor, sock string) (*agentwire.Client, func(), error) {
	const token = "bench-token"
	srv, err := agentwire.NewServer(x, token, agentwire.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	hs := &http.Server{Handler: srv.Handler()}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	cl, err := agentwire.Dial(ctx, "unix://"+sock, token, agentwire.WithClientLogger(slog.New(slog.DiscardHandler)))
	stop := func() {
		if cl != nil {
			cl.Close()
		}
		srv.Close()
		hs.Close()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Warn("bench: agentwire server", "err", err)
		}
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return cl, stop, nil
}
