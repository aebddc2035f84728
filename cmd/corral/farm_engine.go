package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"corral/actors"
	"corral/runtimes"
	"corral/runtimes/docker"
	"corral/transport/agentwire"
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
	backends    []string // "local", "docker"
	maxSessions int
	image       string // docker default image
	logger      *slog.Logger
	// config, when set, is corral's configuration file ([engine] and
	// [runtime] sections); farm flags override it.
	config *serveConfig
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
	if s.image == "" {
		s.image = cfg.Runtime.Docker.Image
	}
	be := &benchEngine{backends: map[string]runtimes.Backend{}}
	reg := &runtimes.Registry{}
	for _, name := range s.backends {
		if _, dup := be.backends[name]; dup {
			continue
		}
		var b runtimes.Backend
		switch name {
		case "docker":
			opts := []docker.Option{docker.WithLogger(s.logger), docker.WithStartConcurrency(16)}
			if s.image != "" {
				opts = append(opts, docker.WithDefaultImage(s.image))
			}
			if cfg.Runtime.Docker.AgentBinary != "" {
				opts = append(opts, docker.WithAgentBinary(cfg.Runtime.Docker.AgentBinary))
			}
			db, err := docker.New(ctx, opts...)
			if err != nil {
				be.close()
				return nil, fmt.Errorf("docker runtime: %w", err)
			}
			be.closers = append(be.closers, db.Close)
			b = db
		case "local":
			lb, closeLocal, err := newLocalBackend(ctx, s.logger, cfg)
			if err != nil {
				be.close()
				return nil, fmt.Errorf("local runtime: %w", err)
			}
			if closeLocal != nil {
				be.closers = append(be.closers, closeLocal)
			}
			b = lb
		default:
			be.close()
			return nil, fmt.Errorf("unknown runtime %q: want local or docker", name)
		}
		if err := reg.Register(b); err != nil {
			be.close()
			return nil, err
		}
		be.backends[name] = b
	}
	if len(be.backends) == 0 {
		return nil, errors.New("no runtime given")
	}
	ecfg := cfg.Engine
	// The farm's (or benchmark's) concurrency is the admission limit.
	ecfg.MaxSessions = max(s.maxSessions, 1)
	ecfg.MaxQueued = max(s.maxSessions*2, 64)
	if s.config == nil {
		ecfg.MaxConcurrentStarts = 64
	}
	ecfg.DefaultRuntime = s.backends[0]
	ecfg.SkipGitConfig = true
	eng, err := actors.NewEngine(ecfg, reg, actors.WithLogger(s.logger),
		actors.WithDefaultDialer(func(ctx context.Context, h *runtimes.Handle) (actors.AgentConn, error) {
			return agentwire.Dial(ctx, h.AgentAddr, h.Token, agentwire.WithClientLogger(s.logger))
		}))
	if err != nil {
		be.close()
		return nil, fmt.Errorf("start engine: %w", err)
	}
	be.Engine = eng
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
