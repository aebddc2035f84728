package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"corral/actors"
	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/docker"
	"corral/runtimes/kubernetes"
)

// benchEngine is an actors engine with the backends a farm or benchmark
// asked for. Close stops every session, the engine and the backends.
type benchEngine struct {
	*actors.Engine
	backends map[string]runtimes.Backend
	closers  []func() error
}

// engineSettings size the engine for the work at hand.
type engineSettings struct {
	backends    []string // "local", "docker", "kubernetes"
	maxSessions int
	image       string // default image of docker and kubernetes
	logger      *slog.Logger
	// config, when set, is corral's configuration file ([engine] and
	// [runtime] sections); farm flags override it.
	config *serveConfig
	// store, when set, is the engine's event store (benchmarks pass one on
	// the default settings); else the engine keeps a temporary one.
	store *eventbus.Store
}

// newBenchEngine starts an engine for farms and benchmarks (not the server:
// it has no durable store; the farm keeps its own event logs).
func newBenchEngine(ctx context.Context, s engineSettings) (*benchEngine, error) {
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	cfg := defaultServeConfig()
	if s.config != nil {
		cfg = *s.config
	}
	var names []string
	for _, n := range s.backends {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, errors.New("no runtime given")
	}
	rc := cfg.Runtime.Clone()
	if dc, ok := rc.Backends["docker"].(*docker.Config); ok {
		if s.image != "" {
			dc.Image = s.image
		}
		if dc.StartConcurrency == 0 {
			dc.StartConcurrency = 16 // farms start many sandboxes at once
		}
	}
	if kc, ok := rc.Backends["kubernetes"].(*kubernetes.Config); ok && s.image != "" {
		kc.Image = s.image
	}
	// Leftover sandboxes are reaped once the engine runs, only those whose
	// owner is gone.
	bs, err := buildBackends(ctx, rc, names, cfg.Engine.AgentGracePeriod.D(), runtimes.Owner{}, s.logger)
	if err != nil {
		return nil, err
	}
	be := &benchEngine{backends: map[string]runtimes.Backend{}, closers: []func() error{bs.close}}
	for _, n := range names {
		b, err := bs.reg.Get(n)
		if err != nil {
			be.close()
			return nil, err
		}
		be.backends[n] = b
	}
	ecfg := cfg.Engine
	// The farm's (or benchmark's) concurrency is the admission limit.
	ecfg.MaxSessions = max(s.maxSessions, 1)
	ecfg.MaxQueued = max(s.maxSessions*2, 64)
	if s.config == nil {
		ecfg.MaxConcurrentStarts = 64
	}
	ecfg.DefaultRuntime = names[0]
	ecfg.SkipGitConfig = true
	opts := []actors.Option{actors.WithLogger(s.logger), actors.WithDefaultMCP(cfg.MCP)}
	if s.store != nil {
		opts = append(opts, actors.WithStore(s.store))
	}
	eng, err := actors.NewEngine(ecfg, bs.reg, opts...)
	if err != nil {
		be.close()
		return nil, fmt.Errorf("start engine: %w", err)
	}
	be.Engine = eng
	reapLeftovers(ctx, eng, s.logger)
	return be, nil
}

func (be *benchEngine) close() error {
	var err error
	for i := len(be.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, be.closers[i]())
	}
	return err
}

// Close shuts the engine down (stopping every session) and closes the
// backends; ctx bounds the wait.
func (be *benchEngine) Close(ctx context.Context) error {
	var err error
	if be.Engine != nil {
		err = be.Engine.Shutdown(ctx)
	}
	return errors.Join(err, be.close())
}

// splitList splits "a,b" into trimmed non-empty parts.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
