package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"corral/cmd/corral/farm"
	"corral/eventbus"
)

// clusterBench is the state of one `corral bench cluster` run: every node
// process it started (all are killed and waited for by close, also on
// error paths) and the sessions it created (deleted by close, so their
// local sandboxes end).
type clusterBench struct {
	o        *benchOpts
	bin      string // the corral executable the nodes run
	dir      string
	tmp      string // the local sandboxes' temp_dir (short: socket paths)
	client   *http.Client
	taken    map[int]bool
	nodes    []*benchNode
	sessions map[string]*benchNode // session -> a node that was asked to create it
}

// benchCluster is `corral bench cluster`: routed vs owner action round
// trip, failover after kill -9 of the owner vs a single node's restart
// recovery, and farm throughput on --nodes members vs a cluster of one.
func benchCluster(ctx context.Context, o *benchOpts, emit func(figure)) (err error) {
	if !o.set["actions"] {
		o.actions = 500
	}
	if o.nodes < 2 || o.kills < 1 || o.actions < 1 || o.jobs < 1 {
		return fmt.Errorf("cluster: want --nodes >= 2 (got %d), --kills >= 1 (got %d), --actions >= 1 (got %d), --jobs >= 1 (got %d)", o.nodes, o.kills, o.actions, o.jobs)
	}
	cb, err := newClusterBench(o)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cb.close()) }()
	nodes, err := cb.startCluster(ctx, "c", o.nodes)
	if err != nil {
		return err
	}
	if err := cb.routed(ctx, nodes, emit); err != nil {
		return err
	}
	farmN, err := cb.farm(ctx, nodes, "farm-cluster")
	if err != nil {
		return err
	}
	failovers, err := cb.failovers(ctx, nodes)
	if err != nil {
		return err
	}
	cb.stopAll(nodes)
	restarts, err := cb.singleRestarts(ctx)
	if err != nil {
		return err
	}
	emitFailover(emit, o.nodes, failovers, restarts)
	one, err := cb.startCluster(ctx, "one", 1)
	if err != nil {
		return err
	}
	farm1, err := cb.farm(ctx, one, "farm-one")
	if err != nil {
		return err
	}
	emit(newFigure(fmt.Sprintf("farm %d jobs on %d nodes (local, concurrency %d): throughput", o.jobs, o.nodes, o.concurrency),
		farmN, "jobs/s", "the same jobs on a cluster of one node", farm1))
	return nil
}

func newClusterBench(o *benchOpts) (*clusterBench, error) {
	bin := o.corral
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("cluster: find the corral executable to run nodes with: %w", err)
		}
		bin = exe
	}
	tmp, err := os.MkdirTemp("", "ccb") // short: agent socket paths must fit in 108 bytes
	if err != nil {
		return nil, err
	}
	return &clusterBench{o: o, bin: bin, dir: o.dir, tmp: tmp, taken: map[int]bool{}, sessions: map[string]*benchNode{},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}, nil
}

// close deletes the sessions it created (ending their sandboxes), stops
// every node it started and removes the sandboxes' temp_dir.
func (cb *clusterBench) close() error {
	var errs []error
	for sid := range cb.sessions {
		if err := cb.deleteSession(sid); err != nil {
			errs = append(errs, err)
		}
	}
	cb.stopAll(cb.nodes)
	cb.client.CloseIdleConnections()
	errs = append(errs, os.RemoveAll(cb.tmp))
	return errors.Join(errs...)
}

// deleteSession deletes sid through any running node.
func (cb *clusterBench) deleteSession(sid string) error {
	var last error = errors.New("no node runs")
	for _, n := range cb.nodes {
		if !n.running() {
			continue
		}
		code, out, err := benchHTTP(context.Background(), cb.client, 30*time.Second, "DELETE", n.api+"/api/sessions/"+url.PathEscape(sid), "")
		if err == nil && (code < 300 || code == http.StatusNotFound) {
			delete(cb.sessions, sid)
			return nil
		}
		last = fmt.Errorf("delete session %s via %s: %d %s %v", sid, n.name, code, bytes.TrimSpace(out), err)
	}
	return last
}

