package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"corral/runtimes"
	"corral/runtimes/docker"
	"corral/runtimes/kubernetes"
	"corral/runtimes/local"
	"corral/runtimes/remote"
)

// runtimeFactories are the kinds of sandbox backend corral knows, each
// decoding its own [runtime.<name>] section.
func runtimeFactories() *runtimes.Factories {
	return runtimes.NewFactories(local.Factory(), local.InProcessFactory(), docker.Factory(), kubernetes.Factory(), remote.Factory())
}

// backendSet is the sandbox backends one command runs, built from the
// [runtime] configuration section.
type backendSet struct {
	reg     *runtimes.Registry
	closers []func() error      // in start order
	docker  *docker.Backend     // set when "docker" is enabled
	kube    *kubernetes.Backend // set when "kubernetes" is enabled
	// reapOrphans is true when an enabled backend's section asks for the
	// sandboxes left by a Corral that died to be reaped at start
	// (reap_orphans). Building a backend never reaps: whether to is the
	// caller's decision (only `corral serve` owns this node's leftovers,
	// and not with keep_runtime_alive).
	reapOrphans bool
	// reapRefused is true when an enabled backend's section sets
	// reap_orphans = false ([runtime.docker], [runtime.kubernetes]): the
	// server then reaps nothing at start.
	reapRefused bool
}

// buildBackends starts the named backends, each from its section of rc.
// On error nothing is left running; an unknown name is a
// *runtimes.UnknownRuntimeError listing the known ones. grace is the
// agent reconnect grace period (0: the transport's default); owner, when
// known, is recorded on sandboxes started before any session (warm pools).
func buildBackends(ctx context.Context, rc runtimes.Config, names []string, grace time.Duration, owner runtimes.Owner, logger *slog.Logger) (*backendSet, error) {
	fs := runtimeFactories()
	env := runtimes.Env{Logger: logger, AgentGracePeriod: grace, Owner: owner}
	bs := &backendSet{reg: &runtimes.Registry{}, reapOrphans: len(rc.ReapOrphans(names)) > 0, reapRefused: reapRefused(rc, names)}
	for _, name := range names {
		b, err := fs.New(ctx, name, rc, env)
		if err != nil {
			bs.close()
			return nil, err
		}
		if c, ok := b.(interface{ Close() error }); ok {
			bs.closers = append(bs.closers, c.Close)
		}
		switch tb := b.(type) {
		case *docker.Backend:
			bs.docker = tb
		case *kubernetes.Backend:
			bs.kube = tb
		}
		if err := bs.reg.Register(b); err != nil {
			bs.close()
			return nil, fmt.Errorf("runtime %s: %w", name, err)
		}
	}
	return bs, nil
}

// reapRefused reports whether one of the named backends has a
// reap_orphans key set to false.
func reapRefused(rc runtimes.Config, names []string) bool {
	for _, n := range names {
		if r, ok := rc.Backends[n].(runtimes.OrphanReaping); ok && !r.ReapOrphansAtStart() {
			return true
		}
	}
	return false
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
