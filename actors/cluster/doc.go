// Package cluster makes several `corral serve` processes one cluster:
// membership through protoactor-go's cluster (the automanaged provider, or
// etcd), sessions as grains of Kind "session" whose placement is sticky and
// kept in a JetStream key-value bucket (claimed by compare-and-set, so one
// owner per session), and failover of a dead member's sessions to the
// survivors.
//
// Files: node.go (Config, Start, Shutdown, options), membership.go
// (protoactor member, join wait, duplicate node ids, gossip state),
// view.go (topology joined with gossip), placement.go (bucket
// corral_owners: Place, Owner, claim, least-loaded choice, Forget),
// mirror.go (a KV watcher's local copy of the bucket), lookup.go (the
// IdentityLookup, the per-member placement actor, the session grain that
// runs Adopt), failover.go (dead-owner sweep, Drain).
//
// Liveness is protoactor's topology (the provider's member list); a member
// id is one process start, so a restarted node's old claims name a dead
// member and are re-claimed like any other. A node whose sessions another
// member claimed (it was thought dead) releases them when it sees the change.
//
// It must never keep session state of its own (the owner's actors.Engine
// does), never move a session whose owner is alive except when asked to
// drain, never let two members own one session at once (claims are CAS on
// the placement bucket, and the event store fences old owners), never judge
// a member dead before it has been up for FailureTimeout (its provider may
// not have polled everyone yet), never send a non-protobuf message to
// another member (protoactor drops it silently), and never block an actor's
// Receive (Adopt and Release run on goroutines the node waits for at stop).
package cluster
