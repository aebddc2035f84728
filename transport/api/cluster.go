package api

import "context"

// Router tells the server which cluster member owns a session; nil on a
// single node. *cluster.Node (through cmd/corral's adapter) implements it.
// Members are compared by ID: the member whose ID is Self().ID is this
// server. Errors: wrap ErrNotFound when no member owns the session (the
// request is then served here and the engine answers 404), ErrQueueFull
// when Place finds no member with capacity (503 queue_full); anything else
// answers 503 cluster_unavailable with Retry-After.
type Router interface {
	// Owner returns the member that owns existing session sid.
	Owner(ctx context.Context, sid string) (ClusterMember, error)
	// Place picks and claims the member that will own new session sid.
	Place(ctx context.Context, sid string) (ClusterMember, error)
	// Members lists the cluster's members.
	Members(ctx context.Context) []ClusterMember
	// Self is this server's member.
	Self() ClusterMember
	// Drain moves member nodeID's sessions to the other members; it
	// returns once they run elsewhere. An unknown member wraps ErrNotFound.
	Drain(ctx context.Context, nodeID string) error
	// Forget drops the placement of session sid, purged with its events,
	// so no member routes to it or claims it after its owner dies.
	// Forgetting a session without a placement is no error.
	Forget(ctx context.Context, sid string) error
}

// ClusterMember is one node of the cluster as GET /api/cluster shows it.
type ClusterMember struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	API      string `json:"api"`
	Status   string `json:"status"`
	Sessions int    `json:"sessions"`
}
