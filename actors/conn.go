package actors

import (
	"context"

	"corral/eventbus"
	"corral/runtimes"
)

// AgentConn is what a Runtime needs from its connection to a sandbox agent.
// *agentwire.Client satisfies it; so does the in-process executor of the
// cli runtime.
type AgentConn interface {
	// Execute runs one action and returns its observation; onChunk, when
	// not nil, receives output as it is produced.
	Execute(ctx context.Context, action *eventbus.Event, onChunk func(seq uint64, data []byte)) (*eventbus.Event, error)
	Close() error
	// Done is closed when the connection is lost for good; Err says why.
	Done() <-chan struct{}
	Err() error
}

// Dialer connects to the agent of a started sandbox.
type Dialer func(ctx context.Context, h *runtimes.Handle) (AgentConn, error)
