package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/remote"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	sessionKind = "session"
	stateKey    = "corral-node" // gossip key of this package's per-member state
	etcdBaseKey = "/corral"
)

// gossipState is what every member tells the others about itself.
type gossipState struct {
	Node     string `json:"node"`
	API      string `json:"api"`
	Sessions int    `json:"sessions"`
	Capacity int    `json:"capacity"`
	Cluster  string `json:"cluster"`
	Draining bool   `json:"draining"`
	// Past are this node's member ids before a rejoin: placement records
	// naming them belong to this live member until it rewrote them (reown),
	// so the others must not take them for a dead member's.
	Past []string `json:"past,omitempty"`
	// Time is the member's wall clock when it published this state (unix
	// ms), to warn about members whose clock is off (event timestamps
	// come from the owner's clock).
	Time int64 `json:"time,omitempty"`
}

// member is one protoactor membership of this node: an actor system (its id
// is the member id) with its remote, gossip and provider. A node the others
// declared dead replaces it with a new one (rejoin.go); the Node, its engine
// and its API stay.
type member struct {
	sys     *actor.ActorSystem
	c       *protocluster.Cluster
	lookup  *lookup
	started time.Time
	retired atomic.Bool // replaced by a rejoin: its events no longer update the view
	stopped sync.Once   // a failed rejoin leaves a stopped member current; Shutdown must not stop it twice
}

// mem is the current membership.
func (n *Node) mem() *member { return n.cur.Load() }

// startMember builds an actor system and starts a protoactor member with it.
// protoactor panics on start errors (port in use, etcd unreachable): the
// panic is turned into an error here so a bad config never kills the process.
//
// prepare (optional) runs with the new member id before the member starts
// (a rejoin moves its placement records to it before the others see it).
func (n *Node) startMember(prepare func(memberID string)) (err error) {
	if err := checkPorts(n.cfg); err != nil {
		return err
	}
	plog := slog.New(warnFilter{n.opts.logger.Handler()}).With("component", "protoactor")
	m := &member{}
	m.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return plog }))
	n.ids.Store(m.sys.ID, true)
	provider, err := n.provider()
	if err != nil {
		return err
	}
	rcfg := remote.Configure(n.cfg.Host, n.cfg.RemotePort, remote.WithEndpointWriterQueueSize(4096))
	m.lookup = &lookup{n: n, m: m}
	kind := protocluster.NewKind(sessionKind, actor.PropsFromProducer(func() actor.Actor { return &grain{n: n, m: m} }))
	ccfg := protocluster.Configure(n.cfg.Name, provider, m.lookup, rcfg,
		protocluster.WithKinds(kind), protocluster.WithHeartbeatExpiration(n.cfg.FailureTimeout))
	m.c = protocluster.New(m.sys, ccfg)
	// Subscribed before StartMember so the first topology is not missed. The
	// handler runs inline on the publisher (under the member list's lock):
	// it only copies the member list and wakes the failover loop.
	m.sys.EventStream.Subscribe(func(ev any) {
		if !m.retired.Load() {
			n.onEvent(ev)
		}
	})
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cluster: starting the member on %s:%d (%s provider) failed: %v", n.cfg.Host, n.cfg.RemotePort, n.cfg.Provider, r)
			m.retired.Store(true)
			abortMember(m)
		}
	}()
	if prepare != nil {
		prepare(m.sys.ID)
	}
	m.started = time.Now()
	m.c.StartMember()
	n.cur.Store(m)
	n.publishState(n.draining.Load())
	return nil
}

// abortMember undoes a start that panicked halfway; each step may itself
// panic on the half-built cluster, which is ignored.
func abortMember(m *member) {
	steps := []func(){
		func() { _ = m.c.Config.ClusterProvider.Shutdown(false) },
		func() { m.lookup.Shutdown() },
		func() { m.c.Gossip.Shutdown() },
		func() { m.sys.Shutdown() },
		func() { m.c.Remote.Shutdown(false) },
	}
	for _, s := range steps {
		func() {
			defer func() { _ = recover() }()
			s()
		}()
	}
}

func (n *Node) provider() (protocluster.ClusterProvider, error) {
	if n.cfg.Provider == "etcd" {
		p, err := etcd.NewWithConfig(etcdBaseKey, clientv3.Config{Endpoints: n.cfg.Etcd, DialTimeout: n.cfg.JoinTimeout})
		if err != nil {
			return nil, fmt.Errorf("cluster: etcd client for %v: %w", n.cfg.Etcd, err)
		}
		return p, nil
	}
	hosts := append([]string{net.JoinHostPort(n.cfg.Host, strconv.Itoa(n.cfg.HealthPort))}, n.otherJoins()...)
	return automanaged.NewWithConfig(n.opts.refresh, n.cfg.HealthPort, hosts...), nil
}

// otherJoins is cfg.Join without this node's own health address (a node in
// its own --join list is fine) and without duplicates.
func (n *Node) otherJoins() []string {
	var out []string
	for _, j := range n.cfg.Join {
		j = strings.TrimSpace(j)
		if j == "" || slices.Contains(out, j) || isSelf(j, n.cfg.Host, n.cfg.HealthPort) {
			continue
		}
		out = append(out, j)
	}
	return out
}

