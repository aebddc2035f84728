package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const bucketName = "corral_owners"

// owner is a placement record: the bucket's value for a session.
type owner struct {
	SID    string `json:"sid"`
	Node   string `json:"node"`   // node id
	Member string `json:"member"` // protoactor member id (one process start of that node)
	Epoch  int64  `json:"epoch"`  // +1 on every change of owner
}

var plainKey = regexp.MustCompile(`^[-_=a-zA-Z0-9]+$`)

// key is the bucket key of a session id: the id itself when it is a valid
// key, else "b64_" + its base64url (ids starting with "b64_" are encoded too,
// so two ids never share a key).
func key(sid string) string {
	if plainKey.MatchString(sid) && !strings.HasPrefix(sid, "b64_") {
		return sid
	}
	return "b64_" + base64.RawURLEncoding.EncodeToString([]byte(sid))
}

// openBucket creates or opens the placement bucket. With replicas > 1 the
// JetStream cluster may not have its peers yet: retried until JoinTimeout.
func (n *Node) openBucket(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("cluster: JetStream on %s: %w", nc.ConnectedUrl(), err)
	}
	r := n.opts.replicas
	if r <= 0 {
		r = min(3, len(n.otherJoins())+1)
	}
	deadline := time.Now().Add(n.cfg.JoinTimeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		kv, err := js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{Bucket: bucketName, Replicas: r, History: 1,
			Description: "Corral: session id -> owning node (sticky placement, claimed by compare-and-set)"})
		cancel()
		if err == nil {
			n.kv = kv
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster: opening the placement bucket %s with %d replicas on JetStream at %s failed within %s: %w "+
				"(replicas need that many JetStream servers routed together; set [cluster] replicas)", bucketName, r, nc.ConnectedUrl(), n.cfg.JoinTimeout, err)
		}
		n.log.Info("placement bucket not ready yet; retrying", "err", err)
		if err := pause(ctx, 500*time.Millisecond); err != nil {
			return fmt.Errorf("cluster: opening the placement bucket was cancelled: %w", err)
		}
	}
}

// Place picks and claims the owner of a new session: the least-loaded live
// member with capacity. An already placed session keeps its owner.
func (n *Node) Place(ctx context.Context, sid string) (Member, error) {
	if sid == "" {
		return Member{}, errors.New("cluster: Place needs a session id")
	}
	if err := n.waitInTouch(ctx); err != nil {
		return Member{}, err
	}
	target, err := n.choose(sid, "")
	if err != nil {
		return Member{}, err
	}
	rec := owner{SID: sid, Node: target.ID, Member: target.memberID, Epoch: 1}
	rev, err := createClaim(ctx, n.kv, rec)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return n.Owner(ctx, sid)
		}
		return Member{}, fmt.Errorf("cluster: claiming session %s for node %s: %w", sid, target.ID, err)
	}
	n.mirror.put(rec, rev)
	n.pending.add(target.memberID)
	n.claims.Add(1)
	return n.asMember(target), nil
}

// gossipWait bounds how long Owner waits for a live owner's gossip state
// (its API URL) to reach this node: a member that just joined or rejoined
// is in the topology a moment before its state.
const gossipWait = 10 * time.Second

// Owner returns the owner of existing session sid, with its API URL (or
// Self). When its owner is not alive, the session is claimed for the
// least-loaded live member and activated there (Adopt) before Owner returns.
func (n *Node) Owner(ctx context.Context, sid string) (Member, error) {
	if err := n.waitInTouch(ctx); err != nil {
		return Member{}, err
	}
	if e, ok := n.mirror.get(sid); ok {
		if m, ok := n.liveOwner(e.owner); ok && routable(m) {
			return m, nil
		}
	}
	var noAPI time.Time // since when the live owner's API URL has been unknown here
	for {
		e, err := n.kv.Get(ctx, key(sid))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Member{}, fmt.Errorf("session %s: %w", sid, ErrNoSession)
		}
		if err != nil {
			return Member{}, fmt.Errorf("cluster: reading the owner of session %s: %w", sid, err)
		}
		var rec owner
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return Member{}, fmt.Errorf("cluster: the placement record of session %s is not JSON: %w", sid, err)
		}
		m, alive := n.liveOwner(rec)
		switch {
		case alive && routable(m):
			return m, nil
		case alive && noAPI.IsZero():
			noAPI = time.Now()
		case alive && time.Since(noAPI) > gossipWait:
			return Member{}, fmt.Errorf("cluster: session %s is owned by node %s (member %s), whose API URL has not reached this node in %v: its gossip is not getting through; retry, and check the cluster ports between the two", sid, rec.Node, rec.Member, gossipWait)
		}
		if alive || !n.surelyDead(rec.Member) {
			if err := pause(ctx, 200*time.Millisecond); err != nil {
				return Member{}, fmt.Errorf("cluster: waiting for the owner of session %s (member %s of node %s) to appear: %w", sid, rec.Member, rec.Node, err)
			}
			continue
		}
		m, err = n.claim(ctx, e.Revision(), rec, "", true)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // another member claimed it first: read the winner
		}
		if m.ID != "" {
			n.failedOver("member_dead") // claimed (its activation may have failed)
		}
		return m, err
	}
}

