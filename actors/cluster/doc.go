// Package cluster makes several `corral serve` processes one cluster:
// membership through protoactor-go's cluster (the automanaged provider, or
// etcd), sessions as grains of Kind "session" whose placement is sticky and
// kept in a JetStream key-value bucket (claimed by compare-and-set, so one
// owner per session), and failover of a dead member's sessions to the
// survivors.
//
// It must never keep session state of its own (the owner's actors.Engine
// does), never move a session whose owner is alive except when asked to
// drain, never let two members own one session at once (claims are CAS on
// the placement bucket, and the event store fences old owners), and never
// block an actor's Receive.
package cluster
