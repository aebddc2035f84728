package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// failoverLoop re-claims the sessions of dead owners: at once when the
// topology changes (onEvent kicks it), and every sweep interval in case an
// event was missed (or arrived before this node could judge the member dead).
func (n *Node) failoverLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.opts.sweep)
	defer t.Stop()
	var soon <-chan time.Time // before the next tick: a claim failed, or an owner comes due
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.kick:
		case <-t.C:
		case <-soon:
		}
		soon = nil
		ok := n.reclaimDead() // also starts the clock of owners newly found absent
		wait, due := n.absent.nextDue(n.cfg.FailureTimeout)
		if !ok && (!due || reclaimRetry < wait) {
			wait, due = reclaimRetry, true
		}
		if due && wait < n.opts.sweep {
			soon = time.After(wait + dueSlack)
		}
	}
}

// dueSlack is added to the moment an absent owner comes due: surelyDead
// wants it absent for longer than FailureTimeout, not exactly as long.
const dueSlack = 10 * time.Millisecond

// reclaimRetry is how soon a sweep whose claim failed runs again. A claim
// fails while the placement bucket's stream has no leader (its leader died
// with the member whose sessions are being claimed; the next one is elected
// within seconds), and every moment after that election the session is
// without an owner.
const reclaimRetry = 200 * time.Millisecond

// reclaimDead claims every session whose owner member is surely dead (a
// restarted node's old member id included: its entries name a member id no
// longer alive). Every survivor does this; the bucket's compare-and-set lets
// one win per session, and the winner activates it on the chosen member.
// The mirror only nominates candidates: each is read again from the bucket
// and judged on the current record and the current topology, and claimed
// with that record's revision.
//
// It reports false when a claim failed for a reason other than want of a
// member (the bucket unavailable, most likely), so the loop tries again
// soon rather than at the next sweep.
func (n *Node) reclaimDead() (ok bool) {
	cands := n.mirror.all(func(e entry) bool { return !n.view.isAlive(e.Member) })
	n.absent.prune(func(id string) bool {
		return slices.ContainsFunc(cands, func(e entry) bool { return e.Member == id })
	})
	ok = true
	for _, c := range cands {
		if n.ctx.Err() != nil {
			return true
		}
		err := n.reclaimOne(c.SID)
		switch {
		case err == nil, errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			// claimed, or another survivor won this one
		case errors.Is(err, ErrNoMember), errors.Is(err, ErrFull):
			n.log.Warn("a dead member's session has nowhere to go yet", "sid", c.SID, "err", err)
			return true
		case bucketUnavailable(err):
			// No leader for the placement bucket (it died with the member,
			// most likely): every other claim would wait out the same
			// refusal, one after the other. Try again soon instead.
			n.log.Warn("re-claiming a dead member's sessions waits for the placement bucket", "sid", c.SID, "err", err)
			return false
		default:
			n.log.Warn("re-claiming a dead member's session failed", "sid", c.SID, "err", err)
			ok = false
		}
	}
	return ok
}

// bucketUnavailable reports a claim refused because the placement bucket's
// stream did not answer (no leader, or no quorum), not because of the
// session's own record.
func bucketUnavailable(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// reclaimOne claims sid when its current owner member is surely dead.
func (n *Node) reclaimOne(sid string) error {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	e, err := n.kv.Get(ctx, key(sid))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // forgotten
	}
	if err != nil {
		return fmt.Errorf("cluster: reading the owner of session %s: %w", sid, err)
	}
	cur, err := decodeEntry(e)
	if err != nil {
		return err
	}
	if !n.surelyDead(cur.Member) {
		return nil
	}
	// How long the owner has been known dead here: with the claim's own
	// log line, what a slow failover spent on detection.
	n.log.Info("re-claiming the session of a dead member", "sid", sid, "member", cur.Member, "node", cur.Node,
		"absent_for", n.absent.since(cur.Member).Round(time.Millisecond))
	if _, err := n.claim(n.ctx, cur.rev, cur.owner, "", false); err != nil {
		return err
	}
	n.failedOver("member_dead")
	return nil
}

// Drain moves node nodeID's sessions to other live members: each is
// released on its owner, claimed for the least-loaded other member and
// adopted there. New sessions are no longer placed on nodeID.
func (n *Node) Drain(ctx context.Context, nodeID string) error {
	if nodeID == "" {
		return errors.New("cluster: Drain needs a node id")
	}
	if nodeID == n.cfg.NodeID {
		n.draining.Store(true)
		n.publishState(true)
	} else if m, ok := n.memberOfNode(nodeID); ok {
		// marked by member id: the node restarted is a new member and
		// takes sessions again
		n.view.setDraining(m.memberID)
		if err := n.tell(ctx, m.Address, opDraining, ""); err != nil {
			n.log.Warn("telling a node it is drained failed; it may still get new sessions from other members", "node", nodeID, "err", err)
		}
	}
	owned := n.mirror.all(func(e entry) bool { return e.Node == nodeID })
	var errs []error
	for i, e := range owned {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("%d sessions not moved: %w", len(owned)-i, ctx.Err()))
			break
		}
		err := n.moveOne(ctx, e.SID, nodeID)
		if errors.Is(err, ErrNoMember) || errors.Is(err, ErrFull) {
			errs = append(errs, fmt.Errorf("%d sessions not moved: %w", len(owned)-i, err))
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", e.SID, err))
		}
	}
	return errors.Join(errs...)
}

// moveOne releases sid on its owner (if alive) and claims it elsewhere.
func (n *Node) moveOne(ctx context.Context, sid, nodeID string) error {
	for {
		e, err := n.kv.Get(ctx, key(sid))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil // forgotten meanwhile
		}
		if err != nil {
			return fmt.Errorf("cluster: reading the owner of session %s: %w", sid, err)
		}
		var rec entry
		if rec, err = decodeEntry(e); err != nil {
			return err
		}
		if rec.Node != nodeID {
			return nil // moved meanwhile
		}
		if _, err := n.choose(sid, nodeID); err != nil {
			return err // nowhere to go: keep it where it is
		}
		if addr, ok := n.view.address(rec.Member); ok {
			if err := n.tell(ctx, addr, opRelease, sid); err != nil {
				return fmt.Errorf("cluster: node %s releasing session %s: %w", nodeID, sid, err)
			}
		}
		_, err = n.claim(ctx, rec.rev, rec.owner, nodeID, true)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err == nil {
			n.failedOver("drain")
		}
		return err
	}
}

func (n *Node) memberOfNode(nodeID string) (viewMember, bool) {
	for _, m := range n.view.alive() {
		if m.ID == nodeID {
			return m, true
		}
	}
	return viewMember{}, false
}
