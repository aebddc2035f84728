package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"corral/metrics"
)

// directory is the cluster's shared view for the tests: which member owns
// which session and which members exist. Each member's Router is a
// testRouter over it with its own Self, so the routers really disagree
// only when a test makes them (stale owners, dead members).
type directory struct {
	mu       sync.Mutex
	members  []ClusterMember
	owners   map[string]string // sid -> member id
	placeOn  string            // member Place picks ("" = the caller itself)
	ownerErr error             // Owner fails with it when set
}

func (d *directory) member(id string) (ClusterMember, bool) {
	for _, m := range d.members {
		if m.ID == id {
			return m, true
		}
	}
	return ClusterMember{}, false
}

// testRouter implements Router over a directory for member self.
type testRouter struct {
	dir  *directory
	self string
}

func (r *testRouter) Owner(ctx context.Context, sid string) (ClusterMember, error) {
	r.dir.mu.Lock()
	defer r.dir.mu.Unlock()
	if r.dir.ownerErr != nil {
		return ClusterMember{}, r.dir.ownerErr
	}
	id, ok := r.dir.owners[sid]
	if !ok {
		return ClusterMember{}, fmt.Errorf("session %q: %w", sid, ErrNotFound)
	}
	m, ok := r.dir.member(id)
	if !ok {
		return ClusterMember{}, fmt.Errorf("owner %s of %q is not a member", id, sid)
	}
	return m, nil
}

func (r *testRouter) Place(ctx context.Context, sid string) (ClusterMember, error) {
	r.dir.mu.Lock()
	defer r.dir.mu.Unlock()
	id := r.dir.placeOn
	if id == "" {
		id = r.self
	}
	r.dir.owners[sid] = id
	m, _ := r.dir.member(id)
	return m, nil
}

func (r *testRouter) Members(ctx context.Context) []ClusterMember {
	r.dir.mu.Lock()
	defer r.dir.mu.Unlock()
	return append([]ClusterMember(nil), r.dir.members...)
}

func (r *testRouter) Drain(ctx context.Context, nodeID string) error {
	r.dir.mu.Lock()
	defer r.dir.mu.Unlock()
	if _, ok := r.dir.member(nodeID); !ok {
		return fmt.Errorf("drain %s: %w", nodeID, ErrNotFound)
	}
	if r.dir.placeOn == "" {
		return fmt.Errorf("drain %s: no other member to take its sessions: %w", nodeID, ErrConflict)
	}
	for sid, owner := range r.dir.owners {
		if owner == nodeID {
			r.dir.owners[sid] = r.dir.placeOn
		}
	}
	return nil
}

func (r *testRouter) Forget(ctx context.Context, sid string) error {
	r.dir.mu.Lock()
	defer r.dir.mu.Unlock()
	delete(r.dir.owners, sid)
	return nil
}

func (r *testRouter) Self() ClusterMember {
	r.dir.mu.Lock()
	defer r.dir.mu.Unlock()
	m, _ := r.dir.member(r.self)
	return m
}

// testCluster is n members, each a real Server with its own test engine
// and HTTP listener, sharing one directory.
type testCluster struct {
	dir     *directory
	members map[string]*fixture
}

func newTestCluster(t testing.TB, ids ...string) *testCluster {
	t.Helper()
	c := &testCluster{dir: &directory{owners: map[string]string{}}, members: map[string]*fixture{}}
	for _, id := range ids {
		eng := newTestEngine(t)
		c.members[id] = c.join(t, id, eng, eng)
	}
	return c
}

// join starts member id serving eng (whose test engine is te) and lists it
// in the directory.
func (c *testCluster) join(t testing.TB, id string, eng Engine, te *testEngine) *fixture {
	t.Helper()
	srv, err := New(eng, DefaultConfig(), WithRouter(&testRouter{dir: c.dir, self: id}), WithMetrics(metrics.New()))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	c.dir.mu.Lock()
	c.dir.members = append(c.dir.members, ClusterMember{ID: id, Address: "127.0.0.1:" + id, API: ts.URL, Status: "alive"})
	c.dir.mu.Unlock()
	return &fixture{t: t, eng: te, srv: srv, ts: ts}
}

// sessionOn creates a session on member id (through that member, placed there).
func (c *testCluster) sessionOn(t testing.TB, id, sid string) {
	t.Helper()
	c.dir.mu.Lock()
	c.dir.placeOn = id
	c.dir.mu.Unlock()
	c.members[id].mustJSON("POST", "/api/sessions", map[string]any{"id": sid, "runtime": "local"}, 201, nil)
}

