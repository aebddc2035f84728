package api

import "context"

// Router tells the server which cluster member owns a session; nil on a
// single node. *cluster.Node (through cmd/corral's adapter) implements it.
type Router interface {
	// Owner returns the member that owns existing session sid.
	Owner(ctx context.Context, sid string) (ClusterMember, error)
	// Place picks and claims the member that will own new session sid.
	Place(ctx context.Context, sid string) (ClusterMember, error)
	// Members lists the cluster's members.
	Members(ctx context.Context) []ClusterMember
	// Self is this server's member.
	Self() ClusterMember
}

// ClusterMember is one node of the cluster as GET /api/cluster shows it.
type ClusterMember struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	API      string `json:"api"`
	Status   string `json:"status"`
	Sessions int    `json:"sessions"`
}
