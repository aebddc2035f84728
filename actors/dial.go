package actors

import (
	"context"

	"corral/runtimes"
	"corral/transport/agentwire"
)

// AgentwireDialer connects to agents over agentwire; it is the engine's
// default dialer.
func AgentwireDialer(opts ...agentwire.DialOption) Dialer {
	return func(ctx context.Context, h *runtimes.Handle) (AgentConn, error) {
		c, err := agentwire.Dial(ctx, h.AgentAddr, h.Token, opts...)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}
