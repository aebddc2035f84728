package cluster

// The package's logic that needs no protoactor member: placement choice,
// the view (topology joined with gossip), claim and epoch rules on a real
// embedded JetStream KV, and the health probe. These run under -race.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	corraljs "corral/eventbus/jetstream"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func vm(node, member string, sessions, capacity int, draining bool) viewMember {
	return viewMember{Member: Member{ID: node, Sessions: sessions}, memberID: member, capacity: capacity, draining: draining}
}

func TestPick(t *testing.T) {
	gossiped := func(m viewMember) int { return m.Sessions }
	for _, tc := range []struct {
		name    string
		ms      []viewMember
		exclude string
		want    string // node id, or "" with wantErr
		wantErr error
	}{
		{name: "the least-loaded member wins",
			ms: []viewMember{vm("a", "ma", 3, 0, false), vm("b", "mb", 1, 0, false), vm("c", "mc", 2, 0, false)}, want: "b"},
		{name: "a draining member gets nothing however idle",
			ms: []viewMember{vm("a", "ma", 3, 0, false), vm("b", "mb", 0, 0, true)}, want: "a"},
		{name: "a member at its capacity is skipped",
			ms: []viewMember{vm("a", "ma", 2, 2, false), vm("b", "mb", 5, 0, false)}, want: "b"},
		{name: "capacity 0 is unlimited",
			ms: []viewMember{vm("a", "ma", 1000, 0, false)}, want: "a"},
		{name: "every member at capacity is ErrFull",
			ms: []viewMember{vm("a", "ma", 2, 2, false), vm("b", "mb", 3, 1, false)}, wantErr: ErrFull},
		{name: "the excluded node is skipped",
			ms: []viewMember{vm("a", "ma", 0, 0, false), vm("b", "mb", 9, 0, false)}, exclude: "a", want: "b"},
		{name: "nobody left is ErrNoMember",
			ms: []viewMember{vm("a", "ma", 0, 0, false), vm("b", "mb", 0, 0, true)}, exclude: "a", wantErr: ErrNoMember},
		{name: "no members is ErrNoMember", wantErr: ErrNoMember},
		{name: "an older member id of this node is skipped",
			ms: []viewMember{vm("self", "old", 0, 0, false), vm("self", "cur", 4, 0, false), vm("b", "mb", 5, 0, false)}, want: "self"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pick(tc.ms, "sid", tc.exclude, "self", "cur", gossiped)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("pick = %+v, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.ID != tc.want {
				t.Fatalf("pick = %+v, %v; want node %s", got, err, tc.want)
			}
			if tc.name == "an older member id of this node is skipped" && got.memberID != "cur" {
				t.Fatalf("picked member %s of this node, want the current one", got.memberID)
			}
		})
	}
}

func TestPickSpreadsTiesBySessionID(t *testing.T) {
	ms := []viewMember{vm("a", "ma", 0, 0, false), vm("b", "mb", 0, 0, false), vm("c", "mc", 0, 0, false)}
	rev := slices.Clone(ms)
	slices.Reverse(rev)
	used := map[string]int{}
	for i := range 60 {
		sid := fmt.Sprintf("s%d", i)
		m1, err1 := pick(ms, sid, "", "a", "ma", func(m viewMember) int { return 0 })
		m2, err2 := pick(rev, sid, "", "a", "ma", func(m viewMember) int { return 0 })
		if err1 != nil || err2 != nil || m1.ID != m2.ID {
			t.Fatalf("pick(%s) depends on the member order: %s vs %s (%v, %v)", sid, m1.ID, m2.ID, err1, err2)
		}
		used[m1.ID]++
	}
	if len(used) != 3 {
		t.Fatalf("60 equally loaded placements used %v, want all 3 members", used)
	}
}

