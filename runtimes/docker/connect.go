package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"corral/runtimes"
	"corral/transport/agentwire"
)

// Connect opens an agentwire connection to h's agent over the host side
// of its bind-mounted socket (h from Start or Recover).
func (b *Backend) Connect(ctx context.Context, h *runtimes.Handle) (runtimes.AgentConn, error) {
	if h == nil || !strings.HasPrefix(h.AgentAddr, "unix://") {
		return nil, errors.New("docker backend: connect: the handle has no unix:// agent address; pass a handle from Start or Recover")
	}
	c, err := agentwire.DialWatched(ctx, h.AgentAddr, h.Token, b.cfg.logger, 0)
	if err != nil {
		return nil, fmt.Errorf("docker backend: container %s (session %s): %w", h.ID, h.SessionID, err)
	}
	return c, nil
}
