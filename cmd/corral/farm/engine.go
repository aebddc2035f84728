package farm

import (
	"context"
	"errors"

	"corral/eventbus"
)

// Engine starts sandbox sessions. It is the part of the session engine the
// farm needs, so that tests and benchmarks can plug in other engines.
type Engine interface {
	// StartSession provisions a sandbox for spec and returns once it can run
	// actions. An error here is an infrastructure error: the farm retries it.
	StartSession(ctx context.Context, spec SessionSpec) (Session, error)
}

// Session is one started sandbox.
type Session interface {
	// Run executes one runnable action and returns its observation. An error
	// means the action got no observation (infrastructure failure); a command
	// that fails is an observation, not an error.
	Run(ctx context.Context, action *eventbus.Event) (*eventbus.Event, error)
	// Close stops the sandbox and removes everything it owns. The farm calls
	// it exactly once per session, with a fresh context, however the job
	// ended.
	Close(ctx context.Context) error
}

// StreamSession is a Session whose engine keeps the session's event stream.
// The farm writes that stream, rather than only the actions it sent and
// the observations it got, as the job's event log.
type StreamSession interface {
	Session
	// Events returns the stream's events with ids 0..upTo in order.
	Events(ctx context.Context, upTo int64) ([]*eventbus.Event, error)
}

// NodeSession is a Session that runs on a cluster member: Node names the
// member that owned it when last asked (the job's result records it).
type NodeSession interface {
	Session
	Node() string
}

// SessionSpec says what sandbox a job needs.
type SessionSpec struct {
	JobID   string  // the job's id
	Attempt int     // 1 for the first try, 2 for the first retry, ...
	Runtime Runtime // backend, image, resources, env
}

// ErrPermanent marks a StartSession error that retrying cannot fix (the
// engine cannot provide what the job asks for): the job fails at once.
var ErrPermanent = errors.New("not retryable")
