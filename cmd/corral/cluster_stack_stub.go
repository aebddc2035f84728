//go:build !corral_cluster_wired

package main

import (
	"context"
	"errors"
	"log/slog"

	"corral/metrics"
)

// openClusterStack stands in until the cluster packages land
// (cluster_stack.go, build tag corral_cluster_wired).
func openClusterStack(ctx context.Context, cfg serveConfig, apiAddr string, logger *slog.Logger, met *metrics.Registry) (*serveStack, error) {
	if _, err := cfg.Cluster.prepareDataDir(0); err != nil {
		return nil, err
	}
	return nil, errors.New("cluster mode is not available in this build")
}