func gossipOf(t *testing.T, st gossipState) *protocluster.GossipKeyValue {
	t.Helper()
	b, _ := json.Marshal(st)
	a, err := anypb.New(wrapperspb.String(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return &protocluster.GossipKeyValue{Value: a}
}

func TestViewJoinsTopologyAndGossip(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	pm := func(id string, port int32) *protocluster.Member {
		return &protocluster.Member{Id: id, Host: "127.0.0.1", Port: port}
	}
	type check struct {
		member    string // member id asked
		alive     bool
		node      string // node id member() resolves to ("" = not known)
		draining  bool
		addressOf string
	}
	for _, tc := range []struct {
		name      string
		topo      []*protocluster.Member
		gossip    map[string]gossipState
		bad       []string // member ids whose gossip is not JSON
		drain     string   // member id set draining locally
		wantAlive []string // node ids listed by alive()
		checks    []check
	}{
		{name: "a member is listed once it is in the topology and its gossip arrived",
			topo:      []*protocluster.Member{pm("m1", 1), pm("m2", 2)},
			gossip:    map[string]gossipState{"m1": {Node: "n1", Cluster: "corral"}, "m2": {Node: "n2", Cluster: "corral"}},
			wantAlive: []string{"n1", "n2"},
			checks:    []check{{member: "m2", alive: true, node: "n2", addressOf: "127.0.0.1:2"}}},
		{name: "a member without gossip is alive but not listed",
			topo:      []*protocluster.Member{pm("m1", 1), pm("m2", 2)},
			gossip:    map[string]gossipState{"m1": {Node: "n1", Cluster: "corral"}},
			wantAlive: []string{"n1"},
			checks:    []check{{member: "m2", alive: true}}},
		{name: "gossip of a member not in the topology (dead) is not listed",
			topo:      []*protocluster.Member{pm("m1", 1)},
			gossip:    map[string]gossipState{"m1": {Node: "n1", Cluster: "corral"}, "m9": {Node: "n9", Cluster: "corral"}},
			wantAlive: []string{"n1"},
			checks:    []check{{member: "m9", alive: false}}},
		{name: "a member of another cluster and unreadable gossip are left out",
			topo:      []*protocluster.Member{pm("m1", 1), pm("m2", 2), pm("m3", 3)},
			gossip:    map[string]gossipState{"m1": {Node: "n1", Cluster: "corral"}, "m2": {Node: "n2", Cluster: "other"}},
			bad:       []string{"m3"},
			wantAlive: []string{"n1"}},
		{name: "etcd member ids <cluster>@<id> are matched to gossip's bare ids",
			topo:      []*protocluster.Member{pm("corral@m1", 1)},
			gossip:    map[string]gossipState{"m1": {Node: "n1", Cluster: "corral"}},
			wantAlive: []string{"n1"},
			checks:    []check{{member: "m1", alive: true, node: "n1"}}},
		{name: "a rejoined node's past member id resolves to its current member",
			topo:      []*protocluster.Member{pm("new", 7)},
			gossip:    map[string]gossipState{"new": {Node: "n1", Cluster: "corral", Past: []string{"old"}}},
			wantAlive: []string{"n1"},
			checks:    []check{{member: "old", alive: true, node: "n1", addressOf: "127.0.0.1:7"}, {member: "older", alive: false}}},
		{name: "draining comes from gossip or from a local drain",
			topo: []*protocluster.Member{pm("m1", 1), pm("m2", 2), pm("m3", 3)},
			gossip: map[string]gossipState{"m1": {Node: "n1", Cluster: "corral", Draining: true},
				"m2": {Node: "n2", Cluster: "corral"}, "m3": {Node: "n3", Cluster: "corral"}},
			drain:     "m2",
			wantAlive: []string{"n1", "n2", "n3"},
			checks: []check{{member: "m1", alive: true, node: "n1", draining: true}, {member: "m2", alive: true, node: "n2", draining: true},
				{member: "m3", alive: true, node: "n3"}}},
		{name: "a drained node restarted (a new member id) takes sessions again",
			topo:      []*protocluster.Member{pm("m2b", 2)},
			gossip:    map[string]gossipState{"m2b": {Node: "n2", Cluster: "corral"}},
			drain:     "m2",
			wantAlive: []string{"n2"},
			checks:    []check{{member: "m2b", alive: true, node: "n2", draining: false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newView("corral")
			v.setTopology(tc.topo)
			state := map[string]*protocluster.GossipKeyValue{}
			for id, st := range tc.gossip {
				state[id] = gossipOf(t, st)
			}
			for _, id := range tc.bad {
				a, _ := anypb.New(wrapperspb.String("{not json"))
				state[id] = &protocluster.GossipKeyValue{Value: a}
			}
			v.setGossip(state, "corral", discard)
			if tc.drain != "" {
				v.setDraining(tc.drain)
			}
			var got []string
			for _, m := range v.alive() {
				got = append(got, m.ID)
			}
			if !slices.Equal(got, tc.wantAlive) {
				t.Fatalf("alive() = %v, want %v", got, tc.wantAlive)
			}
			for _, c := range tc.checks {
				if a := v.isAlive(c.member); a != c.alive {
					t.Errorf("isAlive(%s) = %v, want %v", c.member, a, c.alive)
				}
				m, ok := v.member(c.member)
				if ok != (c.node != "") || m.ID != c.node || m.draining != c.draining {
					t.Errorf("member(%s) = %+v, %v; want node %q draining %v", c.member, m, ok, c.node, c.draining)
				}
				if c.addressOf != "" {
					if a, _ := v.address(c.member); a != c.addressOf {
						t.Errorf("address(%s) = %q, want %q", c.member, a, c.addressOf)
					}
				}
			}
			v.reset()
			if len(v.alive()) != 0 || len(tc.topo) > 0 && v.isAlive(strings.TrimPrefix(tc.topo[0].Id, "corral@")) {
				t.Errorf("after reset the view still has members")
			}
		})
	}
}

// startKV runs an embedded JetStream server and opens a fresh placement bucket.
func startKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	s, err := corraljs.StartServer(context.Background(), corraljs.ServerConfig{NodeID: "logic", ClusterName: "logic",
		Host: "127.0.0.1", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: bucketName, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func readRec(t *testing.T, kv jetstream.KeyValue, sid string) entry {
	t.Helper()
	e, err := kv.Get(context.Background(), key(sid))
	if err != nil {
		t.Fatalf("reading %s: %v", sid, err)
	}
	rec, err := decodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestClaimRulesOnJetStreamKV(t *testing.T) {
	ctx := context.Background()
	kv := startKV(t)

	t.Run("the first claim has epoch 1 and a second create is refused", func(t *testing.T) {
		if _, err := createClaim(ctx, kv, owner{SID: "c1", Node: "a", Member: "ma", Epoch: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := createClaim(ctx, kv, owner{SID: "c1", Node: "b", Member: "mb", Epoch: 1}); !errors.Is(err, jetstream.ErrKeyExists) {
			t.Fatalf("second create = %v, want ErrKeyExists", err)
		}
		if rec := readRec(t, kv, "c1"); rec.Node != "a" || rec.Epoch != 1 {
			t.Fatalf("record = %+v, want node a epoch 1", rec.owner)
		}
	})
	t.Run("a claim at the current revision moves the owner and bumps the epoch", func(t *testing.T) {
		cur := readRec(t, kv, "c1")
		next, rev, err := updateClaim(ctx, kv, cur.rev, cur.owner, "b", "mb")
		if err != nil || next.Epoch != 2 || next.Node != "b" || rev <= cur.rev {
			t.Fatalf("updateClaim = %+v, %d, %v", next, rev, err)
		}
		if _, _, err := updateClaim(ctx, kv, cur.rev, cur.owner, "c", "mc"); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			t.Fatalf("a claim at a stale revision = %v, want ErrKeyRevisionMismatch", err)
		}
	})
	t.Run("of concurrent claimers that read the same revision exactly one wins", func(t *testing.T) {
		cur := readRec(t, kv, "c1")
		var wins, lost atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := updateClaim(ctx, kv, cur.rev, cur.owner, fmt.Sprintf("n%d", i), fmt.Sprintf("m%d", i))
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
					lost.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || lost.Load() != 7 {
			t.Fatalf("%d claims won and %d lost, want 1 and 7", wins.Load(), lost.Load())
		}
		if rec := readRec(t, kv, "c1"); rec.Epoch != cur.Epoch+1 {
			t.Fatalf("epoch after the race = %d, want %d", rec.Epoch, cur.Epoch+1)
		}
	})
	t.Run("a rejoined node moves its record to its new member id, same node and epoch", func(t *testing.T) {
		if _, err := createClaim(ctx, kv, owner{SID: "r1", Node: "a", Member: "old", Epoch: 3}); err != nil {
			t.Fatal(err)
		}
		mr := &mirror{m: map[string]entry{}}
		ok, err := reownOne(ctx, kv, "r1", func(id string) bool { return id == "old" }, "new", mr)
		if err != nil || !ok {
			t.Fatalf("reownOne = %v, %v; want true", ok, err)
		}
		if rec := readRec(t, kv, "r1"); rec.Member != "new" || rec.Node != "a" || rec.Epoch != 3 {
			t.Fatalf("record = %+v, want member new, node a, epoch 3", rec.owner)
		}
		if e, ok := mr.get("r1"); !ok || e.Member != "new" {
			t.Fatalf("mirror after reown = %+v, %v", e, ok)
		}
	})
	t.Run("a record another member claimed is not taken back", func(t *testing.T) {
		if _, err := createClaim(ctx, kv, owner{SID: "r2", Node: "b", Member: "mb", Epoch: 2}); err != nil {
			t.Fatal(err)
		}
		mr := &mirror{m: map[string]entry{}}
		mr.put(owner{SID: "r2", Node: "a", Member: "old", Epoch: 1}, 1) // what a frozen node's mirror still says
		ok, err := reownOne(ctx, kv, "r2", func(id string) bool { return id == "old" }, "new", mr)
		if err != nil || ok {
			t.Fatalf("reownOne = %v, %v; want false", ok, err)
		}
		if e, _ := mr.get("r2"); e.Member != "mb" {
			t.Fatalf("the mirror still names %s, want the current owner mb", e.Member)
		}
		if rec := readRec(t, kv, "r2"); rec.Member != "mb" || rec.Epoch != 2 {
			t.Fatalf("record changed: %+v", rec.owner)
		}
		if ok, err := reownOne(ctx, kv, "never-placed", func(string) bool { return true }, "new", nil); ok || err != nil {
			t.Fatalf("reownOne of a missing record = %v, %v; want false, nil", ok, err)
		}
	})
	t.Run("every session id maps to its own valid key", func(t *testing.T) {
		sids := []string{"plain-1_x", "with.dot", "b64_looks-encoded", "with space", "ünïcode", "a/b", "*", ">"}
		seen := map[string]string{}
		for _, sid := range sids {
			k := key(sid)
			if prev, dup := seen[k]; dup {
				t.Fatalf("%q and %q share key %q", prev, sid, k)
			}
			seen[k] = sid
			if _, err := createClaim(ctx, kv, owner{SID: sid, Node: "a", Member: "ma", Epoch: 1}); err != nil {
				t.Fatalf("session id %q (key %q): %v", sid, k, err)
			}
			if rec := readRec(t, kv, sid); rec.SID != sid {
				t.Fatalf("record of %q names %q", sid, rec.SID)
			}
		}
	})
}

func TestHealthProbe(t *testing.T) {
	answer := func(status int, body string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/_health" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}))
	}
	node := func(id, cluster string) string {
		b, _ := json.Marshal(automanaged.NodeModel{ID: id, ClusterName: cluster})
		return string(b)
	}
	gone := answer(200, "")
	goneHost := strings.TrimPrefix(gone.URL, "http://")
	gone.Close()
	for _, tc := range []struct {
		name  string
		srv   *httptest.Server
		host  string
		alive []string
	}{
		{name: "a member answering with its id is alive", srv: answer(200, node("m1", "corral")), alive: []string{"m1"}},
		{name: "a member of another cluster is not", srv: answer(200, node("m2", "other"))},
		{name: "an error status is not", srv: answer(500, node("m3", "corral"))},
		{name: "an answer that is not a node is not", srv: answer(200, "hello")},
		{name: "an address nobody listens on is not", host: goneHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.host
			if tc.srv != nil {
				defer tc.srv.Close()
				host = strings.TrimPrefix(tc.srv.URL, "http://")
			}
			h := &healthProbe{every: time.Minute, timeout: 2 * time.Second}
			got := h.alive([]string{host}, "corral")
			var ids []string
			for id := range got {
				ids = append(ids, id)
			}
			if !slices.Equal(ids, tc.alive) {
				t.Fatalf("alive = %v, want %v", ids, tc.alive)
			}
		})
	}
	t.Run("answers are shared for one refresh interval, then asked again", func(t *testing.T) {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			_, _ = io.WriteString(w, node("m1", "corral"))
		}))
		defer srv.Close()
		host := strings.TrimPrefix(srv.URL, "http://")
		h := &healthProbe{every: time.Hour, timeout: 2 * time.Second}
		h.alive([]string{host}, "corral")
		h.alive([]string{host}, "corral")
		if hits.Load() != 1 {
			t.Fatalf("%d probes within the interval, want 1", hits.Load())
		}
		h.reset()
		h.alive([]string{host}, "corral")
		if hits.Load() != 2 {
			t.Fatalf("%d probes after reset, want 2", hits.Load())
		}
	})
}

func TestViewWarnsAboutAMemberWhoseClockIsOff(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		states   []int64 // the member's published times, in order (unix ms)
		wantWarn bool
	}{
		{"a clock within the limit is fine", []int64{now.Add(2 * time.Second).UnixMilli()}, false},
		{"a clock a minute ahead is logged", []int64{now.Add(time.Minute).UnixMilli()}, true},
		{"a clock a minute behind is logged", []int64{now.Add(-time.Minute).UnixMilli()}, true},
		{"an old state gossiped again is not compared", []int64{now.UnixMilli(), now.UnixMilli()}, false},
		{"a state without a time is not compared", []int64{0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			v := newView("corral")
			v.setTopology([]*protocluster.Member{{Id: "m1", Host: "127.0.0.1", Port: 1}})
			for i, ms := range tc.states {
				// an unchanged time republished later must not count as skew
				v.now = func() time.Time { return now.Add(time.Duration(i) * time.Minute) }
				v.setGossip(map[string]*protocluster.GossipKeyValue{"m1": gossipOf(t, gossipState{Node: "n1", Cluster: "corral", Time: ms})}, "corral", log)
			}
			if got := strings.Contains(buf.String(), "clock is off"); got != tc.wantWarn {
				t.Fatalf("warned = %v, want %v; log: %s", got, tc.wantWarn, buf.String())
			}
		})
	}
}

// A member that just joined or rejoined is in the topology a moment before
// its gossip state: Owner must wait for its API URL, not hand the router a
// member it cannot forward to (the API answered 503 owner_unreachable with
// an empty address).
func TestOwnerWaitsForALiveOwnersAPIURL(t *testing.T) {
	kv := startKV(t)
	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := &Node{cfg: Config{Name: "corral", FailureTimeout: time.Minute}, log: discard, kv: kv,
		view: newView("corral"), mirror: &mirror{m: map[string]entry{}}, health: &healthProbe{}}
	n.cur.Store(&member{sys: sys, started: time.Now()})
	n.lastBeat.Store(time.Now().UnixNano())
	n.view.setTopology([]*protocluster.Member{{Id: "mb", Host: "127.0.0.1", Port: 1}})
	if _, err := createClaim(context.Background(), kv, owner{SID: "s", Node: "b", Member: "mb", Epoch: 1}); err != nil {
		t.Fatal(err)
	}

	// No gossip from mb yet: Owner waits (here until its context ends).
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if m, err := n.Owner(ctx, "s"); err == nil {
		t.Fatalf("Owner before mb's gossip = %+v, want it to wait for the API URL (and fail when its context ends)", m)
	}
	n.view.setGossip(map[string]*protocluster.GossipKeyValue{
		"mb": gossipOf(t, gossipState{Node: "b", API: "http://127.0.0.1:2", Cluster: "corral"}),
	}, "corral", discard)
	m, err := n.Owner(context.Background(), "s")
	if err != nil || m.ID != "b" || m.API != "http://127.0.0.1:2" {
		t.Fatalf("Owner = %+v, %v; want node b with its API URL", m, err)
	}
}

func TestAbsenceNextDueIsTheEarliestOwnerStillToComeDue(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		at      map[string]time.Time
		wantDue bool
		atLeast time.Duration // the wait is in [atLeast, atMost]
		atMost  time.Duration
	}{
		{name: "nobody absent", wantDue: false},
		{name: "one absent for 1 s of 5", at: map[string]time.Time{"a": now.Add(-time.Second)}, wantDue: true, atLeast: 3 * time.Second, atMost: 4 * time.Second},
		{name: "the earliest of two", at: map[string]time.Time{"a": now.Add(-time.Second), "b": now.Add(-4 * time.Second)}, wantDue: true, atLeast: 0, atMost: time.Second},
		{name: "one already due is not waited for again", at: map[string]time.Time{"a": now.Add(-time.Minute)}, wantDue: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &absence{at: tc.at}
			wait, due := a.nextDue(5 * time.Second)
			if due != tc.wantDue || due && (wait < tc.atLeast || wait > tc.atMost) {
				t.Fatalf("nextDue = %v, %v; want due %v within [%v, %v]", wait, due, tc.wantDue, tc.atLeast, tc.atMost)
			}
		})
	}
}

func TestBucketUnavailableIsTheStreamNotAnsweringNotTheRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no stream response (no leader)", fmt.Errorf("cluster: claiming session s: %w", jetstream.ErrNoStreamResponse), true},
		{"no responders", fmt.Errorf("claim: %w", nats.ErrNoResponders), true},
		{"a timeout", fmt.Errorf("claim: %w", context.DeadlineExceeded), true},
		{"another member claimed first", fmt.Errorf("claim: %w", jetstream.ErrKeyRevisionMismatch), false},
		{"a record that is not JSON", errors.New("cluster: the placement record of session s is not JSON"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bucketUnavailable(tc.err); got != tc.want {
				t.Fatalf("bucketUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
