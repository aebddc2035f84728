package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"corral/metrics"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config is what a node needs to join a cluster.
type Config struct {
	NodeID         string        // stable node id (NODE_ID file or --node-id); the NATS server name too
	Name           string        // cluster name; members with another name are refused
	Host           string        // address the node binds and advertises
	RemotePort     int           // protoactor remote (gRPC)
	HealthPort     int           // automanaged provider's health HTTP
	Join           []string      // host:healthport of every member (self may be included)
	Provider       string        // "automanaged" (default) or "etcd"
	Etcd           []string      // etcd endpoints for Provider "etcd"
	FailureTimeout time.Duration // a member silent this long is dead
	JoinTimeout    time.Duration // how long to wait for a --join member to answer
	StartAlone     bool          // start as a cluster of one when no --join member answers
	APIURL         string        // http://host:port of this node's API
	Capacity       int           // max sessions on this node, 0 = unlimited
}

// Adopter is the engine a node hands sessions to; *actors.Engine is one.
type Adopter interface {
	// Adopt makes this node the session's owner: fence the old owner,
	// load its events, recover it (re-attach or start a fresh sandbox).
	Adopt(ctx context.Context, sid string) error
	// Release stops owning the session without ending it (drain).
	Release(ctx context.Context, sid string) error
	// SessionCount is how many sessions this node owns.
	SessionCount() int
}

// Member is one node of the cluster as the API shows it.
type Member struct {
	ID       string `json:"id"`      // node id
	Address  string `json:"address"` // cluster host:port
	API      string `json:"api"`     // http://host:port
	Status   string `json:"status"`  // "alive"
	Sessions int    `json:"sessions"`
	Self     bool   `json:"-"`
}

// Errors callers can test with errors.Is.
var (
	// ErrNoSession: the placement bucket has no owner for the session (never placed, or forgotten).
	ErrNoSession = errors.New("cluster: no member owns this session")
	// ErrFull: no live member has room for another session (every one is at its capacity).
	ErrFull = errors.New("cluster: every member is at its session capacity")
	// ErrNoMember: no live member can take the session (all others are draining or gone).
	ErrNoMember = errors.New("cluster: no live member can take the session")
)

// Stats are the node's counters since Start (for metrics and tests).
type Stats struct {
	Members   int   // live members in this node's view, self included
	Claims    int64 // placement claims this node won (new sessions, failovers, drains)
	Failovers int64 // sessions this node re-claimed from a dead owner
	Drained   int64 // sessions this node moved away from a draining member
	Rejoins   int64 // times this node found itself declared dead and rejoined with a new member id
}

// Option tunes Start.
type Option func(*options)

type options struct {
	logger        *slog.Logger
	replicas      int
	refresh       time.Duration
	sweep         time.Duration
	adoptAttempts int
	adoptBackoff  time.Duration
	metrics       *metrics.Registry
}

// WithLogger sets the logger; protoactor's own logs go to it too, from level WARN up
// (its INFO lines are per gossip tick and per request). Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithReplicas sets the placement bucket's JetStream replicas. Default:
// min(3, number of distinct members in Join plus self).
func WithReplicas(n int) Option { return func(o *options) { o.replicas = n } }

// WithRefresh sets how often the automanaged provider polls members and this
// node republishes its gossip state (session count). Default 1s.
func WithRefresh(d time.Duration) Option { return func(o *options) { o.refresh = d } }

// WithSweep sets how often the node looks for sessions whose owner is not
// alive: a member counts as dead only once it has been gone for the
// failure timeout, and the next sweep moves its sessions, so the sweep
// period adds to failover time. Default 1s (a sweep reads the in-memory
// mirror of the placement bucket; only dead owners' records are read again).
func WithSweep(d time.Duration) Option { return func(o *options) { o.sweep = d } }

// WithAdoptRetry sets how often a failed Adopt is tried on the member that
// claimed the session (attempts in all, >= 1) and the pause before the
// second try (doubled before each further one, up to 30s). After the last
// failure the claim goes to another live member. Default 4 attempts, 1s.
func WithAdoptRetry(attempts int, backoff time.Duration) Option {
	return func(o *options) { o.adoptAttempts, o.adoptBackoff = attempts, backoff }
}

