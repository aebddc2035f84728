// These tests run several protoactor cluster members in one process, and
// protoactor-go (at the pinned version) races with itself there: remote.Start
// replaces gRPC's process-wide logger while other members' gRPC runs, and its
// gossip informer, block list and etcd provider write shared state without
// locks. The race detector reports those (about 26, none in this package),
// so this file is built without -race; `make test` runs it in a separate
// step without the detector (see the Makefile), and the multi-node tests of
// cmd/corral run one member per process.

//go:build !race

package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"corral/eventbus/jetstream"
	"corral/metrics"
	"corral/transport/porttest"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

// protoactor leaves goroutines behind after Cluster.Shutdown: its log
// throttles wait out their window, its remote's gRPC client connections to
// dead peers keep reconnecting, the automanaged monitor ends only after its
// next poll, and the etcd provider never closes its client. These are
// protoactor's (and the gRPC/etcd clients it created) own, ignored by name;
// none of this package's goroutines is ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged.(*AutoManagedProvider).monitorMemberStatusChanges.func1"),
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd.(*Provider).startKeepAlive.func1"),
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd.(*Provider).startWatching.func1"),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/remote.(*endpointManager).startActivator.func1"),
		// an endpoint writer to a dead peer sleeps 2 s between its
		// connection attempts in its mailbox goroutine, also after Shutdown
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/remote.(*endpointWriter).initialize"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/client/v3.(*watchGrpcStream).run"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/client/v3.(*lessor).recvKeepAliveLoop"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/client/v3.(*lessor).deadlineLoop"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc.(*ccBalancerWrapper).watcher"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/transport.(*http2Client).keepalive"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/transport.(*controlBuffer).get"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/transport.(*http2Client).reader"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc.(*addrConn).resetTransport"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc.(*addrConn).resetTransportAndUnlock"),
		// protoactor's log throttles: one goroutine per throttle window (up to 60 s)
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1.1"),
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/cluster.NewGossipActor.NewThrottleWithLogger.func2.1"),
	)
}

// recAdopter is the engine side of the consumer interface: it records calls.
type recAdopter struct {
	mu       sync.Mutex
	adopted  map[string]int
	released map[string]int
	owned    map[string]bool
	fail     map[string]int // sid -> Adopt calls still to fail
	attempts map[string]int // sid -> Adopt calls, failed ones included
}

func newRecAdopter() *recAdopter {
	return &recAdopter{adopted: map[string]int{}, released: map[string]int{}, owned: map[string]bool{},
		fail: map[string]int{}, attempts: map[string]int{}}
}

func (a *recAdopter) Adopt(_ context.Context, sid string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.attempts[sid]++
	if a.fail[sid] > 0 {
		a.fail[sid]--
		return fmt.Errorf("test: adopting %s fails", sid)
	}
	a.adopted[sid]++
	a.owned[sid] = true
	return nil
}

func (a *recAdopter) Release(_ context.Context, sid string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.released[sid]++
	delete(a.owned, sid)
	return nil
}

func (a *recAdopter) SessionCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.owned)
}

func (a *recAdopter) counts(sid string) (adopted, released int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.adopted[sid], a.released[sid]
}

// freePort is below the ephemeral range, so a member restarted on it finds
// it free.
func freePort(t *testing.T) int {
	t.Helper()
	return porttest.Ports(t, 1)[0]
}

