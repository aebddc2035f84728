package local

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"corral/runtimes"
	"corral/runtimes/sandbox"
	"corral/transport/agentwire"
)

var (
	_ runtimes.AgentConn = (*agentwire.Client)(nil)
	// corral-agent serves a sandbox.Executor: it must answer interrupt
	// frames (agentwire announces the feature only then).
	_ agentwire.Interrupter = (*sandbox.Executor)(nil)
)

// WithAgentGracePeriod sets how long a dropped agent connection keeps
// reconnecting (resuming output) before it is lost for good; local agents
// get at least 2 minutes whatever d says (see Connect).
func WithAgentGracePeriod(d time.Duration) Option { return func(b *Backend) { b.grace = d } }

// Connect opens an agentwire connection to h's agent over its unix socket
// (h from Start or Recover, of this or an earlier Corral process).
func (b *Backend) Connect(ctx context.Context, h *runtimes.Handle) (runtimes.AgentConn, error) {
	if h == nil || !strings.HasPrefix(h.AgentAddr, "unix://") {
		return nil, errors.New("local backend: connect: the handle has no unix:// agent address; pass a handle from Start or Recover")
	}
	c, err := agentwire.DialWatched(ctx, h.AgentAddr, h.Token, b.logger, b.grace)
	if err != nil {
		return nil, fmt.Errorf("local backend: sandbox %s (session %s): %w", h.ID, h.SessionID, err)
	}
	return c, nil
}
