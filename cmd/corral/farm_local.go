package main

import (
	"context"
	"log/slog"

	"corral/runtimes"
	"corral/runtimes/local"
)

// newLocalBackend builds the local runtime (corral-agent as a host
// subprocess; the binary is found next to corral or on $PATH).
func newLocalBackend(_ context.Context, logger *slog.Logger) (runtimes.Backend, func() error, error) {
	b, err := local.New(local.WithLogger(logger))
	if err != nil {
		return nil, nil, err
	}
	return b, b.Close, nil
}