// liveOwner is the member named by rec when it is alive.
func (n *Node) liveOwner(rec owner) (Member, bool) {
	if !n.view.isAlive(rec.Member) {
		return Member{}, false
	}
	if m, ok := n.view.member(rec.Member); ok {
		return n.asMember(m), true
	}
	// alive, gossip not arrived yet: what the record and topology say
	addr, _ := n.view.address(rec.Member)
	return Member{ID: rec.Node, Address: addr, Status: "alive", Self: rec.Member == n.mem().sys.ID}, true
}

// routable: requests for a session owned by m can reach it (it is this
// node, or its API URL is known).
func routable(m Member) bool { return m.Self || m.API != "" }

func (n *Node) asMember(m viewMember) Member {
	out := m.Member
	out.Self = m.memberID == n.mem().sys.ID
	return out
}

// surelyDead: the member is not in the topology, and this node has been up
// long enough to have seen every live member (a node that just started must
// not take sessions from members its provider has not polled yet).
//
// The topology alone is not enough: protoactor never takes back a member id
// it blocked, and blocks one on a single missed health poll (a busy machine),
// so a live member can be missing from this member's topology for good.
// With the automanaged provider the member's health endpoint is asked now;
// one that answers with that member id is alive. And the member must have
// been found absent for FailureTimeout: a rejoining node's records name its
// new member id a moment before that member answers anywhere.
func (n *Node) surelyDead(memberID string) bool {
	if n.view.isAlive(memberID) || time.Since(n.mem().started) <= n.cfg.FailureTimeout {
		n.absent.forget(memberID)
		return false
	}
	if n.cfg.Provider == "automanaged" && n.health.alive(n.otherJoins(), n.cfg.Name)[memberID] {
		n.absent.forget(memberID)
		return false
	}
	return n.absent.since(memberID) > n.cfg.FailureTimeout
}

// absence remembers since when each member id has been found absent.
type absence struct {
	mu sync.Mutex
	at map[string]time.Time
}

// since is how long memberID has been absent (0 the first time it is asked).
func (a *absence) since(memberID string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil {
		a.at = map[string]time.Time{}
	}
	t, ok := a.at[memberID]
	if !ok {
		a.at[memberID] = time.Now()
		return 0
	}
	return time.Since(t)
}

func (a *absence) forget(memberID string) {
	a.mu.Lock()
	delete(a.at, memberID)
	a.mu.Unlock()
}

// nextDue is how long until the next member id in the list has been absent
// for longer than timeout (false: none is still to come due), so the
// failover loop looks again right then rather than at its next sweep.
func (a *absence) nextDue(timeout time.Duration) (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var next time.Duration
	found := false
	for _, t := range a.at {
		if d := time.Until(t.Add(timeout)); d >= 0 && (!found || d < next) {
			next, found = d, true
		}
	}
	return next, found
}

// prune drops member ids no longer asked about (their records moved on).
func (a *absence) prune(keep func(string) bool) {
	a.mu.Lock()
	for id := range a.at {
		if !keep(id) {
			delete(a.at, id)
		}
	}
	a.mu.Unlock()
}

// claim moves session rec.SID (bucket revision rev) to the least-loaded live
// member other than node exclude, by compare-and-set, and activates it
// there: synchronously when wait, else in the background. A lost race
// returns an error wrapping jetstream.ErrKeyRevisionMismatch.
func (n *Node) claim(ctx context.Context, rev uint64, rec owner, exclude string, wait bool) (Member, error) {
	target, err := n.choose(rec.SID, exclude)
	if err != nil {
		return Member{}, err
	}
	if n.isMine(rec.Member) && !n.isMine(target.memberID) {
		n.released.Store(rec.SID, true) // this node moves its own session: not a takeover
	}
	next, newRev, err := updateClaim(ctx, n.kv, rev, rec, target.ID, target.memberID)
	if err != nil {
		return Member{}, fmt.Errorf("cluster: claiming session %s for node %s: %w", rec.SID, target.ID, err)
	}
	n.mirror.put(next, newRev)
	n.pending.add(target.memberID)
	n.claims.Add(1)
	n.log.Info("session claimed", "sid", rec.SID, "from", rec.Node, "to", target.ID, "epoch", next.Epoch)
	if !wait {
		n.goAsync(func() {
			actx, cancel := context.WithTimeout(n.ctx, activateTimeout)
			defer cancel()
			if err := n.activate(actx, target, rec.SID); err != nil {
				n.log.Error("activating a claimed session failed", "sid", rec.SID, "node", target.ID, "err", err)
			}
		})
		return n.asMember(target), nil
	}
	if err := n.activate(ctx, target, rec.SID); err != nil {
		return n.asMember(target), err
	}
	return n.asMember(target), nil
}

