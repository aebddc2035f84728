package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"corral/actors/cluster"
	"corral/transport/api"
)

// clusterUsage is the cluster part of `corral serve --help`.
const clusterUsage = `
Cluster (several serve processes, one API: README "Cluster"):
  --join turns cluster mode on; it needs --cluster-listen and --data. The
  same --join list on every node is fine, and so is a node in its own list.
  Ports of --cluster-listen HOST:P (each overridable in [cluster]):
    P    protoactor remote (remote_port)
    P+1  membership health HTTP, GET /_health (health_port)
    P+2  embedded NATS client port (nats_port)
    P+3  embedded NATS route port; routes go to every --join HOST:(P+3) (nats_route_port)
  --data DIR holds DIR/events (this node's cache of its sessions),
  DIR/jetstream (the replicated event store) and DIR/NODE_ID (the node id,
  written once: --node-id, else <hostname>-<P>). SIGTERM moves this node's
  sessions to the others within [cluster] drain_timeout, then stops.
`

// clusterFlagValues are the cluster flags of `corral serve`.
type clusterFlagValues struct {
	listen, join, data, nodeID *string
}

func clusterFlags(fs *flag.FlagSet) clusterFlagValues {
	return clusterFlagValues{
		listen: fs.String("cluster-listen", "", "cluster mode: this node's cluster address HOST:P, which the others dial; uses ports P to P+3 (default [cluster] listen)"),
		join:   fs.String("join", "", "cluster mode: other members' --cluster-listen addresses, HOST:P[,HOST:P...] (default [cluster] join; without it serve is a single node)"),
		data:   fs.String("data", "", "cluster mode: the node's data directory (events cache, JetStream store, NODE_ID) (default [cluster] data)"),
		nodeID: fs.String("node-id", "", "cluster mode: the node's id, kept in DATA/NODE_ID (default [cluster] node_id, else <hostname>-<P>)"),
	}
}

// apply lets the flags that were given override the file and environment.
func (f clusterFlagValues) apply(c *clusterConfig) {
	if *f.listen != "" {
		c.Listen = *f.listen
	}
	if *f.join != "" {
		c.Join = splitList(*f.join)
	}
	if *f.data != "" {
		c.Data = *f.data
	}
	if *f.nodeID != "" {
		c.NodeID = *f.nodeID
	}
}

// clusterMember is the part of *cluster.Node serve stops with.
type clusterMember interface {
	Shutdown(ctx context.Context) error
}

// leave drains this node (within timeout) and leaves the cluster; a
// single node has nothing to do.
func (st *serveStack) leave(timeout time.Duration, stderr io.Writer) {
	if st.node == nil {
		return
	}
	fmt.Fprintf(stderr, "corral serve: moving this node's sessions to the other members (up to %s)\n", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := st.node.Shutdown(ctx); err != nil {
		fmt.Fprintf(stderr, "corral serve: leaving the cluster: %v (sessions not moved fail over to the other members)\n", err)
	}
	st.node = nil
}

// clusterRouter adapts *cluster.Node to api.Router (transport/api does not
// import actors/cluster).
type clusterRouter struct{ n *cluster.Node }

func apiMember(m cluster.Member) api.ClusterMember {
	return api.ClusterMember{ID: m.ID, Address: m.Address, API: m.API, Status: m.Status, Sessions: m.Sessions}
}

// apiError maps the cluster's errors onto the API's: no owner is a 404,
// no member with room a full queue (503 queue_full).
func apiError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrNoSession):
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case errors.Is(err, cluster.ErrFull):
		return fmt.Errorf("%w: %w", api.ErrQueueFull, err)
	}
	return err
}

func (r clusterRouter) Owner(ctx context.Context, sid string) (api.ClusterMember, error) {
	m, err := r.n.Owner(ctx, sid)
	return apiMember(m), apiError(err)
}

func (r clusterRouter) Place(ctx context.Context, sid string) (api.ClusterMember, error) {
	m, err := r.n.Place(ctx, sid)
	return apiMember(m), apiError(err)
}

func (r clusterRouter) Members(ctx context.Context) []api.ClusterMember {
	ms := r.n.Members(ctx)
	out := make([]api.ClusterMember, len(ms))
	for i, m := range ms {
		out[i] = apiMember(m)
	}
	return out
}

func (r clusterRouter) Self() api.ClusterMember { return apiMember(r.n.Self()) }

// Drain moves node nodeID's sessions elsewhere (POST
// /api/cluster/nodes/{id}/drain); a node not in the cluster is a 404.
func (r clusterRouter) Drain(ctx context.Context, nodeID string) error {
	known := slices.ContainsFunc(r.n.Members(ctx), func(m cluster.Member) bool { return m.ID == nodeID })
	if !known {
		return fmt.Errorf("%w: no member %q in the cluster (corral node list shows them)", api.ErrNotFound, nodeID)
	}
	return r.n.Drain(ctx, nodeID)
}

// Forget drops a deleted session's placement.
func (r clusterRouter) Forget(ctx context.Context, sid string) error { return r.n.Forget(ctx, sid) }

// advertisedAPI is the API URL other members reach this node at: the
// API's bound address, with a wildcard host replaced by the cluster host.
func advertisedAPI(apiAddr, clusterHost string) string {
	host, port, err := net.SplitHostPort(apiAddr)
	if err != nil {
		return "http://" + apiAddr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = clusterHost
	}
	return "http://" + net.JoinHostPort(host, port)
}

// shiftPorts returns addrs (HOST:P) with each port moved by off.
func shiftPorts(addrs []string, off int) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		n, _ := strconv.Atoi(p)
		out = append(out, net.JoinHostPort(h, strconv.Itoa(n+off)))
	}
	return out
}

// joinErrorHint explains a failed join for the operator.
func joinErrorHint(c clusterConfig) string {
	return fmt.Sprintf("no member of --join %s answered within [cluster] join_timeout = %s; start them, check the addresses and that every node uses [cluster] name = %q (or set [cluster] start_alone = true to start a cluster of one)",
		strings.Join(c.Join, ","), c.JoinTimeout.D(), c.Name)
}
