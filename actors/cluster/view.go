package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// viewMember is a live member with what its gossip state says.
type viewMember struct {
	Member
	memberID string
	capacity int
	draining bool
}

// view is this node's picture of the cluster: the topology (from protoactor's
// provider, via the event stream) joined with each member's gossip state.
// Liveness is the topology alone; node ids and API URLs come from gossip.
type view struct {
	name     string // cluster name: the etcd provider's member ids are "<name>@<member id>"
	mu       sync.Mutex
	topo     map[string]string      // member id -> host:port
	info     map[string]gossipState // member id -> its gossip state
	draining map[string]bool        // member ids this node drained (their gossip may lag)
	warned   map[string]bool        // member ids already logged as refused
	now      func() time.Time       // the local clock (tests set it)
}

// clockSkewLimit is how far a member's clock may be from this node's before
// it is logged. A state is read within a gossip round or two (a second or
// so) of being published, which this leaves room for.
const clockSkewLimit = 5 * time.Second

func newView(name string) *view {
	return &view{name: name, topo: map[string]string{}, info: map[string]gossipState{}, draining: map[string]bool{}, warned: map[string]bool{}, now: time.Now}
}

func (v *view) setTopology(ms []*protocluster.Member) {
	topo := make(map[string]string, len(ms))
	for _, m := range ms {
		// the etcd provider names members "<cluster>@<member id>"; gossip
		// and remote use the bare member id (ActorSystem.ID)
		topo[strings.TrimPrefix(m.Id, v.name+"@")] = m.Address()
	}
	v.mu.Lock()
	v.topo = topo
	v.mu.Unlock()
}

// reset forgets the topology and gossip of a membership being replaced.
func (v *view) reset() {
	v.mu.Lock()
	v.topo, v.info = map[string]string{}, map[string]gossipState{}
	v.mu.Unlock()
}

// isAlive: memberID is in the topology, or is a past member id of a member
// in it (that node rejoined and has not rewritten its records yet).
func (v *view) isAlive(memberID string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.resolveLocked(memberID)
	return ok
}

// resolveLocked maps memberID to the live member id that answers for it.
func (v *view) resolveLocked(memberID string) (string, bool) {
	if _, ok := v.topo[memberID]; ok {
		return memberID, true
	}
	for id, st := range v.info {
		if _, alive := v.topo[id]; alive && slices.Contains(st.Past, memberID) {
			return id, true
		}
	}
	return "", false
}

func (v *view) address(memberID string) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	id, ok := v.resolveLocked(memberID)
	return v.topo[id], ok
}

func (v *view) topologyOthers(self string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for id := range v.topo {
		if id != self {
			out = append(out, id)
		}
	}
	return out
}

// setDraining marks member memberID as drained until its own gossip says
// so; a restarted node is a new member and is not marked.
func (v *view) setDraining(memberID string) {
	v.mu.Lock()
	v.draining[memberID] = true
	v.mu.Unlock()
}

func (v *view) member(memberID string) (viewMember, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	id, ok := v.resolveLocked(memberID)
	if !ok {
		return viewMember{}, false
	}
	return v.memberLocked(id)
}

func (v *view) memberLocked(id string) (viewMember, bool) {
	addr, alive := v.topo[id]
	st, known := v.info[id]
	if !alive || !known {
		return viewMember{}, false
	}
	return viewMember{Member: Member{ID: st.Node, Address: addr, API: st.API, Status: "alive", Sessions: st.Sessions},
		memberID: id, capacity: st.Capacity, draining: st.Draining || v.draining[id]}, true
}

// alive lists live members whose gossip state arrived, by node id.
func (v *view) alive() []viewMember {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []viewMember
	for id := range v.topo {
		if m, ok := v.memberLocked(id); ok {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// refresh reads every member's gossip state. Members of another cluster
// name are left out (and logged once).
func (v *view) refresh(c *protocluster.Cluster, cluster string, log *slog.Logger) {
	state, err := c.Gossip.GetState(stateKey)
	if err != nil {
		return
	}
	v.setGossip(state, cluster, log)
}

// setGossip replaces the members' gossip states with state (member id ->
// its stateKey value); unreadable ones and other clusters' are left out.
func (v *view) setGossip(state map[string]*protocluster.GossipKeyValue, cluster string, log *slog.Logger) {
	info := make(map[string]gossipState, len(state))
	for id, kv := range state {
		var s wrapperspb.StringValue
		var st gossipState
		if kv.GetValue() == nil || kv.GetValue().UnmarshalTo(&s) != nil || json.Unmarshal([]byte(s.Value), &st) != nil {
			continue
		}
		if st.Cluster != cluster {
			v.warnOnce(log, id, "a member of another cluster is ignored", "member", id, "cluster", st.Cluster, "want", cluster)
			continue
		}
		info[id] = st
	}
	v.mu.Lock()
	prev := v.info
	v.info = info
	v.mu.Unlock()
	v.checkClocks(prev, info, log)
}

// checkClocks logs, once per member, a clock that is off by more than
// clockSkewLimit. Only a newly published state is compared (an old one
// gossiped again, e.g. a paused member's, would look skewed). Nothing in the
// cluster depends on the members' clocks agreeing (failure detection uses
// local timers, ownership compare-and-set, JetStream Raft), but a session's
// event timestamps come from its owner's clock.
func (v *view) checkClocks(prev, cur map[string]gossipState, log *slog.Logger) {
	now := v.now().UnixMilli()
	for id, st := range cur {
		if st.Time == 0 || prev[id].Time == st.Time {
			continue
		}
		off := time.Duration(st.Time-now) * time.Millisecond
		if off > clockSkewLimit || off < -clockSkewLimit {
			v.warnOnce(log, "clock:"+id, "a member's clock is off from this node's; the event timestamps of the sessions it owns will be too (run NTP on every node)",
				"member", id, "node", st.Node, "offset", off.Round(time.Second).String())
		}
	}
}

func (v *view) warnOnce(log *slog.Logger, id, msg string, args ...any) {
	v.mu.Lock()
	seen := v.warned[id]
	v.warned[id] = true
	v.mu.Unlock()
	if !seen {
		log.Warn(msg, args...)
	}
}

// warnFilter passes protoactor's records from WARN up: its INFO lines come
// per gossip tick, per topology change and per placement. The automanaged
// provider's failed health poll of a member that is down is an ERROR each
// second until the member is back; it is kept at DEBUG (this package logs
// the member leaving and joining).
type warnFilter struct{ h slog.Handler }

// pollFailure is the automanaged provider's message for a failed health poll.
const pollFailure = "Bad connection to the node health status"

func (f warnFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && f.h.Enabled(ctx, l)
}

func (f warnFilter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == pollFailure {
		if !f.h.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return f.h.Handle(ctx, r)
}
func (f warnFilter) WithAttrs(a []slog.Attr) slog.Handler { return warnFilter{f.h.WithAttrs(a)} }
func (f warnFilter) WithGroup(g string) slog.Handler      { return warnFilter{f.h.WithGroup(g)} }
