package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestClusterSpreadsSessionsAndServesEachThroughEveryNode(t *testing.T) {
	cr := newClusterRig(t, "local", 3, "")
	cr.start()
	owners := map[string]bool{}
	var sids []string
	for i := range 6 {
		via := cr.nodes[i%3]
		sid := cr.create(via.serveProc)
		via.waitRunning(sid)
		owners[via.ownerOf(sid)] = true
		sids = append(sids, sid)
	}
	if len(owners) < 2 {
		t.Fatalf("6 sessions are all on %v: placement does not spread them", owners)
	}
	for _, sid := range sids {
		var ids []int64
		for _, nd := range cr.nodes {
			id := nd.submit(sid, "echo via-"+nd.name)
			if got := nd.observationOf(sid, id); !strings.Contains(got.Content, "via-"+nd.name) {
				t.Fatalf("session %s, action through %s: %q", sid, nd.name, got.Content)
			}
			ids = append(ids, id)
		}
		checkIDs(t, cr.nodes[0].allEvents(sid), ids...)
	}
	out, err := exec.Command(cr.corral, "node", "list", "--server", cr.nodes[1].base).CombinedOutput()
	if err != nil {
		t.Fatalf("corral node list: %v\n%s", err, out)
	}
	for _, nd := range cr.nodes {
		if !strings.Contains(string(out), nd.name) {
			t.Fatalf("corral node list does not name %s:\n%s", nd.name, out)
		}
	}
	if !strings.Contains(string(out), "n2 (this)") {
		t.Fatalf("corral node list does not mark the node it asked:\n%s", out)
	}
}

// wsEvents reads event frames from the session's WebSocket on nd after id
// after, until it has n of them.
func wsEvents(t *testing.T, nd *clusterNode, sid string, after int64, n int) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url := fmt.Sprintf("ws%sapi/sessions/%s/events/ws?after=%d", strings.TrimPrefix(nd.base, "http"), sid, after)
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 22)
	var ids []int64
	for len(ids) < n {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("WebSocket via %s after %d: got ids %v, then %v", nd.name, after, ids, err)
		}
		var f struct {
			Type string `json:"type"`
			ID   int64  `json:"id"`
		}
		if json.Unmarshal(data, &f) == nil && f.Type == "event" {
			ids = append(ids, f.ID)
		}
	}
	conn.Close(websocket.StatusNormalClosure, "")
	return ids
}

func TestClusterWebSocketRelaysAndResumesAcrossNodes(t *testing.T) {
	cr := newClusterRig(t, "local", 3, "")
	cr.start()
	sid := cr.create(cr.nodes[0].serveProc)
	cr.nodes[0].waitRunning(sid)
	owner := cr.nodes[0].ownerOf(sid)
	var others []*clusterNode
	for _, nd := range cr.nodes {
		if nd.name != owner {
			others = append(others, nd)
		}
	}
	a := others[0].submit(sid, "echo one")
	others[0].observationOf(sid, a)
	var want []int64
	for _, ev := range cr.node(owner).events(sid) {
		want = append(want, ev.ID)
	}
	half := len(want) / 2
	first := wsEvents(t, others[0], sid, -1, half)
	rest := wsEvents(t, others[1], sid, first[len(first)-1], len(want)-half)
	if got := append(first, rest...); !slices.Equal(got, want) {
		t.Fatalf("ids over two relayed connections (the second resuming after %d) = %v, want the stored %v", first[len(first)-1], got, want)
	}
}

// ownerAndOthers creates a session through nodes[0] and returns it, its
// owner and the other nodes.
func (cr *clusterRig) ownerAndOthers() (sid string, owner *clusterNode, others []*clusterNode) {
	sid = cr.create(cr.nodes[0].serveProc)
	cr.nodes[0].waitRunning(sid)
	owner = cr.node(cr.nodes[0].ownerOf(sid))
	for _, nd := range cr.nodes {
		if nd != owner {
			others = append(others, nd)
		}
	}
	return sid, owner, others
}

