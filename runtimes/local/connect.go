package local

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"corral/runtimes"
	"corral/transport/agentwire"
)

// Connection policy of local agents. A local agent's death is seen at once
// by the backend (process exit, Wait); a silent unix socket only means a
// starved machine. So its connection tolerates long silences instead of
// declaring a slow agent lost (seen with 1,000 sessions on 2 cores under
// agentwire's 3 s / 30 s defaults).
const (
	heartbeatInterval = 2 * time.Second
	heartbeatTimeout  = 20 * time.Second
	minGracePeriod    = 2 * time.Minute
)

var _ runtimes.AgentConn = (*agentwire.Client)(nil)

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
	c, err := agentwire.Dial(ctx, h.AgentAddr, h.Token,
		agentwire.WithClientLogger(b.logger),
		agentwire.WithClientHeartbeat(heartbeatInterval, heartbeatTimeout),
		agentwire.WithGracePeriod(max(b.grace, minGracePeriod)))
	if err != nil {
		return nil, fmt.Errorf("local backend: sandbox %s (session %s): %w", h.ID, h.SessionID, err)
	}
	return c, nil
}
