package actors

import (
	"context"
	"errors"
	"fmt"

	actorpb "corral/actors/proto"
	"corral/runtimes"
)

// RecoveryReport says what Recover brought back.
type RecoveryReport struct {
	// Sessions are the sessions that were running when the previous
	// process on this store ended and are being started again (each
	// re-attaches to its sandbox when it survived, else gets a new one).
	Sessions []string
}

// Recover is OpenHands' attach_to_existing, done fully: it admits every
// session of the store that had not stopped (statuses follow on their
// streams; WaitReady waits for each). Call it once, right after NewEngine
// with a durable store, then Reap. In cluster mode (WithCluster) it
// recovers nothing and returns an empty report: the cluster hands each
// session to its owner through Adopt.
func (e *Engine) Recover(ctx context.Context) (RecoveryReport, error) {
	if e.cluster != nil {
		return RecoveryReport{}, nil
	}
	res, err := e.ask(ctx, e.manager, &recoverAll{})
	if err != nil {
		return RecoveryReport{}, err
	}
	return RecoveryReport{Sessions: res.(*recoverReply).sessions}, nil
}

// Reap destroys the sandboxes nobody will use again: this engine's own
// that no session of its store names (left by a crash during a start or a
// stop), and those of other owners that are gone (never those of a live
// owner or of another host; see runtimes.Reap). Any engine may call it at
// start; it then also cleans up after crashed `exec`, `farm` and `shell`
// processes. In cluster mode (WithCluster) it refuses (ErrNotSupported):
// the sandboxes this node's store names may be another node's now, and an
// owner that looks gone may be a live node's previous process.
func (e *Engine) Reap(ctx context.Context) ([]*runtimes.Handle, error) {
	if e.cluster != nil {
		return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED,
			Message: "Reap is refused in cluster mode: another node may own the sandboxes this node's store names, or have adopted those of a process that looks gone; do not call Reap on a cluster node"}
	}
	wanted, err := e.wantedSandboxes(ctx)
	if err != nil {
		return nil, err
	}
	return e.reap(ctx, wanted)
}

// wantedSandboxes are the sandbox ids this engine's sessions use or may use
// again: the current sandbox of every session it runs, and those kept
// alive by stopped sessions.
func (e *Engine) wantedSandboxes(ctx context.Context) (map[string]bool, error) {
	infos, err := e.List(ctx)
	if err != nil {
		return nil, err
	}
	wanted := map[string]bool{}
	for _, in := range infos {
		if in.Handle != nil {
			wanted[in.Handle.ID] = true
		}
	}
	res, err := e.ask(ctx, e.manager, &keptHandles{})
	if err != nil {
		return nil, err
	}
	for _, id := range res.(*keptHandlesReply).ids {
		wanted[id] = true
	}
	return wanted, nil
}

func (e *Engine) reap(ctx context.Context, wanted map[string]bool) ([]*runtimes.Handle, error) {
	var reaped []*runtimes.Handle
	var errs []error
	for _, name := range e.registry.Names() {
		b, err := e.registry.Get(name)
		if err != nil {
			continue
		}
		hs, err := runtimes.Reap(ctx, b, e.owner, func(h *runtimes.Handle) bool { return wanted[h.ID] }, e.logger)
		reaped = append(reaped, hs...)
		if err != nil {
			errs = append(errs, fmt.Errorf("reap %s sandboxes: %w", name, err))
		}
	}
	return reaped, errors.Join(errs...)
}