func testOwnerKilledMidAction(t *testing.T, runtime string) {
	cr := newClusterRig(t, runtime, 3, "")
	cr.start()
	sid, owner, others := cr.ownerAndOthers()
	via := others[0]
	before := via.submit(sid, "export KEPT=still-here")
	via.observationOf(sid, before)
	// Whether the agent has started it or not when the owner dies, the
	// action must get exactly one observation.
	inflight := via.submit(sid, "sleep 2; echo finished-after-the-owner-died")
	owner.kill()
	newOwner := others[1].waitOwnerNot(sid, owner.name)
	obs := others[1].observationOf(sid, inflight)
	t.Logf("in-flight action answered on %s: %s %q %v", newOwner, obs.Observation, obs.Content, obs.Extras)
	others[1].waitRunning(sid)
	after := others[1].submitRetry(sid, "echo $KEPT")
	if after <= inflight {
		t.Fatalf("new action id %d does not continue after %d", after, inflight)
	}
	others[1].observationOf(sid, after)
	checkIDs(t, others[0].allEvents(sid), before, inflight, after)
}

func TestClusterOwnerKilledMidActionContinuesOnASurvivor(t *testing.T) {
	testOwnerKilledMidAction(t, "local")
}

func TestClusterDockerOwnerKilledMidActionContinuesOnASurvivor(t *testing.T) {
	testOwnerKilledMidAction(t, "docker")
}

func TestClusterNonOwnerKilledLeavesSessionsServing(t *testing.T) {
	cr := newClusterRig(t, "local", 3, "")
	cr.start()
	sid, owner, others := cr.ownerAndOthers()
	others[0].kill()
	cr.waitMembers(2)
	for _, nd := range []*clusterNode{owner, others[1]} {
		id := nd.submitRetry(sid, "echo after-a-non-owner-died")
		nd.observationOf(sid, id)
	}
	if got := others[1].ownerOf(sid); got != owner.name {
		t.Fatalf("session moved from %s to %s though its owner is alive", owner.name, got)
	}
	checkIDs(t, owner.allEvents(sid))
}

func TestClusterNodeRestartedOnItsDataRejoins(t *testing.T) {
	cr := newClusterRig(t, "local", 3, "")
	cr.start()
	sid, owner, others := cr.ownerAndOthers()
	owner.kill()
	cr.waitMembers(2)
	others[0].waitOwnerNot(sid, owner.name)
	cr.start(owner)
	cr.waitMembers(3)
	self, _ := owner.members()
	if self != owner.name {
		t.Fatalf("restarted node is %q, want %q (its DATA/NODE_ID)", self, owner.name)
	}
	id := owner.submitRetry(sid, "echo through-the-restarted-node")
	owner.observationOf(sid, id)
	checkIDs(t, owner.allEvents(sid), id)
}

