package cluster

import (
	_ "github.com/asynkron/protoactor-go/cluster"
	_ "github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	_ "github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
)
