package agentwire

import (
	"context"
	"log/slog"
	"time"
)

// Connection policy for agents whose death their backend sees at once by
// other means (a local process's exit, a container's die event): a silent
// connection then only means a starved machine, so it tolerates long
// silences instead of declaring a slow agent lost (seen with 1,000 local
// sessions on 2 cores under the 3 s / 30 s defaults).
const (
	watchedHeartbeatInterval = 2 * time.Second
	watchedHeartbeatTimeout  = 20 * time.Second
	watchedMinGrace          = 2 * time.Minute
)

// DialWatched dials an agent whose death its backend watches (local and
// Docker sandboxes on this host): heartbeats of 2 s / 20 s and a reconnect
// grace of at least 2 minutes (grace, when longer).
func DialWatched(ctx context.Context, addr, token string, logger *slog.Logger, grace time.Duration) (*Client, error) {
	return Dial(ctx, addr, token,
		WithClientLogger(logger),
		WithClientHeartbeat(watchedHeartbeatInterval, watchedHeartbeatTimeout),
		WithGracePeriod(max(grace, watchedMinGrace)))
}
