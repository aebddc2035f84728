package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// entry is a placement record with its bucket revision.
type entry struct {
	owner
	rev uint64
}

// mirror is a local copy of the placement bucket, kept by a KV watcher: the
// fast path of Owner, and what the failover sweep and Drain iterate
// (authoritative reads and every claim still go to the bucket).
type mirror struct {
	mu   sync.Mutex
	m    map[string]entry // key -> entry
	w    jetstream.KeyWatcher
	done chan struct{}
	once sync.Once
}

func (mr *mirror) get(sid string) (entry, bool) {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	e, ok := mr.m[key(sid)]
	return e, ok
}

// put records a change this node made itself, so its own next Owner sees
// it before the watcher delivers it (an older revision never overwrites).
func (mr *mirror) put(rec owner, rev uint64) {
	mr.mu.Lock()
	if e, ok := mr.m[key(rec.SID)]; !ok || e.rev < rev {
		mr.m[key(rec.SID)] = entry{owner: rec, rev: rev}
	}
	mr.mu.Unlock()
}

func (mr *mirror) forget(sid string) {
	mr.mu.Lock()
	delete(mr.m, key(sid))
	mr.mu.Unlock()
}

// all returns the entries matching keep.
func (mr *mirror) all(keep func(entry) bool) []entry {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	var out []entry
	for _, e := range mr.m {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func (mr *mirror) stop() {
	if mr == nil {
		return
	}
	mr.once.Do(func() {
		_ = mr.w.Stop()
		<-mr.done
	})
}

// startMirror watches the bucket and waits for its initial content.
func (n *Node) startMirror(ctx context.Context) error {
	w, err := n.kv.WatchAll(n.ctx)
	if err != nil {
		return fmt.Errorf("cluster: watching the placement bucket %s: %w", bucketName, err)
	}
	mr := &mirror{m: map[string]entry{}, w: w, done: make(chan struct{})}
	n.mirror = mr
	ready := make(chan struct{})
	go func() {
		defer close(mr.done)
		first := true
		for e := range w.Updates() {
			if e == nil {
				if first {
					close(ready)
					first = false
				}
				continue
			}
			n.applyUpdate(e)
		}
	}()
	t := time.NewTimer(n.cfg.JoinTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		mr.stop()
		return fmt.Errorf("cluster: loading the placement bucket was cancelled: %w", ctx.Err())
	case <-t.C:
		mr.stop()
		return fmt.Errorf("cluster: loading the placement bucket %s took longer than %s", bucketName, n.cfg.JoinTimeout)
	}
}

// applyUpdate records one bucket change. A session this process owned that
// now names another member was taken over (this node was thought dead, or
// drained): it is released here so its actors stop at once (the event
// store's fence would stop their next write anyway).
func (n *Node) applyUpdate(e jetstream.KeyValueEntry) {
	mr := n.mirror
	mr.mu.Lock()
	old, had := mr.m[e.Key()]
	if e.Operation() != jetstream.KeyValuePut {
		delete(mr.m, e.Key())
		mr.mu.Unlock()
		return
	}
	rec, err := decodeEntry(e)
	if err != nil {
		mr.mu.Unlock()
		n.log.Warn("a placement record is not JSON; ignored", "key", e.Key(), "err", err)
		return
	}
	mr.m[e.Key()] = rec
	mr.mu.Unlock()
	if !had || !n.isMine(old.Member) || n.isMine(rec.Member) {
		return
	}
	if _, asked := n.released.LoadAndDelete(rec.SID); asked {
		return // drained: Release ran on request
	}
	n.log.Warn("another member took over a session of this node; releasing it here", "sid", rec.SID, "now", rec.Node)
	n.releaseTaken(rec.SID)
	if old.Member == n.mem().sys.ID {
		// only a member that judged this one dead claims its sessions
		n.requestRejoin(fmt.Sprintf("member %s of node %s claimed session %s of this member", rec.Member, rec.Node, rec.SID))
	}
}

// activateTimeout bounds a background activation (Adopt may start a sandbox).
const activateTimeout = 5 * time.Minute

// goAsync runs f on a goroutine Shutdown waits for; after Shutdown began it
// does nothing.
func (n *Node) goAsync(f func()) {
	n.asyncMu.Lock()
	defer n.asyncMu.Unlock()
	if n.ctx.Err() != nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func decodeEntry(e jetstream.KeyValueEntry) (entry, error) {
	var rec owner
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return entry{}, fmt.Errorf("cluster: the placement record %s is not JSON: %w", e.Key(), err)
	}
	return entry{owner: rec, rev: e.Revision()}, nil
}