func startNATS(t *testing.T) string {
	t.Helper()
	s, err := jetstream.StartServer(context.Background(), jetstream.ServerConfig{NodeID: "test", ClusterName: "test",
		Host: "127.0.0.1", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

type testNode struct {
	n   *Node
	ad  *recAdopter
	cfg Config
	reg *metrics.Registry
}

// metric reads a gauge or counter of reg (labels as name=value pairs; 0 when absent).
func metric(t *testing.T, reg *metrics.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// testCfg is a node config on free loopback ports joining join.
func testCfg(t *testing.T, id string, join []string) Config {
	return Config{NodeID: id, Name: "corral", Host: "127.0.0.1", RemotePort: freePort(t), HealthPort: freePort(t),
		Join: join, FailureTimeout: 3 * time.Second, JoinTimeout: 20 * time.Second, APIURL: "http://api-of-" + id}
}

func startNode(t *testing.T, natsURL string, cfg Config) (*testNode, error) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ad := newRecAdopter()
	reg := metrics.New()
	opts := []Option{WithMetrics(reg), WithReplicas(1), WithRefresh(300 * time.Millisecond), WithSweep(time.Second), WithAdoptRetry(3, 50*time.Millisecond)}
	if os.Getenv("CORRAL_TEST_LOG") != "" {
		opts = append(opts, WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	}
	n, err := Start(context.Background(), cfg, ad, nc, opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { n.stop(false) })
	return &testNode{n: n, ad: ad, cfg: cfg, reg: reg}, nil
}

// testCfgs makes k node configs that all list all k health addresses in
// Join (automanaged discovers only listed members).
func testCfgs(t *testing.T, k int) []Config {
	cfgs := make([]Config, k)
	var join []string
	for i := range cfgs {
		cfgs[i] = testCfg(t, fmt.Sprintf("n%d", i+1), nil)
		join = append(join, net.JoinHostPort("127.0.0.1", strconv.Itoa(cfgs[i].HealthPort)))
	}
	for i := range cfgs {
		cfgs[i].Join = join
	}
	return cfgs
}

// startNodes starts the nodes of cfgs concurrently and waits until each sees all.
func startNodes(t *testing.T, natsURL string, cfgs []Config) []*testNode {
	t.Helper()
	k := len(cfgs)
	nodes := make([]*testNode, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = startNode(t, natsURL, cfgs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
	}
	for _, tn := range nodes {
		waitMembers(t, tn.n, k)
	}
	return nodes
}

func waitMembers(t *testing.T, n *Node, k int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("node %s to see %d members", n.cfg.NodeID, k), func() bool {
		return len(n.Members(context.Background())) == k
	})
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClusterPlacementFailoverAndDrain(t *testing.T) {
	ctx := context.Background()
	url := startNATS(t)
	top := t               // nodes started in subtests live as long as the whole test
	cfgs := testCfgs(t, 3) // the third joins later; every node lists it from the start
	nodes := startNodes(t, url, cfgs[:2])

	owners := map[string]string{}
	t.Run("new sessions spread over the members", func(t *testing.T) {
		used := map[string]bool{}
		for i := range 8 {
			sid := fmt.Sprintf("s%d", i)
			m, err := nodes[i%2].n.Place(ctx, sid)
			if err != nil {
				t.Fatal(err)
			}
			owners[sid] = m.ID
			used[m.ID] = true
			got, err := nodes[(i+1)%2].n.Owner(ctx, sid)
			if err != nil || got.ID != m.ID || got.API != "http://api-of-"+m.ID {
				t.Fatalf("Owner(%s) on the other node = %+v, %v; want %s", sid, got, err, m.ID)
			}
		}
		if len(used) < 2 {
			t.Fatalf("8 sessions all placed on %v", used)
		}
	})

	t.Run("placing an existing session keeps its owner", func(t *testing.T) {
		m, err := nodes[1].n.Place(ctx, "s0")
		if err != nil || m.ID != owners["s0"] {
			t.Fatalf("Place(s0) again = %+v, %v; want owner %s", m, err, owners["s0"])
		}
	})

	t.Run("owner is sticky when a member joins", func(t *testing.T) {
		tn, err := startNode(top, url, cfgs[2])
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, tn)
		for _, tn := range nodes {
			waitMembers(t, tn.n, 3)
		}
		for sid, want := range owners {
			for _, tn := range nodes {
				got, err := tn.n.Owner(ctx, sid)
				if err != nil || got.ID != want {
					t.Fatalf("after n3 joined, Owner(%s) on %s = %+v, %v; want %s", sid, tn.cfg.NodeID, got, err, want)
				}
			}
		}
		for i := 8; i < 14; i++ {
			sid := fmt.Sprintf("s%d", i)
			m, err := nodes[0].n.Place(ctx, sid)
			if err != nil {
				t.Fatal(err)
			}
			owners[sid] = m.ID
		}
	})

	t.Run("a crashed member's sessions are adopted by exactly one survivor each", func(t *testing.T) {
		victim := nodes[0]
		var lost []string
		for sid, o := range owners {
			if o == victim.cfg.NodeID {
				lost = append(lost, sid)
			}
		}
		if len(lost) == 0 {
			t.Fatalf("node %s owns none of %v", victim.cfg.NodeID, owners)
		}
		victim.n.stop(false)
		survivors := nodes[1:]
		eventually(t, 60*time.Second, "the crashed member's sessions to be adopted", func() bool {
			for _, sid := range lost {
				total := 0
				for _, s := range survivors {
					a, _ := s.ad.counts(sid)
					total += a
				}
				if total == 0 {
					return false
				}
			}
			return true
		})
		for _, sid := range lost {
			total := 0
			for _, s := range survivors {
				a, _ := s.ad.counts(sid)
				total += a
			}
			m, err := survivors[0].n.Owner(ctx, sid)
			if err != nil || m.ID == victim.cfg.NodeID {
				t.Fatalf("Owner(%s) after the crash = %+v, %v", sid, m, err)
			}
			if total != 1 {
				t.Fatalf("session %s adopted %d times, want exactly once", sid, total)
			}
			owners[sid] = m.ID
		}
		if f := survivors[0].n.Stats().Failovers + survivors[1].n.Stats().Failovers; f != int64(len(lost)) {
			t.Errorf("failovers counted %d, want %d", f, len(lost))
		}
		exported := metric(t, survivors[0].reg, "corral_cluster_failovers_total", "reason", "member_dead") +
			metric(t, survivors[1].reg, "corral_cluster_failovers_total", "reason", "member_dead")
		if exported != float64(len(lost)) {
			t.Errorf("corral_cluster_failovers_total{reason=member_dead} sums to %v, want %d", exported, len(lost))
		}
		for _, s := range survivors {
			eventually(t, 20*time.Second, "the members gauge to show the 2 survivors", func() bool {
				return metric(t, s.reg, "corral_cluster_members") == 2 &&
					metric(t, s.reg, "corral_cluster_sessions", "node", victim.cfg.NodeID) == 0
			})
		}
		nodes = survivors
	})

	t.Run("drain moves a node's sessions to the other members", func(t *testing.T) {
		from, to := nodes[1], nodes[0]
		var moving []string
		for sid, o := range owners {
			if o == from.cfg.NodeID {
				moving = append(moving, sid)
			}
		}
		if len(moving) == 0 {
			t.Fatalf("node %s owns none of %v", from.cfg.NodeID, owners)
		}
		if err := to.n.Drain(ctx, from.cfg.NodeID); err != nil {
			t.Fatal(err)
		}
		for _, sid := range moving {
			m, err := to.n.Owner(ctx, sid) // the drainer's own view; others' mirrors follow the bucket a moment later
			if err != nil || m.ID != to.cfg.NodeID {
				t.Fatalf("after drain Owner(%s) = %+v, %v; want %s", sid, m, err, to.cfg.NodeID)
			}
			if _, r := from.ad.counts(sid); r != 1 {
				t.Errorf("session %s released %d times on the drained node, want 1", sid, r)
			}
			if a, _ := to.ad.counts(sid); a < 1 {
				t.Errorf("session %s not adopted on %s", sid, to.cfg.NodeID)
			}
		}
		if got := metric(t, to.reg, "corral_cluster_failovers_total", "reason", "drain"); got != float64(len(moving)) {
			t.Errorf("corral_cluster_failovers_total{reason=drain} = %v, want %d", got, len(moving))
		}
		if _, err := to.n.Place(ctx, "after-drain"); err != nil {
			t.Fatal(err)
		}
		if m, _ := to.n.Owner(ctx, "after-drain"); m.ID == from.cfg.NodeID {
			t.Errorf("a new session was placed on the draining node")
		}
	})

	t.Run("forget drops the placement", func(t *testing.T) {
		if err := nodes[0].n.Forget(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		if _, err := nodes[0].n.Owner(ctx, "s1"); err == nil || !strings.Contains(err.Error(), "no member owns") {
			t.Fatalf("Owner after Forget = %v, want ErrNoSession", err)
		}
	})

	t.Run("graceful shutdown leaves the cluster", func(t *testing.T) {
		for _, tn := range nodes {
			_ = tn.n.Shutdown(ctx)
		}
	})
}

func TestStartRefusesBadMembership(t *testing.T) {
	url := startNATS(t)
	t.Run("a second member with the same node id is refused", func(t *testing.T) {
		first, second := testCfg(t, "dup", nil), testCfg(t, "dup", nil)
		join := []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(first.HealthPort)),
			net.JoinHostPort("127.0.0.1", strconv.Itoa(second.HealthPort))}
		first.Join, second.Join = join, join
		first.StartAlone = true
		first.JoinTimeout = time.Second
		a, err := startNode(t, url, first)
		if err != nil {
			t.Fatal(err)
		}
		defer a.n.Shutdown(context.Background())
		_, err = startNode(t, url, second)
		if err == nil || !strings.Contains(err.Error(), `node id "dup" is already used`) {
			t.Fatalf("second start with the same node id: err = %v", err)
		}
	})
	t.Run("a join list with no reachable member fails after the join timeout", func(t *testing.T) {
		cfg := testCfg(t, "lonely", []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))})
		cfg.JoinTimeout = 2 * time.Second
		_, err := startNode(t, url, cfg)
		if err == nil || !strings.Contains(err.Error(), "no member of --join answered within 2s") ||
			!strings.Contains(err.Error(), "start_alone") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("start_alone starts a cluster of one when no join member answers", func(t *testing.T) {
		cfg := testCfg(t, "alone", []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))})
		cfg.JoinTimeout, cfg.StartAlone = time.Second, true
		tn, err := startNode(t, url, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tn.n.Place(context.Background(), "x"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a busy remote port is named in the error", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		cfg := testCfg(t, "busy", nil)
		cfg.RemotePort = l.Addr().(*net.TCPAddr).Port
		_, err = startNode(t, url, cfg)
		if err == nil || !strings.Contains(err.Error(), "remote port") || !strings.Contains(err.Error(), "not free") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad config is refused with what to set", func(t *testing.T) {
		for name, cfg := range map[string]Config{
			"no node id":         {RemotePort: 1, HealthPort: 2},
			"unknown provider":   {NodeID: "a", Provider: "consul", RemotePort: 1, HealthPort: 2},
			"etcd, no endpoints": {NodeID: "a", Provider: "etcd", RemotePort: 1},
		} {
			nc, err := nats.Connect(url)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Start(context.Background(), cfg, newRecAdopter(), nc)
			nc.Close()
			if err == nil {
				t.Errorf("%s: started", name)
			}
		}
	})
}

// startEtcd runs a real etcd on loopback ports in a temp dir.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CORRAL_REQUIRE_ETCD") == "1" {
			t.Fatal("CORRAL_REQUIRE_ETCD=1 but no etcd binary on PATH (Debian: apt-get install etcd-server)")
		}
		t.Skip("no etcd binary on PATH (Debian: apt-get install etcd-server); set CORRAL_REQUIRE_ETCD=1 to fail instead")
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--name", "t", "--data-dir", t.TempDir(), "--listen-client-urls", client,
		"--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "t="+peer, "--log-level", "error")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return strings.TrimPrefix(client, "http://")
}

