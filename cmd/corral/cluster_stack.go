package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"corral/actors"
	"corral/actors/cluster"
	"corral/eventbus"
	"corral/eventbus/jetstream"
	"corral/metrics"
	"corral/transport/api"
)

// openClusterStack starts a cluster member: its embedded NATS server
// (routes to every other --join member), the replicated log on it, the
// event store replicating to that log, the engine in cluster mode (no
// Recover and no Reap: sessions come to it through Adopt), then the
// membership. apiAddr is the API's bound address, advertised to the
// others. Everything closes in reverse order (serveStack.close).
func openClusterStack(ctx context.Context, cfg serveConfig, apiAddr string, logger *slog.Logger, met *metrics.Registry) (*serveStack, error) {
	cc := cfg.Cluster
	np, err := cc.ports()
	if err != nil {
		return nil, err
	}
	nodeID, err := cc.prepareDataDir(np.Remote)
	if err != nil {
		return nil, err
	}
	st := &serveStack{}
	fail := func(err error) (*serveStack, error) {
		_ = st.close(context.Background())
		return nil, err
	}
	srv, err := jetstream.StartServer(ctx, jetstream.ServerConfig{
		NodeID: nodeID, ClusterName: cc.Name, Host: np.Host, ClientPort: np.NATS, RoutePort: np.NATSRoute,
		Routes: cc.otherMembers(3), StoreDir: filepath.Join(cc.Data, "jetstream"), Logger: logger,
	})
	if err != nil {
		return fail(fmt.Errorf("start the embedded NATS server (ports %d, %d): %w", np.NATS, np.NATSRoute, err))
	}
	st.after = append(st.after, func() error { srv.Shutdown(); return nil })
	// In a new cluster JetStream needs a quorum of the join members to
	// elect its meta leader: Open waits for them up to join_timeout.
	jctx, cancel := context.WithTimeout(ctx, cc.JoinTimeout.D())
	defer cancel()
	log, err := jetstream.Open(jctx, srv.ClientURL(), jetstream.WithReplicas(cc.replicas()), jetstream.WithLogger(logger), jetstream.WithClientName("corral-events-"+nodeID))
	if err != nil {
		return fail(fmt.Errorf("open the replicated event log (replicas %d): %w; %s", cc.replicas(), err, joinErrorHint(cc)))
	}
	st.after = append(st.after, log.Close, watchReplication(log, met, 5*time.Second))
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("corral-cluster-"+nodeID))
	if err != nil {
		return fail(fmt.Errorf("connect to the embedded NATS server: %w", err))
	}
	st.after = append(st.after, func() error { nc.Close(); return nil })
	ecfg := cfg.Events
	ecfg.StoreDir = filepath.Join(cc.Data, "events")
	if st.store, err = eventbus.OpenStore(ecfg, eventbus.WithLogger(logger), eventbus.WithReplica(log)); err != nil {
		return fail(fmt.Errorf("open the event store: %w", err))
	}
	if err := st.startEngine(ctx, cfg, logger, met, actors.WithCluster(log), actors.WithNodeID(nodeID)); err != nil {
		return fail(err)
	}
	node, err := cluster.Start(ctx, cluster.Config{
		NodeID: nodeID, Name: cc.Name, Host: np.Host, RemotePort: np.Remote, HealthPort: np.Health,
		Join: shiftPorts(cc.members(), 1), Provider: cc.Provider, Etcd: cc.Etcd,
		FailureTimeout: cc.FailureTimeout.D(), JoinTimeout: cc.JoinTimeout.D(), StartAlone: cc.StartAlone,
		APIURL: advertisedAPI(apiAddr, np.Host), Capacity: cfg.Engine.MaxSessions,
	}, st.eng, nc, cluster.WithLogger(logger), cluster.WithReplicas(cc.replicas()), cluster.WithMetrics(met))
	if err != nil {
		return fail(fmt.Errorf("join the cluster as %s: %w", nodeID, err))
	}
	st.node = node
	st.detach = true
	st.apiOpts = append(st.apiOpts, api.WithRouter(clusterRouter{node}))
	logger.Info("cluster member started", "node", nodeID, "remote", np.Remote, "health", np.Health, "nats", np.NATS, "routes", np.NATSRoute)
	return st, nil
}

// replicationSource is what watchReplication reads; *jetstream.Log is one.
type replicationSource interface {
	ReplicationLag(ctx context.Context) (lag uint64, offline int, err error)
}

// watchReplication copies the event stream's replication state (the most
// lagging replica, replicas offline) to the metrics every period, until the
// returned stop is called.
func watchReplication(src replicationSource, met *metrics.Registry, period time.Duration) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			if lag, offline, err := src.ReplicationLag(ctx); err == nil {
				met.SetReplication(lag, offline)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() error {
		cancel()
		<-done
		return nil
	}
}
