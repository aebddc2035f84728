// Package actors is Corral's engine: the actor tree that turns submitted
// OpenHands actions into observations on a durable per-session stream.
//
//	root guardian (never escalates)
//	└── Manager                    sessions, admission control, start permits
//	    └── Session <id>           FIFO of actions, confirmation gate, status
//	        ├── EventStream <id>   ordered appends to the session's eventbus.Stream, off the actor goroutine
//	        └── Runtime <id>       one sandbox + agent connection; restarted by
//	                               Session with exponential backoff, bounded retries
//
// Callers never see actors: they use Engine (NewEngine, CreateSession,
// Submit, Run, Subscribe, ...). Messages that may cross nodes are the
// protobuf types of package actorpb; messages that carry Go values
// (connections, handles being provisioned) stay local structs.
//
// This package must never block inside an actor's Receive (backend calls,
// agent calls and log appends run in goroutines whose results come back as
// messages), never let a supervisor escalate to the root guardian, never
// install global OpenTelemetry state, and never drop an observation: every
// runnable action gets exactly one, an `error` observation when the runtime
// failed under it.
package actors
