package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
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

// ErrNotImplemented marks the skeleton (removed when the package is built).
var ErrNotImplemented = errors.New("cluster: not implemented yet")

// Node is this process's membership in the cluster.
type Node struct {
	cfg Config
}

// Start joins the cluster described by cfg.
func Start(ctx context.Context, cfg Config, ad Adopter, nc *nats.Conn) (*Node, error) {
	return nil, ErrNotImplemented
}

// Owner returns the owner of existing session sid, re-activating it on a
// live member when its owner died.
func (n *Node) Owner(ctx context.Context, sid string) (Member, error) { return Member{}, ErrNotImplemented }

// Place picks and claims the owner of a new session: the least-loaded live
// member with capacity.
func (n *Node) Place(ctx context.Context, sid string) (Member, error) { return Member{}, ErrNotImplemented }

// Members lists the cluster's members.
func (n *Node) Members(ctx context.Context) []Member { return nil }

// Self is this node.
func (n *Node) Self() Member { return Member{ID: n.cfg.NodeID, Self: true} }

// Drain moves node nodeID's sessions to other members.
func (n *Node) Drain(ctx context.Context, nodeID string) error { return ErrNotImplemented }

// Forget drops a deleted session's placement.
func (n *Node) Forget(ctx context.Context, sid string) error { return ErrNotImplemented }

// Shutdown drains this node (within ctx) and leaves the cluster.
func (n *Node) Shutdown(ctx context.Context) error { return ErrNotImplemented }
