package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// routed times `echo` actions sent to a node that does not own the
// session (reverse-proxied to the owner) against the same actions sent to
// the owner, and likewise GET /api/sessions/{id}, whose own cost is small
// enough that its overhead is the hop alone; it emits the p50s, p99s and the
// p50 overheads.
func (cb *clusterBench) routed(ctx context.Context, nodes []*benchNode, emit func(figure)) error {
	const sid = "bench-routed"
	ownerID, err := cb.createSession(ctx, nodes[0], sid)
	if err != nil {
		return err
	}
	owner, err := nodeByID(nodes, ownerID)
	if err != nil {
		return err
	}
	entry := nodes[0]
	if entry == owner {
		entry = nodes[1]
	}
	echo := func(n *benchNode) error { return cb.action(ctx, n, sid, 30*time.Second) }
	direct, routed, err := cb.pairs(owner, entry, echo)
	if err != nil {
		return fmt.Errorf("routed echo: %w", err)
	}
	get := func(n *benchNode) error { return cb.getSession(ctx, n, sid) }
	getDirect, getRouted, err := cb.pairs(owner, entry, get)
	if err != nil {
		return fmt.Errorf("routed GET: %w", err)
	}
	ms := func(l latencies, p float64) float64 { return l.pct(p) / 1000 }
	label := fmt.Sprintf("of %d, %d nodes", cb.o.actions, len(nodes))
	base := "the same action on the owner node (interleaved)"
	emit(newFigure("routed `echo` action round trip via a non-owner, p50 "+label, ms(routed, 50), "ms", base, ms(direct, 50)))
	emit(newFigure("routed `echo` action round trip via a non-owner, p99 "+label, ms(routed, 99), "ms", base, ms(direct, 99)))
	emit(newFigure("routed action p50 overhead (routed p50 - owner p50)", ms(routed, 50)-ms(direct, 50), "ms", "budget (issue 12)", 0.3))
	emit(newFigure("routed GET /api/sessions/{id} via a non-owner, p50 "+label, ms(getRouted, 50), "ms", "the same GET on the owner node (interleaved)", ms(getDirect, 50)))
	emit(newFigure("routed GET p50 overhead: the hop alone (routed p50 - owner p50)", ms(getRouted, 50)-ms(getDirect, 50), "ms", "budget (issue 12)", 0.3))
	return cb.deleteSession(sid)
}