// choose picks the least-loaded live member with room, other than node
// exclude and draining members (see pick). Load = gossiped session count +
// claims this node made that gossip does not show yet; this node's own
// count comes from its engine.
func (n *Node) choose(sid, exclude string) (viewMember, error) {
	self := n.mem().sys.ID
	return pick(n.view.alive(), sid, exclude, n.cfg.NodeID, self, func(m viewMember) int {
		if m.memberID == self {
			return n.ad.SessionCount() + n.pending.count(m.memberID)
		}
		return m.Sessions + n.pending.count(m.memberID)
	})
}

// pick is the placement choice: among ms, leave out node exclude, draining
// members and an older member of this node (selfNode under a member id that
// is not selfMember); of the rest with room (capacity 0 = unlimited), the
// least loaded wins. Ties go to the member ranked first for sid
// (rendezvous), so concurrent placers spread too. ErrFull when some member
// was left out only for lack of room, else ErrNoMember.
func pick(ms []viewMember, sid, exclude, selfNode, selfMember string, load func(viewMember) int) (viewMember, error) {
	var best viewMember
	bestLoad, found, full := 0, false, false
	for _, m := range ms {
		if m.ID == exclude || m.draining || (m.ID == selfNode && m.memberID != selfMember) {
			continue
		}
		l := load(m)
		if m.capacity > 0 && l >= m.capacity {
			full = true
			continue
		}
		if !found || l < bestLoad || (l == bestLoad && rank(sid, m.memberID) < rank(sid, best.memberID)) {
			best, bestLoad, found = m, l, true
		}
	}
	switch {
	case found:
		return best, nil
	case full:
		return viewMember{}, ErrFull
	default:
		return viewMember{}, ErrNoMember
	}
}

func rank(sid, member string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(sid))
	h.Write([]byte{0})
	h.Write([]byte(member))
	return h.Sum64()
}

// createClaim stores the first placement record of a session (epoch 1);
// it fails wrapping jetstream.ErrKeyExists when the session is placed already.
func createClaim(ctx context.Context, kv jetstream.KeyValue, rec owner) (uint64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("cluster: encoding the placement of session %s: %w", rec.SID, err)
	}
	return kv.Create(ctx, key(rec.SID), b)
}

// updateClaim moves session prev.SID to member of node, with epoch+1, if
// its record is still at revision rev (compare-and-set); a lost race fails
// wrapping jetstream.ErrKeyRevisionMismatch.
func updateClaim(ctx context.Context, kv jetstream.KeyValue, rev uint64, prev owner, node, member string) (owner, uint64, error) {
	next := owner{SID: prev.SID, Node: node, Member: member, Epoch: prev.Epoch + 1}
	b, err := json.Marshal(next)
	if err != nil {
		return owner{}, 0, fmt.Errorf("cluster: encoding the placement of session %s: %w", prev.SID, err)
	}
	newRev, err := kv.Update(ctx, key(prev.SID), b, rev)
	return next, newRev, err
}

// Forget drops a deleted session's placement.
func (n *Node) Forget(ctx context.Context, sid string) error {
	if err := n.kv.Delete(ctx, key(sid)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("cluster: forgetting the placement of session %s: %w", sid, err)
	}
	n.mirror.forget(sid) // the watcher would too, a moment later; this node's next Owner must not see it
	return nil
}

// pending counts recent claims per member, until gossip shows them.
type pending struct {
	mu sync.Mutex
	at map[string][]time.Time
}

const pendingFor = 3 * time.Second

func newPending() *pending { return &pending{at: map[string][]time.Time{}} }

func (p *pending) add(member string) {
	p.mu.Lock()
	p.at[member] = append(p.at[member], time.Now())
	p.mu.Unlock()
}

func (p *pending) count(member string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.at[member]
	i := 0
	for i < len(ts) && time.Since(ts[i]) > pendingFor {
		i++
	}
	p.at[member] = ts[i:]
	return len(ts) - i
}