func TestEtcdProviderFormsACluster(t *testing.T) {
	endpoint := startEtcd(t)
	url := startNATS(t)
	var nodes []*testNode
	for _, id := range []string{"e1", "e2"} {
		cfg := testCfg(t, id, nil)
		cfg.Provider, cfg.Etcd, cfg.HealthPort = "etcd", []string{endpoint}, 0
		tn, err := startNode(t, url, cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, tn)
	}
	for _, tn := range nodes {
		waitMembers(t, tn.n, 2)
	}
	m, err := nodes[0].n.Place(context.Background(), "etcd-s")
	if err != nil {
		t.Fatal(err)
	}
	got, err := nodes[1].n.Owner(context.Background(), "etcd-s")
	if err != nil || got.ID != m.ID {
		t.Fatalf("Owner on e2 = %+v, %v; want %s", got, err, m.ID)
	}
	for _, tn := range nodes {
		_ = tn.n.Shutdown(context.Background())
	}
}

// What a member that was frozen past the failure timeout finds when it runs
// again: the others blocked its member id (protoactor's heartbeat check) and
// claimed its sessions. It must notice, rejoin with a new member id, keep the
// sessions nobody took, and release the ones another member took.
func TestDeclaredDeadMemberRejoins(t *testing.T) {
	ctx := context.Background()
	url := startNATS(t)
	nodes := startNodes(t, url, testCfgs(t, 2))
	victim, other := nodes[0], nodes[1]
	var mine []string
	for i := 0; len(mine) < 2; i++ {
		if i > 40 {
			t.Fatalf("40 sessions and node %s owns %d of them", victim.cfg.NodeID, len(mine))
		}
		sid := fmt.Sprintf("r%d", i)
		m, err := victim.n.Place(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID == victim.cfg.NodeID {
			mine = append(mine, sid)
			_ = victim.ad.Adopt(ctx, sid)
		}
	}
	oldID := victim.n.mem().sys.ID
	other.n.mem().c.Remote.BlockList().Block(oldID) // what an expired heartbeat does
	taken, kept := mine[0], mine[1]
	e, err := other.n.kv.Get(ctx, key(taken))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := decodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.n.claim(ctx, rec.rev, rec.owner, victim.cfg.NodeID, true); err != nil {
		t.Fatal(err)
	}

	eventually(t, 30*time.Second, "the victim to rejoin with a new member id", func() bool {
		return victim.n.Stats().Rejoins == 1 && victim.n.mem().sys.ID != oldID
	})
	newID := victim.n.mem().sys.ID
	eventually(t, 10*time.Second, "the taken session to be released on the victim", func() bool {
		_, r := victim.ad.counts(taken)
		return r == 1
	})
	eventually(t, 10*time.Second, "the kept session's record to name the new member id", func() bool {
		e, err := other.n.kv.Get(ctx, key(kept))
		if err != nil {
			return false
		}
		rec, err := decodeEntry(e)
		return err == nil && rec.Member == newID && rec.Node == victim.cfg.NodeID && rec.Epoch == 1
	})
	if _, r := victim.ad.counts(kept); r != 0 {
		t.Errorf("the kept session %s was released %d times", kept, r)
	}
	for _, tn := range nodes {
		waitMembers(t, tn.n, 2)
	}
	m, err := other.n.Owner(ctx, kept)
	if err != nil || m.ID != victim.cfg.NodeID {
		t.Fatalf("Owner(%s) on the other node after the rejoin = %+v, %v; want %s", kept, m, err, victim.cfg.NodeID)
	}
	if m, err := victim.n.Owner(ctx, taken); err != nil || m.ID != other.cfg.NodeID {
		t.Fatalf("Owner(%s) on the victim = %+v, %v; want %s", taken, m, err, other.cfg.NodeID)
	}
	if other.n.Stats().Rejoins != 0 {
		t.Errorf("the member that stayed alive rejoined too")
	}
}

func (a *recAdopter) failNext(sid string, k int) {
	a.mu.Lock()
	a.fail[sid] = k
	a.mu.Unlock()
}

func (a *recAdopter) tries(sid string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attempts[sid]
}

// placeOn places new sessions until one lands on tn and returns its id.
func placeOn(t *testing.T, via, tn *testNode, prefix string) string {
	t.Helper()
	for i := range 40 {
		sid := fmt.Sprintf("%s%d", prefix, i)
		m, err := via.n.Place(context.Background(), sid)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID == tn.cfg.NodeID {
			return sid
		}
	}
	t.Fatalf("40 sessions and none placed on %s", tn.cfg.NodeID)
	return ""
}

func TestFailedAdoptIsRetriedThenHandedOver(t *testing.T) {
	ctx := context.Background()
	url := startNATS(t)
	nodes := startNodes(t, url, testCfgs(t, 2))
	a, b := nodes[0], nodes[1]
	self, ok := a.n.view.member(a.n.mem().sys.ID)
	if !ok {
		t.Fatal("node a is not in its own view")
	}
	t.Run("a failure followed by a success keeps the session on its member", func(t *testing.T) {
		sid := placeOn(t, a, a, "flaky")
		a.ad.failNext(sid, 2)
		if err := a.n.activate(ctx, self, sid); err != nil {
			t.Fatalf("activate after two failures: %v", err)
		}
		if got := a.ad.tries(sid); got != 3 {
			t.Errorf("Adopt called %d times, want 3", got)
		}
		if m, err := b.n.Owner(ctx, sid); err != nil || m.ID != a.cfg.NodeID {
			t.Errorf("Owner(%s) = %+v, %v; want %s", sid, m, err, a.cfg.NodeID)
		}
	})
	t.Run("after the last failure the claim goes to another member", func(t *testing.T) {
		sid := placeOn(t, a, a, "broken")
		a.ad.failNext(sid, 100)
		if err := a.n.activate(ctx, self, sid); err == nil {
			t.Fatal("activate of a session whose Adopt always fails succeeded")
		}
		if got := a.ad.tries(sid); got != 3 {
			t.Errorf("Adopt called %d times, want 3 (WithAdoptRetry)", got)
		}
		eventually(t, 20*time.Second, "the other member to adopt the handed-over session", func() bool {
			n, _ := b.ad.counts(sid)
			return n == 1
		})
		if m, err := b.n.Owner(ctx, sid); err != nil || m.ID != b.cfg.NodeID {
			t.Errorf("Owner(%s) = %+v, %v; want %s", sid, m, err, b.cfg.NodeID)
		}
		if r := a.n.Stats().Rejoins; r != 0 {
			t.Errorf("handing a claim over made the node rejoin %d times (it took its own move for a takeover)", r)
		}
	})
}

// protoactor blocks a member id for good after one missed health poll; the
// member is alive all the same. Its sessions must stay with it, and the
// member that blocked it must heal the split by rejoining.
func TestLiveMemberMissingFromATopologyKeepsItsSessions(t *testing.T) {
	ctx := context.Background()
	url := startNATS(t)
	nodes := startNodes(t, url, testCfgs(t, 3))
	blocker, owner := nodes[0], nodes[1]
	var sids []string
	for range 2 {
		sid := placeOn(t, blocker, owner, fmt.Sprintf("live%d-", len(sids)))
		sids = append(sids, sid)
	}
	ownerID := owner.n.mem().sys.ID
	blocker.n.mem().c.Remote.BlockList().Block(ownerID) // what a missed health poll does
	eventually(t, 10*time.Second, "the blocked member to leave the blocker's topology", func() bool {
		return !blocker.n.view.isAlive(ownerID) || blocker.n.Stats().Rejoins > 0
	})
	eventually(t, 60*time.Second, "the blocker to rejoin", func() bool { return blocker.n.Stats().Rejoins == 1 })
	for _, tn := range nodes {
		waitMembers(t, tn.n, 3)
	}
	for _, sid := range sids {
		e, err := owner.n.kv.Get(ctx, key(sid))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := decodeEntry(e)
		if err != nil || rec.Member != ownerID || rec.Epoch != 1 {
			t.Errorf("session %s of the live member: record %+v, %v; want it unchanged on member %s", sid, rec.owner, err, ownerID)
		}
		if m, err := blocker.n.Owner(ctx, sid); err != nil || m.ID != owner.cfg.NodeID {
			t.Errorf("Owner(%s) on the rejoined blocker = %+v, %v; want %s", sid, m, err, owner.cfg.NodeID)
		}
	}
	for _, tn := range nodes {
		if f := tn.n.Stats().Failovers; f != 0 {
			t.Errorf("node %s counted %d failovers; no member died", tn.cfg.NodeID, f)
		}
	}
	if r := owner.n.Stats().Rejoins; r != 0 {
		t.Errorf("the blocked (live) member rejoined %d times", r)
	}
}