// WithMetrics exports the node's cluster metrics to r: live members and
// each member's session count (refreshed with the gossip, WithRefresh), and
// the sessions this node took over, by reason ("member_dead", "drain").
// nil (the default) exports nothing.
func WithMetrics(r *metrics.Registry) Option { return func(o *options) { o.metrics = r } }

// Node is this process's membership in the cluster.
type Node struct {
	cfg  Config
	opts options
	log  *slog.Logger
	ad   Adopter
	cur  atomic.Pointer[member] // the protoactor membership; replaced by a rejoin
	kv   jetstream.KeyValue

	ctx    context.Context // lives until Shutdown; Adopt/Release calls and loops use it
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // topology changed: look for dead owners now

	view    *view    // members as gossip and topology show them
	mirror  *mirror  // local copy of the placement bucket
	pending *pending // claims not yet visible in gossip session counts
	health  *healthProbe
	absent  absence // member ids found absent, since when (surelyDead)

	rejoinReq    chan string          // why the others declared this node dead (gossipLoop rejoins)
	exported     map[string]bool      // gossipLoop only: node ids whose session gauge is set
	blockedSince map[string]time.Time // gossipLoop only: live members this member blocked, since when
	ids          sync.Map             // every member id this node created (current, past, one being started)

	released sync.Map // sids released on request (drain): their next owner change is expected

	claims, failovers, drained, rejoins atomic.Int64
	lastBeat                            atomic.Int64 // unix nanos: the gossip loop's last round ended (see waitInTouch)
	rejoining                           atomic.Bool
	// draining: this node was drained (corral node drain, or leaving); it
	// gossips so and takes no new sessions until it restarts.
	draining atomic.Bool
	stopOnce sync.Once
	asyncMu  sync.Mutex // orders goAsync's wg.Add before stop's wg.Wait
	closed   atomic.Bool
}

// Start joins the cluster described by cfg: protoactor member (remote,
// gossip, provider), the placement bucket on nc's JetStream, and the
// failover loops. ad is this node's engine.
func Start(ctx context.Context, cfg Config, ad Adopter, nc *nats.Conn, opts ...Option) (*Node, error) {
	o := options{refresh: time.Second, sweep: time.Second, adoptAttempts: 4, adoptBackoff: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg = withDefaults(cfg)
	if err := validate(cfg, o, ad, nc); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, opts: o, ad: ad, log: o.logger.With("component", "cluster", "node", cfg.NodeID),
		kick: make(chan struct{}, 1), view: newView(cfg.Name), pending: newPending(),
		health:    &healthProbe{every: o.refresh, timeout: min(2*time.Second, cfg.FailureTimeout/2)},
		rejoinReq: make(chan string, 1), blockedSince: map[string]time.Time{}, exported: map[string]bool{}}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.openBucket(ctx, nc); err != nil {
		n.cancel()
		return nil, err
	}
	if err := n.startMember(nil); err != nil {
		n.cancel()
		return nil, err
	}
	n.lastBeat.Store(time.Now().UnixNano())
	n.wg.Add(1)
	go n.gossipLoop()
	if err := n.startMirror(ctx); err != nil {
		n.stop(false)
		return nil, err
	}
	if err := n.join(ctx); err != nil {
		n.stop(false)
		return nil, err
	}
	n.wg.Add(1)
	go n.failoverLoop()
	n.log.Info("cluster member started", "member", n.mem().sys.ID, "address", n.mem().sys.Address(), "members", len(n.view.alive()))
	return n, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Name == "" {
		cfg.Name = "corral"
	}
	if cfg.Provider == "" {
		cfg.Provider = "automanaged"
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.FailureTimeout <= 0 {
		cfg.FailureTimeout = 6 * time.Second
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = 30 * time.Second
	}
	return cfg
}

func validate(cfg Config, o options, ad Adopter, nc *nats.Conn) error {
	switch {
	case cfg.NodeID == "":
		return errors.New("cluster: the node id is empty: set --node-id or [cluster] node_id")
	case ad == nil:
		return errors.New("cluster: no Adopter (the engine) was given to Start")
	case nc == nil:
		return errors.New("cluster: no NATS connection was given to Start (the placement bucket lives in JetStream)")
	case cfg.Provider != "automanaged" && cfg.Provider != "etcd":
		return fmt.Errorf("cluster: unknown provider %q: use \"automanaged\" or \"etcd\"", cfg.Provider)
	case cfg.Provider == "etcd" && len(cfg.Etcd) == 0:
		return errors.New("cluster: provider \"etcd\" needs endpoints: set [cluster] etcd = [\"host:2379\", ...]")
	case cfg.RemotePort <= 0:
		return fmt.Errorf("cluster: remote port %d is not a port: set --cluster-listen HOST:PORT", cfg.RemotePort)
	case cfg.Provider == "automanaged" && cfg.HealthPort <= 0:
		return fmt.Errorf("cluster: health port %d is not a port: set [cluster] health_port or leave it 0 to derive it", cfg.HealthPort)
	case o.adoptAttempts < 1 || o.adoptBackoff < 0:
		return fmt.Errorf("cluster: WithAdoptRetry(%d, %s): attempts must be at least 1 and the backoff not negative", o.adoptAttempts, o.adoptBackoff)
	case cfg.Capacity < 0:
		return fmt.Errorf("cluster: capacity %d is negative: use 0 for unlimited", cfg.Capacity)
	}
	return nil
}

// Self is this node.
func (n *Node) Self() Member {
	return Member{ID: n.cfg.NodeID, Address: n.mem().sys.Address(), API: n.cfg.APIURL, Status: "alive",
		Sessions: n.ad.SessionCount(), Self: true}
}

// Members lists the cluster's live members (those whose gossip state arrived).
func (n *Node) Members(ctx context.Context) []Member {
	if n.closed.Load() {
		return []Member{n.Self()}
	}
	n.view.refresh(n.mem().c, n.cfg.Name, n.log)
	ms := n.view.alive()
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, n.asMember(m))
	}
	return out
}

