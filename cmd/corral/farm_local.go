package main

import (
	"context"
	"errors"
	"log/slog"

	"corral/runtimes"
)

// newLocalBackend builds the local runtime (agent as a host subprocess).
// TODO(farm): wire runtimes/local once it lands; until then the local
// runtime is reported as unavailable rather than faked.
func newLocalBackend(ctx context.Context, logger *slog.Logger) (runtimes.Backend, func() error, error) {
	return nil, nil, errors.New("the local backend (runtimes/local) is not built yet: use --runtime docker")
}
