package metrics

import "github.com/prometheus/client_golang/prometheus"

// clusterCollectors are the collectors of a clustered node (corral serve
// --join); a single node leaves them at zero.
type clusterCollectors struct {
	members        prometheus.Gauge
	nodeSessions   *prometheus.GaugeVec
	routed         *prometheus.CounterVec
	failovers      *prometheus.CounterVec
	replicationLag prometheus.Gauge
	replicasDown   prometheus.Gauge
}

func newClusterCollectors() clusterCollectors {
	return clusterCollectors{
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "corral_cluster_members", Help: "Live members of the cluster as this node sees them.",
		}),
		nodeSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "corral_cluster_sessions", Help: "Sessions owned by each member, as gossiped (by node id).",
		}, []string{"node"}),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corral_cluster_routed_requests_total", Help: "API requests this node forwarded to the session's owner, by owner node id.",
		}, []string{"node"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corral_cluster_failovers_total", Help: "Sessions this node took over, by reason (member_dead, drain).",
		}, []string{"reason"}),
		replicationLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "corral_cluster_replication_lag", Help: "Operations the most lagging replica of the event stream is behind its leader (0 when all are current).",
		}),
		replicasDown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "corral_cluster_replicas_offline", Help: "Replicas of the event stream that do not answer its leader.",
		}),
	}
}

func (c clusterCollectors) all() []prometheus.Collector {
	return []prometheus.Collector{c.members, c.nodeSessions, c.routed, c.failovers, c.replicationLag, c.replicasDown}
}

// SetClusterMembers sets the number of live members.
func (r *Registry) SetClusterMembers(n int) {
	if r != nil {
		r.cluster.members.Set(float64(n))
	}
}

// SetClusterSessions sets the number of sessions node owns. Callers reset
// the whole vector with ResetClusterSessions when membership changes, so a
// departed node's series does not linger.
func (r *Registry) SetClusterSessions(node string, n int) {
	if r != nil {
		r.cluster.nodeSessions.WithLabelValues(node).Set(float64(n))
	}
}

// ResetClusterSessions drops every node's session gauge.
func (r *Registry) ResetClusterSessions() {
	if r != nil {
		r.cluster.nodeSessions.Reset()
	}
}

// RoutedRequest counts one request forwarded to owner node.
func (r *Registry) RoutedRequest(node string) {
	if r != nil {
		r.cluster.routed.WithLabelValues(node).Inc()
	}
}

// Failover counts one session this node took over, by reason.
func (r *Registry) Failover(reason string) {
	if r != nil {
		r.cluster.failovers.WithLabelValues(reason).Inc()
	}
}

// SetReplication sets how far the most lagging replica of the event
// stream is behind its leader, and how many replicas are offline.
func (r *Registry) SetReplication(lag uint64, offline int) {
	if r != nil {
		r.cluster.replicationLag.Set(float64(lag))
		r.cluster.replicasDown.Set(float64(offline))
	}
}
