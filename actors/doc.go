// Package actors is Corral's engine: the actor tree that turns submitted
// OpenHands actions into observations on a durable per-session stream.
//
//	root guardian (never escalates)
//	└── Manager                    directory of sessions, admission control, start permits
//	    └── Session <id>           the one owner of a session: FIFO of actions, confirmation
//	        │                      gate, status, its record, stream writer, live output
//	        ├── EventStream <id>   ordered appends (and record saves) off the actor goroutine
//	        └── Runtime <id>       one sandbox + the agent connection from Backend.Connect;
//	                               restarted by Session with exponential backoff, bounded retries
//
// Callers never see actors: they use Engine (NewEngine, Recover, Reap,
// CreateSession, Run, Submit, Subscribe, History, files, Start, Stop, ...).
// Engine keeps no session state: every call is a message through the
// Manager to the session's owner, and the answer (an observation, a
// subscription, a file listing) comes back on the reply. Sessions are built
// from their record by one Props producer keyed by session id (new,
// recovered after a crash, started again after a stop), so that producer
// can become a cluster Kind.
//
// A session's record (<store>/<sid>.meta.json) and events are everything
// needed to rebuild it: Recover re-admits the sessions that were running
// when the previous process on the store ended, re-attaches their sandboxes
// and re-sends the in-flight action under its request id (sid-eventID) so
// the agent answers from the running or finished request instead of
// running it twice.
//
// In a cluster (WithCluster, WithNodeID; adopt.go) the store copies every
// write to a replicated store, and the engine knows only the sessions it
// owns: it recovers nothing at start and refuses Reap. Adopt takes a
// session over from another node (fence the old owner, load the replica's
// copy into the local store, then the same per-session recovery as after a
// crash); Release hands one over (the session's actors stop, its sandbox
// and record stay, its in-flight action is left for the adopter to answer
// once). A Session whose append is fenced stops at once; one whose
// replicated store lost its quorum pauses its queue and refuses actions
// (ErrUnavailable) while it retries the writes it already promised.
//
// Messages that may cross nodes are the protobuf types of package actorpb;
// messages that carry Go values (contexts, subscriptions, connections)
// stay local structs (messages.go).
//
// This package must never block inside an actor's Receive (backend calls,
// agent calls, log appends and record saves run in goroutines whose results
// come back as messages), never keep session state outside the Session
// actor, never dial an agent itself (Backend.Connect does), never let a
// supervisor escalate to the root guardian, never install global
// OpenTelemetry state, and never drop an observation: every runnable action
// gets exactly one, an `error` observation when the runtime failed under it.
// In a cluster it must never write for a session after a fence refused an
// append, never tear down the sandbox of a fenced or released session (its
// new owner uses it), never acknowledge a write the replicated store did
// not take, and never reap sandboxes by store owner.
package actors