// isSelf: the health server binds every interface, so any local address
// with this node's health port is this node.
func isSelf(hostport, host string, port int) bool {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil || p != strconv.Itoa(port) {
		return false
	}
	if h == host || h == "" || h == "localhost" {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupHost(ctx, h)
	if err != nil {
		return false
	}
	local, _ := net.InterfaceAddrs()
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			continue
		}
		if ip.IsLoopback() || ip.IsUnspecified() {
			return true
		}
		for _, a := range local {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// checkPorts fails with a clear message before protoactor panics on a busy port.
func checkPorts(cfg Config) error {
	try := func(addr, what, key string) error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("cluster: the %s port %s is not free (%w): pick another --cluster-listen port or set [cluster] %s", what, addr, err, key)
		}
		return l.Close()
	}
	if err := try(net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.RemotePort)), "remote", "remote_port"); err != nil {
		return err
	}
	if cfg.Provider == "automanaged" {
		// the automanaged provider binds 0.0.0.0:<health port>
		return try(net.JoinHostPort("0.0.0.0", strconv.Itoa(cfg.HealthPort)), "health", "health_port")
	}
	return nil
}

func (n *Node) onEvent(ev any) {
	t, ok := ev.(*protocluster.ClusterTopology)
	if !ok {
		return
	}
	n.view.setTopology(t.Members)
	for _, m := range t.Joined {
		n.log.Info("cluster member joined", "member", m.Id, "address", m.Address())
	}
	for _, m := range t.Left {
		n.log.Warn("cluster member left (its sessions move once it has been gone for failure_timeout)", "member", m.Id, "address", m.Address())
	}
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// join waits until another --join member is in the topology, then refuses a
// second member with this node id.
func (n *Node) join(ctx context.Context) error {
	others := n.otherJoins()
	if n.cfg.Provider == "automanaged" && len(others) > 0 {
		if err := n.waitOthers(ctx, others); err != nil {
			return err
		}
	}
	return n.checkDuplicate(ctx)
}

func (n *Node) waitOthers(ctx context.Context, others []string) error {
	deadline := time.Now().Add(n.cfg.JoinTimeout)
	for len(n.view.topologyOthers(n.mem().sys.ID)) == 0 {
		if time.Now().After(deadline) {
			why := probeAll(others, n.cfg.Name)
			if n.cfg.StartAlone {
				n.log.Warn("no --join member answered; starting alone (start_alone)", "timeout", n.cfg.JoinTimeout, "join", why)
				return nil
			}
			return fmt.Errorf("cluster: no member of --join answered within %s: %s; start one with itself in --join or set [cluster] start_alone = true",
				n.cfg.JoinTimeout, why)
		}
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("cluster: joining was cancelled: %w", err)
		}
	}
	for _, j := range others {
		if why := probe(j, n.cfg.Name); strings.Contains(why, "cluster name") {
			n.log.Warn("a --join member belongs to another cluster and is ignored", "member", j, "why", why)
		}
	}
	return nil
}

// probeAll says, per join address, why it is not a member.
func probeAll(others []string, name string) string {
	var parts []string
	for _, j := range others {
		parts = append(parts, j+": "+probe(j, name))
	}
	return strings.Join(parts, "; ")
}

func probe(hostport, name string) string {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + hostport + "/_health")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var nm automanaged.NodeModel
	if err := json.NewDecoder(resp.Body).Decode(&nm); err != nil {
		return "answered, but not as a cluster member: " + err.Error()
	}
	if nm.ClusterName != name {
		return fmt.Sprintf("answered with cluster name %q, not %q (set the same [cluster] name on every node)", nm.ClusterName, name)
	}
	return "answered (member " + nm.ID + ")"
}

// checkDuplicate waits (bounded) for every member's gossip state and fails
// when another live member already uses this node id.
func (n *Node) checkDuplicate(ctx context.Context) error {
	deadline := time.Now().Add(min(n.cfg.JoinTimeout, 5*time.Second))
	for {
		n.view.refresh(n.mem().c, n.cfg.Name, n.log)
		missing := false
		for _, id := range n.view.topologyOthers(n.mem().sys.ID) {
			m, ok := n.view.member(id)
			if !ok {
				missing = true
				continue
			}
			if m.ID == n.cfg.NodeID {
				return fmt.Errorf("cluster: node id %q is already used by the live member at %s (API %s): give this node another --node-id (or [cluster] node_id)",
					n.cfg.NodeID, m.Address, m.API)
			}
		}
		if !missing || time.Now().After(deadline) {
			return nil
		}
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("cluster: joining was cancelled: %w", err)
		}
	}
}

func (n *Node) publishState(draining bool) {
	st := gossipState{Node: n.cfg.NodeID, API: n.cfg.APIURL, Sessions: n.ad.SessionCount(),
		Capacity: n.cfg.Capacity, Cluster: n.cfg.Name, Draining: draining, Time: time.Now().UnixMilli()}
	cur := n.mem().sys.ID
	n.ids.Range(func(k, _ any) bool {
		if k.(string) != cur {
			st.Past = append(st.Past, k.(string))
		}
		return true
	})
	slices.Sort(st.Past)
	b, _ := json.Marshal(st)
	n.mem().c.Gossip.SetState(stateKey, wrapperspb.String(string(b)))
}

func (n *Node) stopMember(m *member, graceful bool) {
	m.retired.Store(true)
	m.stopped.Do(func() {
		if graceful {
			m.c.Shutdown(true)
			return
		}
		// What a crash looks like to the others: the health endpoint and the
		// remote stop answering; no "gracefully left" gossip, no deregistration.
		_ = m.c.Config.ClusterProvider.Shutdown(false)
		m.c.Gossip.Shutdown()
		m.lookup.Shutdown()
		m.sys.Shutdown()
		m.c.Remote.Shutdown(false)
	})
}

// pause waits d or until ctx ends (polling with a deadline, never as synchronisation).
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