// reportMetrics exports the view (gossipLoop): members, and each member's
// session count; the per-node gauges are reset when the set of members
// changes so a departed node's series does not linger.
func (n *Node) reportMetrics() {
	r := n.opts.metrics
	if r == nil {
		return
	}
	ms := n.view.alive()
	r.SetClusterMembers(len(ms))
	same := len(ms) == len(n.exported)
	for _, m := range ms {
		same = same && n.exported[m.ID]
	}
	if !same {
		r.ResetClusterSessions()
		clear(n.exported)
	}
	for _, m := range ms {
		if m.memberID == n.mem().sys.ID {
			m.Sessions = n.ad.SessionCount()
		}
		r.SetClusterSessions(m.ID, m.Sessions)
		n.exported[m.ID] = true
	}
}

// failedOver counts one session this node took over (reason "member_dead" or "drain").
func (n *Node) failedOver(reason string) {
	if reason == "drain" {
		n.drained.Add(1)
	} else {
		n.failovers.Add(1)
	}
	n.opts.metrics.Failover(reason)
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{Members: len(n.view.alive()), Claims: n.claims.Load(),
		Failovers: n.failovers.Load(), Drained: n.drained.Load(), Rejoins: n.rejoins.Load()}
}

// Shutdown drains this node (within ctx) and leaves the cluster gracefully.
// The returned error says which sessions could not be moved; the node leaves anyway.
func (n *Node) Shutdown(ctx context.Context) error {
	if n.closed.Load() {
		return nil
	}
	err := n.Drain(ctx, n.cfg.NodeID)
	n.stop(true)
	if err != nil {
		return fmt.Errorf("cluster: left the cluster, but draining node %s failed: %w", n.cfg.NodeID, err)
	}
	return nil
}

// stop ends the loops and the protoactor member. graceful=false is what a
// crash looks like to the others: no "left" gossip, no deregistration; the
// health endpoint and remote just stop answering.
func (n *Node) stop(graceful bool) {
	n.stopOnce.Do(func() {
		n.closed.Store(true)
		n.asyncMu.Lock()
		n.cancel()
		n.asyncMu.Unlock()
		n.wg.Wait()
		n.mirror.stop()
		n.stopMember(n.mem(), graceful)
	})
}
