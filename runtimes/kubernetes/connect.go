package kubernetes

// Placeholder while the connection is written.

import (
	"context"

	"corral/runtimes"
)

func (b *Backend) Connect(ctx context.Context, h *runtimes.Handle) (runtimes.AgentConn, error) {
	return nil, runtimes.ErrNotSupported
}