// pairs times call on the owner and on the entry node, alternately (the
// order flips every pair) over one keep-alive client, after a warm-up of
// both paths and the forwarding connection, --actions times each.
func (cb *clusterBench) pairs(owner, entry *benchNode, call func(*benchNode) error) (direct, routed latencies, err error) {
	timed := func(n *benchNode, into *latencies) error {
		start := time.Now()
		if err := call(n); err != nil {
			return err
		}
		*into = append(*into, time.Since(start))
		return nil
	}
	var warm latencies
	for range 20 {
		if err := errors.Join(timed(owner, &warm), timed(entry, &warm)); err != nil {
			return nil, nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	for i := range cb.o.actions {
		if i%2 == 0 {
			err = errors.Join(timed(owner, &direct), timed(entry, &routed))
		} else {
			err = errors.Join(timed(entry, &routed), timed(owner, &direct))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("pair %d: %w", i, err)
		}
	}
	return direct, routed, nil
}

// untilServes sends `echo` actions to sid through via (2 s per request)
// until one is answered, and returns the time since t0.
func (cb *clusterBench) untilServes(ctx context.Context, via *benchNode, sid string, t0 time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		err := cb.action(ctx, via, sid, 2*time.Second)
		if err == nil {
			return time.Since(t0), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("session %s does not serve through %s: %w", sid, via.name, errors.Join(ctx.Err(), err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// failovers kills the owner of one session with SIGKILL --kills times and
// measures each time until the session serves an action again through a
// survivor; the killed node is restarted on its --data and waited for as a
// member before the next kill.
func (cb *clusterBench) failovers(ctx context.Context, nodes []*benchNode) (latencies, error) {
	const sid = "bench-failover"
	if _, err := cb.createSession(ctx, nodes[0], sid); err != nil {
		return nil, err
	}
	var ds latencies
	var log strings.Builder // each kill's time, kept in --dir for a closer look
	for k := range cb.o.kills {
		d, owner, err := cb.failoverOnce(ctx, nodes, sid)
		if err != nil {
			return nil, fmt.Errorf("failover %d of %d: %w", k+1, cb.o.kills, err)
		}
		ds = append(ds, d)
		fmt.Fprintf(&log, "%s kill %d of %s: %.3f s\n", time.Now().UTC().Format(time.TimeOnly), k+1, owner, d.Seconds())
	}
	return ds, errors.Join(os.WriteFile(filepath.Join(cb.dir, "failovers.txt"), []byte(log.String()), 0o644), cb.deleteSession(sid))
}

// failoverOnce kills sid's owner and returns the time until sid serves
// again and the owner's name.
func (cb *clusterBench) failoverOnce(ctx context.Context, nodes []*benchNode, sid string) (time.Duration, string, error) {
	ownerID, err := cb.ownerOf(ctx, nodes, sid)
	if err != nil {
		return 0, "", err
	}
	owner, err := nodeByID(nodes, ownerID)
	if err != nil {
		return 0, "", err
	}
	var survivor *benchNode
	for _, n := range nodes {
		if n != owner && n.running() {
			survivor = n
			break
		}
	}
	if err := cb.action(ctx, survivor, sid, 30*time.Second); err != nil {
		return 0, "", fmt.Errorf("before the kill: %w", err)
	}
	t0 := time.Now()
	owner.kill()
	d, err := cb.untilServes(ctx, survivor, sid, t0)
	if err != nil {
		return 0, "", fmt.Errorf("after kill -9 of %s: %w", owner.name, err)
	}
	if err := cb.startNode(ctx, owner); err != nil {
		return 0, "", fmt.Errorf("restart %s: %w", owner.name, err)
	}
	return d, owner.name, cb.waitMembers(ctx, nodes, len(nodes))
}

// ownerOf is sid's owner as a running node of nodes reports it.
func (cb *clusterBench) ownerOf(ctx context.Context, nodes []*benchNode, sid string) (string, error) {
	for _, n := range nodes {
		if !n.running() {
			continue
		}
		var v struct{ Node string }
		code, out, err := benchHTTP(ctx, cb.client, 10*time.Second, "GET", n.api+"/api/sessions/"+sid, "")
		if err == nil && code == http.StatusOK && json.Unmarshal(out, &v) == nil && v.Node != "" {
			return v.Node, nil
		}
	}
	return "", fmt.Errorf("no running node names the owner of session %s", sid)
}

// singleRestarts is the baseline of failovers: a single `corral serve`
// (no cluster, file store) is killed with SIGKILL and started again on the
// same store --kills times, each time until its session serves again.
func (cb *clusterBench) singleRestarts(ctx context.Context) (latencies, error) {
	cfg, err := cb.config("single", fmt.Sprintf("[events]\nstore_dir = %q\n", filepath.Join(cb.dir, "single-events")))
	if err != nil {
		return nil, err
	}
	port, err := benchPorts(1, cb.taken)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	nd := &benchNode{name: "single", bin: cb.bin, api: "http://" + addr, args: []string{"--config", cfg, "--listen", addr}}
	cb.nodes = append(cb.nodes, nd)
	const sid = "bench-restart"
	if err := cb.startNode(ctx, nd); err != nil {
		return nil, err
	}
	if _, err := cb.createSession(ctx, nd, sid); err != nil {
		return nil, err
	}
	var ds latencies
	for k := range cb.o.kills {
		t0 := time.Now()
		nd.kill()
		if err := cb.startNode(ctx, nd); err != nil {
			return nil, fmt.Errorf("single node restart %d: %w", k+1, err)
		}
		d, err := cb.untilServes(ctx, nd, sid, t0)
		if err != nil {
			return nil, fmt.Errorf("single node restart %d: %w", k+1, err)
		}
		ds = append(ds, d)
	}
	err = cb.deleteSession(sid)
	nd.stop(30 * time.Second)
	return ds, err
}

// emitFailover emits the failover p50 and max against the single node's
// restart recovery.
func emitFailover(emit func(figure), nodes int, failovers, restarts latencies) {
	s := func(l latencies, p float64) float64 { return l.pct(p) / 1e6 }
	name := fmt.Sprintf("failover: kill -9 of the owner (%d nodes) until its session serves again through a survivor", nodes)
	base := "one node (no cluster): kill -9, restart on the same store, until the session serves again"
	emit(newFigure(fmt.Sprintf("%s, p50 of %d", name, len(failovers)), s(failovers, 50), "s", base+fmt.Sprintf(", p50 of %d", len(restarts)), s(restarts, 50)))
	emit(newFigure(fmt.Sprintf("%s, max of %d", name, len(failovers)), s(failovers, 100), "s", base+fmt.Sprintf(", max of %d", len(restarts)), s(restarts, 100)))
}
