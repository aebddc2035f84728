package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxAdoptBackoff caps the pause between two Adopt attempts.
const maxAdoptBackoff = 30 * time.Second

// adoptWithRetry runs Adopt for sid on this node, retrying a failure with
// backoff (the session stays claimed by this member meanwhile: a sandbox
// start or the replica may be briefly unavailable). After the last failed
// attempt the claim is handed to another live member (handOff) so the
// session does not stay with a member that cannot run it. It returns the
// last Adopt error (nil on success).
func (n *Node) adoptWithRetry(sid string) error {
	backoff := n.opts.adoptBackoff
	start := time.Now()
	var err error
	for attempt := 1; attempt <= n.opts.adoptAttempts; attempt++ {
		if err = n.ad.Adopt(n.ctx, sid); err == nil {
			n.log.Info("session adopted", "sid", sid, "attempt", attempt, "took", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if n.ctx.Err() != nil {
			return err // shutting down: the next owner adopts it
		}
		if attempt == n.opts.adoptAttempts {
			break
		}
		n.log.Warn("adopting a session failed; retrying", "sid", sid, "attempt", attempt, "of", n.opts.adoptAttempts, "retry_in", backoff, "err", err)
		if pause(n.ctx, backoff) != nil {
			return err
		}
		backoff = min(2*backoff, maxAdoptBackoff)
	}
	n.handOff(sid, err)
	return err
}

// handOff moves the claim of sid, held by this member and adopted in vain,
// to another live member (which activates it), by compare-and-set.
func (n *Node) handOff(sid string, cause error) {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	for {
		e, err := n.kv.Get(ctx, key(sid))
		if err != nil {
			n.log.Error("adopting a session failed and its claim could not be read to hand it over", "sid", sid, "adopt_err", cause, "err", err)
			return
		}
		rec, err := decodeEntry(e)
		if err != nil || rec.Member != n.mem().sys.ID {
			return // not this member's any more (or not a record): nothing to hand over
		}
		m, err := n.claim(ctx, rec.rev, rec.owner, n.cfg.NodeID, false)
		switch {
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue
		case err != nil:
			n.log.Error("adopting a session failed on every attempt and no other member can take it; it stays claimed by this node",
				"sid", sid, "attempts", n.opts.adoptAttempts, "adopt_err", cause, "err", err)
		default:
			n.log.Warn("adopting a session failed on every attempt; its claim goes to another member",
				"sid", sid, "attempts", n.opts.adoptAttempts, "to", m.ID, "adopt_err", cause)
		}
		return
	}
}