// stopAll stops the given nodes at once (SIGTERM, SIGKILL after 30 s).
func (cb *clusterBench) stopAll(nodes []*benchNode) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { n.stop(30 * time.Second) })
	}
	wg.Wait()
}

// config writes a serve config for the local runtime; extra is appended.
func (cb *clusterBench) config(name, extra string) (string, error) {
	p := filepath.Join(cb.dir, name+".toml")
	body := fmt.Sprintf("[engine]\nskip_git_config = true\n[runtime]\nenabled = [\"local\"]\n[runtime.local]\ntemp_dir = %q\n%s", cb.tmp, extra)
	return p, writeBenchConfig(p, body)
}

// startCluster starts n members named PREFIX-nK at once (JetStream needs a
// quorum before any serves) and waits until each sees n alive members.
func (cb *clusterBench) startCluster(ctx context.Context, prefix string, n int) ([]*benchNode, error) {
	cfg, err := cb.config(prefix, "[cluster]\njoin_timeout = \"90s\"\ndrain_timeout = \"10s\"\n")
	if err != nil {
		return nil, err
	}
	var nodes []*benchNode
	var join []string
	for i := range n {
		api, err1 := benchPorts(1, cb.taken)
		cl, err2 := benchPorts(4, cb.taken)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		name := fmt.Sprintf("%s-n%d", prefix, i+1)
		join = append(join, fmt.Sprintf("127.0.0.1:%d", cl))
		nodes = append(nodes, &benchNode{name: name, bin: cb.bin, api: fmt.Sprintf("http://127.0.0.1:%d", api),
			args: []string{"-v", "--config", cfg, "--listen", fmt.Sprintf("127.0.0.1:%d", api), "--cluster-listen", join[i],
				"--data", filepath.Join(cb.dir, name), "--node-id", name}, logPath: filepath.Join(cb.dir, name+".log")})
	}
	for _, nd := range nodes {
		nd.args = append(nd.args, "--join", strings.Join(join, ","))
	}
	cb.nodes = append(cb.nodes, nodes...)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Go(func() { errs[i] = cb.startNode(ctx, nd) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return nodes, cb.waitMembers(ctx, nodes, n)
}

// startNode starts nd and waits (2 min at most) until it serves.
func (cb *clusterBench) startNode(ctx context.Context, nd *benchNode) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return nd.start(ctx)
}

// waitMembers waits until every running node of nodes sees n alive members.
func (cb *clusterBench) waitMembers(ctx context.Context, nodes []*benchNode, n int) error {
	for _, nd := range nodes {
		if !nd.running() {
			continue
		}
		err := benchPoll(ctx, 90*time.Second, fmt.Sprintf("node %s sees %d alive members", nd.name, n), func() (bool, error) {
			ids, err := nd.aliveMembers(ctx, cb.client)
			return len(ids) == n, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// createSession creates a local session through via and waits until it
// runs; it returns the owner's node id.
func (cb *clusterBench) createSession(ctx context.Context, via *benchNode, sid string) (string, error) {
	body, _ := json.Marshal(map[string]string{"id": sid, "runtime": "local"})
	err := benchPoll(ctx, time.Minute, "create session "+sid, func() (bool, error) {
		code, out, err := benchHTTP(ctx, cb.client, 30*time.Second, "POST", via.api+"/api/sessions", string(body))
		switch {
		case err != nil:
			return false, err
		case code == http.StatusCreated:
			cb.sessions[sid] = via
			return true, nil
		case code == http.StatusServiceUnavailable: // a stream leader is being elected
			return false, fmt.Errorf("HTTP %d: %s", code, bytes.TrimSpace(out))
		}
		return false, fmt.Errorf("create session %s: HTTP %d: %s: %w", sid, code, bytes.TrimSpace(out), errStopPoll)
	})
	if err != nil {
		return "", err
	}
	var owner string
	err = benchPoll(ctx, time.Minute, "session "+sid+" running", func() (bool, error) {
		code, out, err := benchHTTP(ctx, cb.client, 5*time.Second, "GET", via.api+"/api/sessions/"+sid, "")
		var v struct{ Status, Node string }
		if err == nil && code == http.StatusOK && json.Unmarshal(out, &v) == nil && v.Status == "RUNNING" {
			owner = v.Node
			return true, nil
		}
		return false, fmt.Errorf("GET session: %d %s %v", code, bytes.TrimSpace(out), err)
	})
	return owner, err
}

// action runs `echo hi` in sid through via and waits for its observation.
func (cb *clusterBench) action(ctx context.Context, via *benchNode, sid string, timeout time.Duration) error {
	const body = `{"action":"run","args":{"command":"echo hi"}}`
	code, out, err := benchHTTP(ctx, cb.client, timeout, "POST", via.api+"/api/sessions/"+url.PathEscape(sid)+"/actions?wait=true", body)
	if err != nil {
		return err
	}
	if code != http.StatusOK || !bytes.Contains(out, []byte(`"hi`)) {
		return fmt.Errorf("echo via %s: HTTP %d: %s", via.name, code, bytes.TrimSpace(out))
	}
	return nil
}

// getSession reads sid's session record through via.
func (cb *clusterBench) getSession(ctx context.Context, via *benchNode, sid string) error {
	code, out, err := benchHTTP(ctx, cb.client, 30*time.Second, "GET", via.api+"/api/sessions/"+url.PathEscape(sid), "")
	if err != nil {
		return err
	}
	if code != http.StatusOK || !bytes.Contains(out, []byte(`"id"`)) {
		return fmt.Errorf("GET session via %s: HTTP %d: %s", via.name, code, bytes.TrimSpace(out))
	}
	return nil
}

// nodeByID is the node of nodes whose id is id.
func nodeByID(nodes []*benchNode, id string) (*benchNode, error) {
	for _, n := range nodes {
		if n.name == id {
			return n, nil
		}
	}
	return nil, fmt.Errorf("the session's owner %q is none of the nodes started", id)
}

// syntheticJobs are n jobs of one `true` action each, as `corral bench
// farm` runs.
func syntheticJobs(n int) []farm.Job {
	var jobs []farm.Job
	for i := range n {
		act, _ := eventbus.NewActionOf("run")
		act.(*eventbus.CmdRunAction).Command = "true"
		jobs = append(jobs, farm.Job{ID: fmt.Sprintf("synthetic-%04d", i), Actions: []*eventbus.Event{eventbus.NewAction(eventbus.SourceAgent, act)}})
	}
	return jobs
}

// farm runs the synthetic jobs on nodes as `corral farm --cluster` does
// and returns the throughput in jobs per second.
func (cb *clusterBench) farm(ctx context.Context, nodes []*benchNode, name string) (float64, error) {
	var apis []string
	for _, n := range nodes {
		apis = append(apis, strings.TrimPrefix(n.api, "http://"))
	}
	cf, err := newClusterFarm(strings.Join(apis, ","), "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return 0, err
	}
	out := filepath.Join(cb.dir, name)
	f := farm.New(cf, out, farm.WithConcurrency(cb.o.concurrency), farm.WithRetries(0), farm.WithRuntime(farm.Runtime{Backend: "local"}))
	start := time.Now()
	sum, err := f.Run(ctx, syntheticJobs(cb.o.jobs), nil)
	wall := time.Since(start).Seconds()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if !sum.OK() {
		return 0, fmt.Errorf("%s: not every synthetic job passed; see %s", name, filepath.Join(out, farm.ResultsFile))
	}
	return float64(cb.o.jobs) / wall, nil
}
