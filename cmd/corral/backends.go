package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"corral/actors"
	"corral/runtimes"
	"corral/runtimes/docker"
	"corral/runtimes/local"
	"corral/runtimes/remote"
	"corral/transport/agentwire"
)

// backendSet is the sandbox backends one command runs, built from the
// [runtime] configuration section.
type backendSet struct {
	reg     *runtimes.Registry
	opts    []actors.Option // per-runtime dialers and flags for the engine
	closers []func() error  // in start order
	docker  *docker.Backend // set when "docker" is enabled
}

// knownRuntimes are the names buildBackends understands.
const knownRuntimes = "local, cli, docker, remote"

// buildBackends starts the named backends. On error nothing is left running.
// grace is the agent reconnect grace period (0: agentwire's default).
func buildBackends(ctx context.Context, rc serveRuntimeConfig, names []string, grace time.Duration, logger *slog.Logger) (*backendSet, error) {
	bs := &backendSet{reg: &runtimes.Registry{}}
	for _, name := range names {
		var b runtimes.Backend
		switch name {
		case "local":
			opts := []local.Option{local.WithLogger(logger)}
			if p := rc.Local.AgentBinary; p != "" {
				opts = append(opts, local.WithAgentBinary(p))
			}
			if rc.Local.WarmPool > 0 {
				opts = append(opts, local.WithWarmPool(rc.Local.WarmPool))
			}
			if rc.Local.HostHome {
				opts = append(opts, local.WithHostHome())
			}
			lb, err := local.New(opts...)
			if err != nil {
				bs.close()
				return nil, fmt.Errorf("local runtime: %w", err)
			}
			bs.closers = append(bs.closers, lb.Close)
			// A local agent's death is seen at once by the backend (process
			// exit, Backend.Wait); a silent unix socket only means a starved
			// machine. So its connection tolerates long silences instead of
			// declaring a slow agent lost (seen with 1,000 sessions on 2
			// cores under the 3 s / 30 s defaults).
			bs.opts = append(bs.opts, actors.WithDialer("local", actors.AgentwireDialer(
				agentwire.WithClientLogger(logger),
				agentwire.WithClientHeartbeat(2*time.Second, 20*time.Second),
				agentwire.WithGracePeriod(max(grace, 2*time.Minute)))))
			b = lb
		case "cli":
			cb := local.NewInProcess(local.InProcessLogger(logger))
			bs.opts = append(bs.opts, actors.WithInProcessRuntime("cli"),
				actors.WithDialer("cli", func(ctx context.Context, h *runtimes.Handle) (actors.AgentConn, error) {
					c, err := cb.Dial(ctx, h)
					if err != nil {
						return nil, err
					}
					return c, nil
				}))
			b = cb
		case "docker":
			opts := []docker.Option{docker.WithLogger(logger)}
			if rc.Docker.Image != "" {
				opts = append(opts, docker.WithDefaultImage(rc.Docker.Image))
			}
			if rc.Docker.AgentBinary != "" {
				opts = append(opts, docker.WithAgentBinary(rc.Docker.AgentBinary))
			}
			if rc.Docker.StartConcurrency > 0 {
				opts = append(opts, docker.WithStartConcurrency(rc.Docker.StartConcurrency))
			}
			if rc.Docker.ReapOrphans {
				// At start no session is live yet: every container this
				// node labelled is left over from a crashed Corral.
				opts = append(opts, docker.WithReapOrphans(true), docker.WithLiveSessionIDs())
			}
			db, err := docker.New(ctx, opts...)
			if err != nil {
				bs.close()
				return nil, fmt.Errorf("docker runtime: %w", err)
			}
			bs.closers = append(bs.closers, db.Close)
			bs.docker = db
			b = db
		case "remote":
			rb, err := remote.New(rc.Remote, remote.WithLogger(logger))
			if err != nil {
				bs.close()
				return nil, err
			}
			bs.closers = append(bs.closers, rb.Close)
			bs.opts = append(bs.opts, actors.WithDialer("remote", func(ctx context.Context, h *runtimes.Handle) (actors.AgentConn, error) {
				opts := []agentwire.DialOption{agentwire.WithClientLogger(logger)}
				if grace > 0 {
					opts = append(opts, agentwire.WithGracePeriod(grace))
				}
				c, err := rb.Dial(ctx, h, opts...)
				if err != nil {
					return nil, err
				}
				return c, nil
			}))
			b = rb
		default:
			bs.close()
			return nil, fmt.Errorf("unknown runtime %q; known: %s", name, knownRuntimes)
		}
		if err := bs.reg.Register(b); err != nil {
			bs.close()
			return nil, err
		}
	}
	return bs, nil
}

// close stops the backends in reverse start order.
func (bs *backendSet) close() error {
	var errs []error
	for i := len(bs.closers) - 1; i >= 0; i-- {
		errs = append(errs, bs.closers[i]())
	}
	bs.closers = nil
	return errors.Join(errs...)
}
