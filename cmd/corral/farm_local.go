package main

import (
	"context"
	"log/slog"

	"corral/runtimes"
	"corral/runtimes/local"
)

// newLocalBackend builds the local runtime (corral-agent as a host
// subprocess; the binary is found next to corral or on $PATH) with the
// configuration file's [runtime.local] settings.
func newLocalBackend(_ context.Context, logger *slog.Logger, cfg serveConfig) (runtimes.Backend, func() error, error) {
	opts := []local.Option{local.WithLogger(logger)}
	if c := cfg.Runtime.Local; c.AgentBinary != "" {
		opts = append(opts, local.WithAgentBinary(c.AgentBinary))
	}
	if c := cfg.Runtime.Local; c.WarmPool > 0 {
		opts = append(opts, local.WithWarmPool(c.WarmPool))
	}
	if cfg.Runtime.Local.HostHome {
		opts = append(opts, local.WithHostHome())
	}
	b, err := local.New(opts...)
	if err != nil {
		return nil, nil, err
	}
	return b, b.Close, nil
}
