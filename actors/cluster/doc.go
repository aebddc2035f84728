// Package cluster makes several `corral serve` processes one cluster:
// membership through protoactor-go's cluster (the automanaged provider, or
// etcd), sessions as grains of Kind "session" whose placement is sticky and
// kept in a JetStream key-value bucket (claimed by compare-and-set, so one
// owner per session), and failover of a dead member's sessions to the
// survivors.
//
// Files: node.go (Config, Start, Shutdown, options, metrics), membership.go
// (a protoactor membership, join wait, duplicate node ids, gossip state),
// view.go (topology joined with gossip), placement.go (bucket
// corral_owners: Place, Owner, claim, least-loaded choice, Forget),
// mirror.go (a KV watcher's local copy of the bucket), lookup.go (the
// IdentityLookup, the per-member placement actor, the session grain),
// adopt.go (Adopt retried with backoff, then handed to another member),
// failover.go (dead-owner sweep, Drain), rejoin.go (gossip loop, noticing
// this node was declared dead, rejoining with a new member id, the health
// probe).
//
// Liveness is protoactor's topology (the provider's member list), checked
// against the members' health endpoints before a member is judged dead
// (automanaged): protoactor blocks a member id for good after one missed
// heartbeat or health poll, so a live member can be missing from one
// member's topology. A member is dead once it has been absent from both for
// FailureTimeout. A member id is one process start (or one rejoin); a
// restarted node's old claims name a dead member and are re-claimed like
// any other. A node that finds itself declared dead (frozen past the
// failure timeout, a session of its member claimed by another member, or
// it blocks a member that still answers) stops its protoactor member and
// starts a new one in-process, moving its placement records to the new
// member id by compare-and-set before it starts and releasing the sessions
// another member took over; its gossip lists its past member ids so the
// others do not take their records for a dead member's meanwhile. Until
// its gossip loop has run again after a freeze (and any rejoin ended),
// Owner and Place wait: its mirror of the bucket may be stale.
//
// It must never keep session state of its own (the owner's actors.Engine
// does), never move a session whose owner is alive except when asked to
// drain, never let two members own one session at once (claims are CAS on
// the placement bucket, with the revision of the record just read, and the
// event store fences old owners), never judge a member dead before it has
// been up for FailureTimeout (its provider may not have polled everyone
// yet) nor while that member's health endpoint answers, never send a
// non-protobuf message to another member (protoactor drops it silently),
// and never block an actor's Receive (Adopt and Release run on goroutines
// the node waits for at stop).
package cluster
