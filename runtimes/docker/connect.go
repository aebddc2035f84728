package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"corral/runtimes"
	"corral/transport/agentwire"
)

// Connection policy of container agents. The agent is reached over a
// bind-mounted unix socket and its container's death is seen at once by
// the event watcher (Wait), so a silent socket only means a starved
// machine: the connection tolerates long silences rather than declaring a
// slow agent lost.
const (
	heartbeatInterval = 2 * time.Second
	heartbeatTimeout  = 20 * time.Second
	connGracePeriod   = 2 * time.Minute
)

// Connect opens an agentwire connection to h's agent over the host side
// of its bind-mounted socket (h from Start or Recover).
func (b *Backend) Connect(ctx context.Context, h *runtimes.Handle) (runtimes.AgentConn, error) {
	if h == nil || !strings.HasPrefix(h.AgentAddr, "unix://") {
		return nil, errors.New("docker backend: connect: the handle has no unix:// agent address; pass a handle from Start or Recover")
	}
	c, err := agentwire.Dial(ctx, h.AgentAddr, h.Token,
		agentwire.WithClientLogger(b.cfg.logger),
		agentwire.WithClientHeartbeat(heartbeatInterval, heartbeatTimeout),
		agentwire.WithGracePeriod(connGracePeriod))
	if err != nil {
		return nil, fmt.Errorf("docker backend: container %s (session %s): %w", h.ID, h.SessionID, err)
	}
	return c, nil
}
