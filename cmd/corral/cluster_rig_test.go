package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral/transport/porttest"
)

// clusterRig runs real `corral serve` cluster members on 127.0.0.1: each
// node has its own --data and cluster ports; all share one agent temp_dir
// (local) or one docker node label, so a survivor reaches the sandboxes of
// a dead owner, and the rig's cleanup removes whatever the test left.
type clusterRig struct {
	*rig
	nodes []*clusterNode
	extra string // extra [cluster] lines of every node's config
}

// clusterNode is one member: its serve process (nil while down) and how to
// start it again on the same --data.
type clusterNode struct {
	*serveProc
	name   string
	listen string // --cluster-listen
	data   string
	cfg    string
	args   []string
}

// newClusterRig prepares n members (not started) of a cluster on runtime,
// with failure_timeout short enough for tests; extra is appended to every
// node's [cluster] section.
func newClusterRig(t *testing.T, runtime string, n int, extra string) *clusterRig {
	t.Helper()
	cr := &clusterRig{rig: newRig(t, runtime, rigOpts{}), extra: extra}
	// Below the ephemeral range: a node restarted on its ports must find
	// them free, not taken by some process's outgoing connection.
	var addrs []string
	for _, p := range porttest.Blocks(t, n, 4) {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	base, err := os.ReadFile(cr.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range addrs {
		nd := &clusterNode{name: fmt.Sprintf("n%d", i+1), listen: a, data: filepath.Join(t.TempDir(), "node")}
		nd.cfg = writeServeConfig(t, string(base)+"\n[cluster]\nfailure_timeout = \"2s\"\njoin_timeout = \"60s\"\ndrain_timeout = \"20s\"\n"+extra)
		nd.args = []string{"--cluster-listen", a, "--join", strings.Join(addrs, ","), "--data", nd.data, "--node-id", nd.name}
		cr.nodes = append(cr.nodes, nd)
	}
	return cr
}

// launched is a serve process that has not printed its URL yet.
type launched struct {
	p    *serveProc
	urls chan string
}

// launch starts nd's serve process without waiting for it.
func (cr *clusterRig) launch(nd *clusterNode, extra ...string) *launched {
	t := cr.t
	t.Helper()
	cmd := exec.Command(cr.corral, append(append([]string{"serve", "--config", nd.cfg, "-v"}, nd.args...), extra...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{t: t, cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("node %s (pid %d) log:\n%s", nd.name, cmd.Process.Pid, p.stderr.String())
		}
	})
	l := &launched{p: p, urls: make(chan string, 1)}
	go func() {
		re := regexp.MustCompile(`open (http://127\.0\.0\.1:\d+/)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				l.urls <- m[1]
			}
		}
		close(l.urls)
	}()
	return l
}

// wait waits for the launched node to serve.
func (l *launched) wait(t *testing.T, name string) *serveProc {
	t.Helper()
	select {
	case u, ok := <-l.urls:
		if !ok {
			_ = l.p.cmd.Wait()
			t.Fatalf("node %s exited before serving; stderr:\n%s", name, l.p.stderr.String())
		}
		l.p.base = u
	case <-time.After(120 * time.Second):
		t.Fatalf("node %s printed no URL in 120s; stderr:\n%s", name, l.p.stderr.String())
	}
	return l.p
}

// start starts the given nodes (all when none) at once, as JetStream needs
// a quorum of them before any serves, and waits until each serves and sees
// every started member alive.
func (cr *clusterRig) start(which ...*clusterNode) {
	cr.t.Helper()
	if len(which) == 0 {
		which = cr.nodes
	}
	ls := make([]*launched, len(which))
	for i, nd := range which {
		ls[i] = cr.launch(nd)
	}
	for i, nd := range which {
		nd.serveProc = ls[i].wait(cr.t, nd.name)
	}
	cr.waitMembers(len(cr.alive()))
}

// alive are the nodes whose process runs.
func (cr *clusterRig) alive() []*clusterNode {
	var out []*clusterNode
	for _, nd := range cr.nodes {
		if nd.serveProc != nil && nd.cmd.ProcessState == nil {
			out = append(out, nd)
		}
	}
	return out
}

// members is GET /api/cluster on nd: the ids of alive members.
func (nd *clusterNode) members() (self string, alive []string) {
	nd.t.Helper()
	code, b := nd.do("GET", "api/cluster", "")
	if code != 200 {
		nd.t.Fatalf("GET /api/cluster on %s = %d %s", nd.name, code, b)
	}
	var cv clusterView
	if err := json.Unmarshal(b, &cv); err != nil {
		nd.t.Fatalf("GET /api/cluster body %s: %v", b, err)
	}
	for _, m := range cv.Members {
		if m.Status == "alive" {
			alive = append(alive, m.ID)
		}
	}
	return cv.Self, alive
}

// waitMembers polls every alive node until each sees n alive members.
func (cr *clusterRig) waitMembers(n int) {
	cr.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for _, nd := range cr.alive() {
		for {
			_, alive := nd.members()
			if len(alive) == n {
				break
			}
			if time.Now().After(deadline) {
				cr.t.Fatalf("node %s sees members %v, want %d alive", nd.name, alive, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// ownerOf is the session's "node" as nd's API reports it.
func (nd *clusterNode) ownerOf(sid string) string {
	return fmt.Sprint(nd.session(sid)["node"])
}

// node is the rig's node named id.
func (cr *clusterRig) node(id string) *clusterNode {
	for _, nd := range cr.nodes {
		if nd.name == id {
			return nd
		}
	}
	cr.t.Fatalf("no node %q (session owner unknown?)", id)
	return nil
}

// waitOwnerNot polls via nd until sid's owner is neither old nor empty.
func (nd *clusterNode) waitOwnerNot(sid, old string) string {
	nd.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		code, b := nd.getQuick("api/sessions/" + sid)
		if code == 200 {
			var s struct{ Node string }
			_ = json.Unmarshal(b, &s)
			if s.Node != "" && s.Node != old {
				return s.Node
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	nd.t.Fatalf("session %s still owned by %s (or unknown) after 90s", sid, old)
	return ""
}

// getQuick GETs path with a short timeout: a request routed to a stopped
// owner hangs until the takeover, and a poll must not hang with it.
func (nd *clusterNode) getQuick(path string) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", nd.base+path, nil)
	if err != nil {
		nd.t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// signal sends sig to nd's process.
func (nd *clusterNode) signal(sig syscall.Signal) {
	if err := nd.cmd.Process.Signal(sig); err != nil {
		nd.t.Fatalf("signal %v to %s: %v", sig, nd.name, err)
	}
}

// submitRetry submits a command like submit, retrying while the cluster
// refuses it for want of a quorum (a JetStream stream leader is being
// elected after a member died): nothing was stored then, so a retry
// cannot run it twice.
func (nd *clusterNode) submitRetry(sid, command string) int64 {
	nd.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, b := nd.do("POST", "api/sessions/"+sid+"/actions", fmt.Sprintf(`{"action":"run","args":{"command":%q}}`, command))
		if code == 202 || code == 200 {
			var r struct {
				ID int64 `json:"id"`
			}
			if err := json.Unmarshal(b, &r); err != nil {
				nd.t.Fatalf("submit reply %s: %v", b, err)
			}
			return r.ID
		}
		if !strings.Contains(string(b), "quorum") || time.Now().After(deadline) {
			nd.t.Fatalf("submit %q via %s = %d %s", command, nd.name, code, b)
		}
		nd.t.Logf("submit via %s refused for now (%d): retrying", nd.name, code)
		time.Sleep(200 * time.Millisecond)
	}
}

// allEvents are every stored event of the session, Corral's own too (the
// OpenHands listing leaves those out, so its ids have gaps).
func (nd *clusterNode) allEvents(sid string) []apiEvent {
	return nd.eventPages(sid, "corral_events=true")
}

// checkIDs fails unless evs have ids 0..n-1 in order (no gap, no repeat)
// and every action in want has exactly one observation.
func checkIDs(t *testing.T, evs []apiEvent, want ...int64) {
	t.Helper()
	for i, ev := range evs {
		if ev.ID != int64(i) {
			t.Fatalf("event %d has id %d: the ids have a gap or a repeat", i, ev.ID)
		}
	}
	for _, id := range want {
		if n := len(answersTo(evs, id)); n != 1 {
			t.Fatalf("action %d has %d observations, want exactly 1: %+v", id, n, answersTo(evs, id))
		}
	}
}
