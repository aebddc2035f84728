package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"corral/metrics"
)

// lagSource answers ReplicationLag: no answer (no quorum) until ready is set.
type lagSource struct{ ready atomic.Bool }

func (s *lagSource) ReplicationLag(context.Context) (uint64, int, error) {
	if !s.ready.Load() {
		return 0, 0, errors.New("no quorum")
	}
	return 42, 1, nil
}

func gaugeOf(t *testing.T, reg *metrics.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func TestWatchReplicationCopiesTheStateToMetricsUntilStopped(t *testing.T) {
	reg := metrics.New()
	src := &lagSource{}
	stop := watchReplication(src, reg, time.Millisecond)
	defer func() { _ = stop() }()
	if got := gaugeOf(t, reg, "corral_cluster_replication_lag"); got != 0 {
		t.Fatalf("lag before any answer = %v, want 0", got)
	}
	src.ready.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for gaugeOf(t, reg, "corral_cluster_replication_lag") != 42 {
		if time.Now().After(deadline) {
			t.Fatal("the replication lag never reached the metrics")
		}
		time.Sleep(time.Millisecond)
	}
	if got := gaugeOf(t, reg, "corral_cluster_replicas_offline"); got != 1 {
		t.Fatalf("replicas offline = %v, want 1", got)
	}
}
