package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/nats-io/nats.go/jetstream"
)

// gossipLoop republishes this node's state (its session count changes),
// refreshes the view of the others, and notices when the others declared
// this node dead (then it rejoins, here, so nothing else uses the member
// while it is replaced).
//
// protoactor blocks a member id for good once its heartbeat expired or a
// health poll failed; a member that was frozen (SIGSTOP, a VM pause) longer
// than the failure timeout comes back to a cluster that ignores it, and it
// ignores the others in turn once their heartbeats look stale. Three signals
// say so, any one is enough:
//   - stall: this loop's tick came more than FailureTimeout late (the
//     process was frozen; the others' heartbeat check has fired meanwhile);
//   - takeover: a session claimed by this member was claimed by another
//     member without this node releasing it (applyUpdate);
//   - blocked peers: a member this node's protoactor blocked still answers
//     its health endpoint with the same member id, for longer than
//     FailureTimeout (automanaged only) — both sides of such a split heal
//     when the blocking side takes a new id.
func (n *Node) gossipLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.opts.refresh)
	defer t.Stop()
	last := time.Now()
	for {
		var why string
		select {
		case <-n.ctx.Done():
			return
		case why = <-n.rejoinReq:
		case <-t.C:
			if late := time.Since(last); late > n.cfg.FailureTimeout {
				why = fmt.Sprintf("this process was frozen for %s, longer than the failure timeout %s", late.Round(time.Millisecond), n.cfg.FailureTimeout)
			}
		}
		if why == "" {
			n.publishState(n.draining.Load())
			n.view.refresh(n.mem().c, n.cfg.Name, n.log)
			n.reportMetrics()
			why = n.blockedPeers()
		}
		if why != "" {
			n.rejoining.Store(true)
			n.rejoin(why)
			n.rejoining.Store(false)
		}
		last = time.Now()
		n.lastBeat.Store(last.UnixNano())
	}
}

// waitInTouch holds Owner and Place while this node may be out of touch:
// a rejoin is under way, or the gossip loop has not run for longer than the
// failure timeout (the process was frozen and has just been resumed: its
// mirror of the bucket may still name this member for sessions the others
// took over, and a request served here would reach a session it no longer
// owns). The gossip loop notices the freeze on its next round and rejoins.
func (n *Node) waitInTouch(ctx context.Context) error {
	slack := n.cfg.FailureTimeout + n.opts.refresh + n.health.timeout
	for n.rejoining.Load() || time.Since(time.Unix(0, n.lastBeat.Load())) > slack {
		if n.closed.Load() {
			return nil
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("cluster: this node is rejoining the cluster (it was out of touch with the others): %w", err)
		}
	}
	return nil
}

// requestRejoin asks the gossip loop to rejoin (once; later requests while
// one is pending are dropped).
func (n *Node) requestRejoin(why string) {
	select {
	case n.rejoinReq <- why:
	default:
	}
}

// blockedPeers says why this node must rejoin when a member it blocked has
// been answering its health endpoint for longer than FailureTimeout.
func (n *Node) blockedPeers() string {
	if n.cfg.Provider != "automanaged" {
		return ""
	}
	m := n.mem()
	alive := n.health.alive(n.otherJoins(), n.cfg.Name)
	now := time.Now()
	for id := range alive {
		if id == m.sys.ID || !m.c.Remote.BlockList().IsBlocked(id) {
			delete(n.blockedSince, id)
			continue
		}
		since, ok := n.blockedSince[id]
		if !ok {
			n.blockedSince[id] = now
			continue
		}
		if now.Sub(since) > n.cfg.FailureTimeout && now.Sub(m.started) > n.cfg.FailureTimeout {
			return fmt.Sprintf("member %s answers its health endpoint but this member has blocked it for %s (the members no longer gossip with each other)",
				id, now.Sub(since).Round(time.Millisecond))
		}
	}
	for id := range n.blockedSince {
		if !alive[id] {
			delete(n.blockedSince, id)
		}
	}
	return ""
}

