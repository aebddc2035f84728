package docker

import (
	"context"
	"testing"
	"time"

	"corral/runtimes"
	"corral/runtimes/backendtest"
	"corral/transport/agentwire"
)

// TestConformanceDocker runs the shared action suite against a container
// of the minimal image (busybox + static bash, no python3) through the
// agent's socket.
func TestConformanceDocker(t *testing.T) {
	b := newBackend(t)
	backendtest.Run(t, backendtest.Harness{
		Start: func(t *testing.T) *runtimes.Handle { return start(t, b, runtimes.Spec{}) },
		Dial: func(ctx context.Context, h *runtimes.Handle) (backendtest.Conn, error) {
			return agentwire.Dial(ctx, h.AgentAddr, h.Token, agentwire.WithGracePeriod(2*time.Second))
		},
		HasPython:    false, // the minimal image has no python3
		FileTransfer: true,
	})
}