func TestClusterStoppedOwnerDoesNotWriteAfterTheTakeover(t *testing.T) {
	cr := newClusterRig(t, "local", 3, "")
	cr.start()
	sid, owner, others := cr.ownerAndOthers()
	before := others[0].submit(sid, "echo before")
	others[0].observationOf(sid, before)
	owner.signal(syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = owner.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	others[0].waitOwnerNot(sid, owner.name)
	during := others[0].submitRetry(sid, "echo during")
	others[0].observationOf(sid, during)
	owner.signal(syscall.SIGCONT)
	stopped = false
	// The old owner wakes up thinking it owns the session: any write it
	// tries must be fenced. A request through it goes to the new owner.
	after := owner.submit(sid, "echo after")
	owner.observationOf(sid, after)
	evs := others[1].allEvents(sid)
	checkIDs(t, evs, before, during, after)
	if got := others[1].ownerOf(sid); got == owner.name {
		t.Fatalf("the stopped node %s owns the session again", got)
	}
}

func TestClusterBadStartsFailWithAClearError(t *testing.T) {
	// Two of the three members run: a new R3 stream would need the third.
	cr := newClusterRig(t, "local", 3, "replicas = 2\n")
	t.Run("nothing in --join answers", func(t *testing.T) {
		nd := cr.nodes[0]
		cfg := writeServeConfig(t, strings.Replace(readFile(t, nd.cfg), `join_timeout = "60s"`, `join_timeout = "3s"`, 1))
		out, err := exec.Command(cr.corral, append([]string{"serve", "--config", cfg}, nd.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "join_timeout") {
			t.Fatalf("serve with no member reachable: %v\n%s", err, out)
		}
	})
	cr.start(cr.nodes[0], cr.nodes[1])
	t.Run("a node id already in the cluster", func(t *testing.T) {
		nd := cr.nodes[2]
		args := slices.Clone(nd.args)
		args[len(args)-1] = cr.nodes[0].name
		out := failedServe(t, cr, nd.cfg, args)
		if !strings.Contains(out, cr.nodes[0].name) {
			t.Fatalf("duplicate node id not named:\n%s", out)
		}
	})
	t.Run("another cluster name", func(t *testing.T) {
		nd := cr.nodes[2]
		cfg := writeServeConfig(t, strings.Replace(readFile(t, nd.cfg), `join_timeout = "60s"`, "join_timeout = \"5s\"\nname = \"other\"", 1))
		args := slices.Clone(nd.args)
		args[len(args)-3] = t.TempDir()
		out := failedServe(t, cr, cfg, args)
		if !strings.Contains(out, "name") {
			t.Fatalf("cluster name mismatch not explained:\n%s", out)
		}
	})
}

// failedServe runs serve with args and expects it to exit non-zero within
// 2 minutes; it returns its output.
func failedServe(t *testing.T, cr *clusterRig, cfg string, args []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cr.corral, append([]string{"serve", "--config", cfg}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("serve did not fail (err %v, ctx %v):\n%s", err, ctx.Err(), out.String())
	}
	return out.String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestClusterFarmOf60JobsSurvivesANodeKilledMidway(t *testing.T) {
	cr := newClusterRig(t, "local", 3, "")
	cr.start()
	dir := t.TempDir()
	var jobs strings.Builder
	for i := range 60 {
		fmt.Fprintf(&jobs, `{"id":"job%02d","actions":[{"action":"run","args":{"command":"echo start-%d"}},{"action":"run","args":{"command":"sleep 0.3; echo done-%d"}}],"check":"true"}`+"\n", i, i, i)
	}
	jobsFile := dir + "/jobs.jsonl"
	if err := os.WriteFile(jobsFile, []byte(jobs.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var apis []string
	for _, nd := range cr.nodes {
		apis = append(apis, strings.TrimSuffix(strings.TrimPrefix(nd.base, "http://"), "/"))
	}
	out := dir + "/out"
	cmd := exec.Command(cr.corral, "farm", "--cluster", strings.Join(apis, ","), "--out", out, "--concurrency", "6", "--progress", "none", "-v", jobsFile)
	var farmOut syncBuffer
	cmd.Stdout, cmd.Stderr = &farmOut, &farmOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(5 * time.Minute)
	for resultLines(out) < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("farm wrote %d results in 5 min:\n%s", resultLines(out), farmOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cr.nodes[1].kill()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("farm: %v\n%s", err, farmOut.String())
	}
	b, err := os.ReadFile(out + "/results.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	nodes := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct {
			ID, Status, Node string
			Attempts         int
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("result line %q: %v", line, err)
		}
		seen[r.ID]++
		nodes[r.Node] = true
		if r.Status != "passed" {
			t.Errorf("job %s: %s", r.ID, line)
		}
	}
	if len(seen) != 60 {
		t.Fatalf("%d jobs have a result, want 60", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %s has %d results", id, n)
		}
	}
	if len(nodes) < 2 {
		t.Errorf("jobs ran on nodes %v, want at least 2", nodes)
	}
	for id := range seen {
		checkJobEvents(t, out+"/events/"+id+".jsonl")
	}
}

// checkJobEvents fails unless every action in a job's event log has
// exactly one observation (none lost, none run twice).
func checkJobEvents(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	answers := map[int64]int{}
	var actions []int64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev apiEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		if ev.Action == "run" {
			actions = append(actions, ev.ID)
		}
		if ev.Observation != "" && ev.Cause != nil {
			answers[*ev.Cause]++
		}
	}
	if len(actions) < 3 { // two job actions and the check
		t.Errorf("%s: %d run actions, want 3", path, len(actions))
	}
	for _, id := range actions {
		if answers[id] != 1 {
			t.Errorf("%s: action %d has %d observations, want 1", path, id, answers[id])
		}
	}
}

// resultLines counts the complete lines of a farm's results file.
func resultLines(out string) int {
	b, _ := os.ReadFile(out + "/results.jsonl")
	return bytes.Count(b, []byte("\n"))
}