// rejoin replaces this node's protoactor membership: the old member is
// stopped as if it crashed (the others have blocked its id for good), a new
// one (new member id) joins on the same ports, and the placement records
// that still name the old member are moved to the new one by
// compare-and-set; the sessions another member took over are released here.
func (n *Node) rejoin(why string) {
	old := n.mem()
	n.log.Warn("the cluster declared this node dead; rejoining with a new member id and releasing the sessions other members took over",
		"why", why, "old_member", old.sys.ID)
	n.stopMember(old, false)
	n.view.reset()
	n.health.reset()
	clear(n.blockedSince)
	var kept, lost int
	prepare := func(newID string) { kept, lost = n.reown(newID) }
	deadline := time.Now().Add(n.cfg.JoinTimeout)
	for {
		err := n.startMember(prepare)
		if err == nil {
			break
		}
		if n.ctx.Err() != nil || time.Now().After(deadline) {
			n.log.Error("rejoining the cluster failed; this node is out of the cluster until it is restarted", "err", err)
			return
		}
		_ = pause(n.ctx, 200*time.Millisecond)
	}
	n.rejoins.Add(1)
	n.log.Info("rejoined the cluster", "member", n.mem().sys.ID, "old_member", old.sys.ID, "sessions_kept", kept, "sessions_released", lost)
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// reown moves the placement records naming an earlier member id of this
// node to newID, before that member starts: the others see the records move
// with no topology change that would make them sweep (CAS on the revision
// read, so a concurrent takeover wins or loses cleanly). The sessions
// already claimed by another member are released.
func (n *Node) reown(newID string) (kept, lost int) {
	old := func(id string) bool { return id != newID && n.isMine(id) }
	for _, e := range n.mirror.all(func(e entry) bool { return old(e.Member) }) {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		ok, err := reownOne(ctx, n.kv, e.SID, old, newID, n.mirror)
		cancel()
		switch {
		case err != nil:
			n.log.Warn("moving a placement record to the new member id failed; the failover sweep decides its owner", "sid", e.SID, "err", err)
		case ok:
			kept++
		default:
			lost++
			n.releaseTaken(e.SID)
		}
	}
	return kept, lost
}

// reownOne rewrites sid's record from a member id old accepts to newID (same
// node, same epoch: the owner did not change, so nothing is fenced). It
// returns false when the record names another member (or is gone) now.
func reownOne(ctx context.Context, kv jetstream.KeyValue, sid string, old func(string) bool, newID string, mr *mirror) (bool, error) {
	for range 5 {
		e, err := kv.Get(ctx, key(sid))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("cluster: reading the owner of session %s: %w", sid, err)
		}
		cur, err := decodeEntry(e)
		if err != nil {
			return false, err
		}
		if !old(cur.Member) {
			if mr != nil {
				mr.put(cur.owner, cur.rev) // fresher than what the mirror may hold after a freeze
			}
			return cur.Member == newID, nil
		}
		next := cur.owner
		next.Member = newID
		b, _ := json.Marshal(next)
		rev, err := kv.Update(ctx, key(sid), b, cur.rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // changed meanwhile: read it again
		}
		if err != nil {
			return false, fmt.Errorf("cluster: moving session %s to member %s: %w", sid, newID, err)
		}
		if mr != nil {
			mr.put(next, rev)
		}
		return true, nil
	}
	return false, fmt.Errorf("cluster: the placement record of session %s kept changing", sid)
}

// releaseTaken stops this node's grain of sid and releases the session in
// the engine: another member owns it now.
func (n *Node) releaseTaken(sid string) {
	n.mem().lookup.dropGrain(sid)
	n.goAsync(func() {
		if err := n.ad.Release(n.ctx, sid); err != nil {
			n.log.Warn("releasing a session another member took over failed", "sid", sid, "err", err)
		}
	})
}

// isMine: memberID is one of this node's member ids (current, earlier, or
// the one a rejoin is starting).
func (n *Node) isMine(memberID string) bool {
	_, ok := n.ids.Load(memberID)
	return ok
}

// healthProbe asks every --join member's health endpoint which member id
// answers there: liveness as it is now, not as this member's topology
// (which never takes back a member id it blocked) remembers it. Results are
// shared for one refresh interval.
type healthProbe struct {
	every   time.Duration
	timeout time.Duration
	mu      sync.Mutex
	at      time.Time
	ids     map[string]bool
}

func (h *healthProbe) reset() {
	h.mu.Lock()
	h.at, h.ids = time.Time{}, nil
	h.mu.Unlock()
}

// alive returns the member ids answering at hosts (cluster name name).
func (h *healthProbe) alive(hosts []string, name string) map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ids != nil && time.Since(h.at) < h.every {
		return h.ids
	}
	ids := make(map[string]bool, len(hosts))
	var mu sync.Mutex
	var wg sync.WaitGroup
	// no keep-alive: a probe every refresh to a handful of members, and no
	// idle connection left behind when the node stops
	cl := http.Client{Timeout: h.timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, hp := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := cl.Get("http://" + hp + "/_health")
			if err != nil {
				return
			}
			defer resp.Body.Close()
			var nm automanaged.NodeModel
			if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&nm) != nil || nm.ClusterName != name {
				return
			}
			mu.Lock()
			ids[nm.ID] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	h.at, h.ids = time.Now(), ids
	return ids
}