func routedCount(t testing.TB, reg *metrics.Registry, node string) float64 {
	t.Helper()
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "corral_cluster_routed_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" && l.GetValue() == node {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestRequestOnANonOwnerIsServedByTheOwner(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	c.sessionOn(t, "b", "s1")
	a, b := c.members["a"], c.members["b"]

	code, body, hdr := a.do("POST", "/api/sessions/s1/actions?wait=true", map[string]any{"action": "run", "args": map[string]any{"command": "echo routed"}})
	if code != 200 || !strings.Contains(string(body), `"content":"routed"`) || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("action through a = %d %s %v", code, body, hdr)
	}
	var s Session
	a.mustJSON("GET", "/api/sessions/s1", nil, 200, &s)
	if s.ID != "s1" || s.Node != "b" {
		t.Fatalf("session through a = %+v, want node b", s)
	}
	if _, err := a.eng.session("s1"); err == nil {
		t.Fatal("member a's engine has s1; it should only be on b")
	}
	if _, err := b.eng.session("s1"); err != nil {
		t.Fatalf("owner b's engine: %v", err)
	}
	// The owner's error answers come back unchanged.
	code, body, _ = a.do("POST", "/api/sessions/s1/actions/abc/confirm", nil)
	if ec, _ := errorCode(t, body); code != 400 || ec != "invalid_request" {
		t.Fatalf("bad confirm through a = %d %s", code, body)
	}
	if n := routedCount(t, a.srv.Metrics(), "b"); n < 3 {
		t.Fatalf("a counted %v routed requests to b, want >= 3", n)
	}
	if n := routedCount(t, b.srv.Metrics(), "b"); n != 0 {
		t.Fatalf("b counted %v routed requests for its own session", n)
	}
}

func TestCreateOnANonOwnerRunsOnThePlacedMember(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	c.dir.mu.Lock()
	c.dir.placeOn = "b"
	c.dir.mu.Unlock()
	a, b := c.members["a"], c.members["b"]
	tests := []struct {
		name string
		body map[string]any
	}{
		{"an id given by the client is kept", map[string]any{"id": "given", "runtime": "local", "env": map[string]string{"X": "1"}}},
		{"a request without id gets one before placement", map[string]any{"runtime": "local"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := a.do("POST", "/api/sessions", tt.body)
			var s Session
			_ = json.Unmarshal(body, &s)
			if code != 201 || s.ID == "" || s.Node != "b" || hdr.Get("Location") != "/api/sessions/"+s.ID {
				t.Fatalf("create through a = %d %s (Location %q)", code, body, hdr.Get("Location"))
			}
			if id, ok := tt.body["id"]; ok && s.ID != id {
				t.Fatalf("id %q, want %q", s.ID, id)
			}
			if _, err := b.eng.session(s.ID); err != nil {
				t.Fatalf("placed member b: %v", err)
			}
			if _, err := a.eng.session(s.ID); err == nil {
				t.Fatal("a created it too")
			}
			c.dir.mu.Lock()
			owner := c.dir.owners[s.ID]
			c.dir.mu.Unlock()
			if owner != "b" {
				t.Fatalf("directory owner %q", owner)
			}
		})
	}
	// Invalid requests are refused where they arrive, before any placement.
	code, body, _ := a.do("POST", "/api/sessions", map[string]any{"id": "bad id!"})
	if code != 400 {
		t.Fatalf("invalid id = %d %s", code, body)
	}
}

func TestListAndClusterShowEveryMember(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	c.sessionOn(t, "a", "sa")
	c.sessionOn(t, "b", "sb")
	a := c.members["a"]

	var list struct {
		Sessions    []Session       `json:"sessions"`
		Unreachable []memberFailure `json:"unreachable"`
	}
	a.mustJSON("GET", "/api/sessions", nil, 200, &list)
	got := map[string]string{}
	for _, s := range list.Sessions {
		got[s.ID] = s.Node
	}
	if len(got) != 2 || got["sa"] != "a" || got["sb"] != "b" || list.Unreachable != nil {
		t.Fatalf("list through a = %+v", list)
	}
	// A member asked by another answers with its own sessions only.
	code, body, _ := a.do("GET", "/api/sessions", nil, RoutedByHeader, "b")
	if code != 200 || strings.Contains(string(body), `"sb"`) || !strings.Contains(string(body), `"sa"`) {
		t.Fatalf("routed list = %d %s", code, body)
	}

	var cl clusterBody
	a.mustJSON("GET", "/api/cluster", nil, 200, &cl)
	if cl.Self != "a" || len(cl.Members) != 2 || cl.Members[1].ID != "b" || cl.Members[1].API != c.members["b"].ts.URL || cl.Members[1].Status != "alive" {
		t.Fatalf("cluster = %+v", cl)
	}

	// A dead member makes the list partial, and says so.
	c.members["b"].ts.Close()
	list.Sessions, list.Unreachable = nil, nil
	a.mustJSON("GET", "/api/sessions", nil, 200, &list)
	if len(list.Sessions) != 1 || len(list.Unreachable) != 1 || list.Unreachable[0].Node != "b" || list.Unreachable[0].Error == "" {
		t.Fatalf("list with b down = %+v", list)
	}
}

func TestClusterEndpointOnASingleNode(t *testing.T) {
	f := newFixture(t, nil)
	code, body, _ := f.do("GET", "/api/cluster", nil)
	ec, msg := errorCode(t, body)
	if code != 404 || ec != "not_a_cluster" || !strings.Contains(msg, "--join") {
		t.Fatalf("GET /api/cluster = %d %s", code, body)
	}
	var s Session
	f.mustJSON("POST", "/api/sessions", map[string]any{"id": "one"}, 201, &s)
	if s.Node != "" {
		t.Fatalf("a single node changed the engine's node to %q (it names the sandbox's host there)", s.Node)
	}
}

func TestRoutingFailures(t *testing.T) {
	c := newTestCluster(t, "a", "b", "c")
	c.sessionOn(t, "b", "sb")
	c.sessionOn(t, "c", "sc")
	a := c.members["a"]
	c.members["c"].ts.Close() // c is dead but still listed as sc's owner

	tests := []struct {
		name     string
		path     string
		hdr      []string
		setErr   error
		code     int
		errCode  string
		mentions []string
	}{
		{"an unreachable owner is a 503 naming the member", "/api/sessions/sc", nil, nil, 503, "owner_unreachable", []string{`member c`, "retry"}},
		{"a routed request is served here even if another member owns it", "/api/sessions/sb", []string{RoutedByHeader, "c"}, nil, 404, "not_found", []string{"member c routed this request here", "retry"}},
		{"a session no member owns is a 404", "/api/sessions/nobody", nil, nil, 404, "not_found", []string{"nobody"}},
		{"a router that cannot answer is a 503 asking to retry", "/api/sessions/sb", nil, errors.New("placement store has no quorum"), 503, "cluster_unavailable", []string{"no quorum", "retry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.dir.mu.Lock()
			c.dir.ownerErr = tt.setErr
			c.dir.mu.Unlock()
			code, body, hdr := a.do("GET", tt.path, nil, tt.hdr...)
			ec, msg := errorCode(t, body)
			if code != tt.code || ec != tt.errCode {
				t.Fatalf("= %d %s, want %d %s", code, body, tt.code, tt.errCode)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(msg, m) {
					t.Errorf("message %q does not mention %q", msg, m)
				}
			}
			if code == 503 && hdr.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

func TestFilesThroughANonOwner(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	c.sessionOn(t, "b", "s1")
	a := c.members["a"]

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "hello.txt")
	payload := strings.Repeat("routed bytes ", 10000)
	_, _ = io.WriteString(fw, payload)
	_ = mw.Close()
	code, body, _ := a.do("POST", "/api/sessions/s1/files?destination=/workspace/up", buf.Bytes(), "Content-Type", mw.FormDataContentType())
	if code != 201 {
		t.Fatalf("upload through a = %d %s", code, body)
	}
	code, body, hdr := a.do("GET", "/api/sessions/s1/files/download?path=/workspace/up", nil)
	if code != 200 || hdr.Get("Content-Type") != "application/zip" {
		t.Fatalf("download through a = %d %v", code, hdr)
	}
	if got := unzipAll(t, body); got["hello.txt"] != payload {
		t.Fatalf("downloaded %d entries, hello.txt has %d bytes, want %d", len(got), len(got["hello.txt"]), len(payload))
	}
	var files struct{ Files []string }
	a.mustJSON("GET", "/api/sessions/s1/files?path=/workspace/up", nil, 200, &files)
	if len(files.Files) != 1 || files.Files[0] != "hello.txt" {
		t.Fatalf("listing through a = %v", files.Files)
	}
}

// TestWebSocketRelayResumes follows a session's events through a non-owner,
// disconnects, lets the session go on, and resumes from the last id seen:
// every event arrives once, in order, across the two connections.
func TestWebSocketRelayResumes(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	c.sessionOn(t, "b", "s1")
	a, b := c.members["a"], c.members["b"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	b.eng.emit(t, "s1", 5, 10)
	conn := a.dial(ctx, "s1", -1, nil)
	last := readEventsUntil(ctx, t, conn, -1, 4)
	conn.Close(websocket.StatusNormalClosure, "")

	b.eng.emit(t, "s1", 5, 10)
	conn = a.dial(ctx, "s1", last, nil)
	defer conn.CloseNow()
	readEventsUntil(ctx, t, conn, last, 9)

	// Live events after the replay are relayed too.
	go b.eng.emit(t, "s1", 1, 10)
	readEventsUntil(ctx, t, conn, 9, 10)
}

// readEventsUntil reads event frames and checks they continue after prev
// without gap or duplicate, until id want; it returns want.
func readEventsUntil(ctx context.Context, t *testing.T, conn *websocket.Conn, prev, want int64) int64 {
	t.Helper()
	for prev < want {
		fr, err := readFrame(ctx, t, conn)
		if err != nil {
			t.Fatalf("after id %d: %v", prev, err)
		}
		if fr.Type != FrameEvent {
			continue
		}
		if fr.ID != prev+1 {
			t.Fatalf("event %d after %d: a gap or a duplicate", fr.ID, prev)
		}
		prev = fr.ID
	}
	return prev
}

// TestCORSThroughANonOwnerHasOneAllowOrigin: the entry member answers CORS
// and the owner's copy of the header is dropped, so a browser sees one.
func TestCORSThroughANonOwnerHasOneAllowOrigin(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	c.sessionOn(t, "b", "s1")
	a := c.members["a"]
	origin := a.ts.URL // same origin as the page the UI is served from
	code, body, hdr := a.do("GET", "/api/sessions/s1", nil, "Origin", origin)
	if code != 200 || len(hdr.Values("Access-Control-Allow-Origin")) != 1 || hdr.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("= %d %s, Access-Control-Allow-Origin %q", code, body, hdr.Values("Access-Control-Allow-Origin"))
	}
}

func TestDrainEndpoint(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	c.sessionOn(t, "a", "s1")
	c.dir.mu.Lock()
	c.dir.placeOn = "b"
	c.dir.mu.Unlock()
	tests := []struct {
		name     string
		node     string
		wantCode int
		wantErr  string
	}{
		{"a member is drained", "a", 200, ""},
		{"an unknown member is 404", "zz", 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := c.members["b"].do("POST", "/api/cluster/nodes/"+tt.node+"/drain", nil)
			if code != tt.wantCode {
				t.Fatalf("drain %s = %d %s, want %d", tt.node, code, body, tt.wantCode)
			}
			if tt.wantErr != "" {
				if ec, _ := errorCode(t, body); ec != tt.wantErr {
					t.Fatalf("drain %s error code %q, want %q (%s)", tt.node, ec, tt.wantErr, body)
				}
			}
		})
	}
	c.dir.mu.Lock()
	owner := c.dir.owners["s1"]
	c.dir.mu.Unlock()
	if owner != "b" {
		t.Fatalf("after draining a, s1 is owned by %q, want b", owner)
	}
	single := newFixture(t, nil)
	if code, body, _ := single.do("POST", "/api/cluster/nodes/a/drain", nil); code != 404 || !strings.Contains(string(body), "not_a_cluster") {
		t.Fatalf("drain on a single node = %d %s, want 404 not_a_cluster", code, body)
	}
}

// purgingEngine is the test engine that can also purge (as the real
// engine's Delete does).
type purgingEngine struct{ *testEngine }

func (e purgingEngine) PurgeSession(ctx context.Context, id string) (Session, error) {
	return e.DeleteSession(ctx, id)
}

// A purged session is gone with its events: its placement must go too, or
// a later failover of its owner would try to adopt it. Stopping keeps it.
func TestPurgeInAClusterDropsThePlacementAndStopKeepsIt(t *testing.T) {
	c := &testCluster{dir: &directory{owners: map[string]string{}}, members: map[string]*fixture{}}
	eng := purgingEngine{newTestEngine(t)}
	f := c.join(t, "a", eng, eng.testEngine)
	dir := c.dir
	placed := func(sid string) bool {
		dir.mu.Lock()
		defer dir.mu.Unlock()
		_, ok := dir.owners[sid]
		return ok
	}
	for _, sid := range []string{"stopped", "purged"} {
		f.mustJSON("POST", "/api/sessions", map[string]any{"id": sid, "runtime": "local"}, 201, nil)
	}
	f.mustJSON("DELETE", "/api/sessions/stopped", nil, 200, nil)
	f.mustJSON("DELETE", "/api/sessions/purged?purge=true", nil, 200, nil)
	if !placed("stopped") {
		t.Error("a stopped session lost its placement; it can be started again and must stay routable")
	}
	if placed("purged") {
		t.Error("a purged session kept its placement")
	}
}
