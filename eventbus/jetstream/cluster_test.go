package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
)

// appendUntil retries an append until it succeeds (a new leader is being
// elected) or a minute passes.
func appendUntil(t *testing.T, s *eventbus.Stream, what string) *eventbus.Event {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		e, err := s.Append(context.Background(), runAction(what))
		if err == nil {
			return e
		}
		if !errors.Is(err, eventbus.ErrReplicaUnavailable) || time.Now().After(deadline) {
			t.Fatalf("append %q: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the cluster's recovery
	}
}

func TestR3ClusterAcknowledgesWithOneServerDownAndRefusesWithoutQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server JetStream cluster")
	}
	c := startCluster(t, 3)
	l := openLog(t, c.url(), WithReplicas(3), WithOpTimeout(2*time.Second))
	st := openStore(t, l, nil)
	s, err := st.Open("q")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendN(t, s, 10)

	c.stop(2)
	appendUntil(t, s, "one server down") // id 10

	c.stop(1)
	start := time.Now()
	_, err = s.Append(context.Background(), runAction("no quorum"))
	if !errors.Is(err, eventbus.ErrReplicaUnavailable) || !strings.Contains(err.Error(), "quorum") || !strings.Contains(err.Error(), `"q"`) {
		t.Fatalf("append without quorum: %v, want ErrReplicaUnavailable naming the session and the quorum", err)
	}
	if d := time.Since(start); d > 45*time.Second {
		t.Fatalf("the refused append took %v", d)
	}
	if s.LastID() != 10 || s.Len() != 11 {
		t.Fatalf("a refused append was kept: last id %d, len %d", s.LastID(), s.Len())
	}

	c.start(1)
	c.start(2)
	e := appendUntil(t, s, "quorum back")
	if e.ID != 11 {
		t.Fatalf("after the quorum came back the append got id %d, want 11 (no gap)", e.ID)
	}
	// The replica holds exactly what the store acknowledged.
	items, _, err := l.Load(context.Background(), "q")
	if err != nil {
		t.Fatal(err)
	}
	local := allItems(t, s)
	if len(items) != len(local) {
		t.Fatalf("replica holds %d events, the store %d", len(items), len(local))
	}
	for i := range local {
		if items[i].ID != local[i].ID || string(items[i].JSON) != string(local[i].JSON) {
			t.Fatalf("event %d: replica %s, store %s", i, items[i].JSON, local[i].JSON)
		}
	}
}

// After a kill -9 of the stream leader the other replicas drop requests
// meant for it until their election timers fire (4 to 9 s); a call made in
// that window must reach the leader elected next, within its op timeout,
// not fail because its first request went unanswered.
func TestCallsMadeRightAfterTheLeaderIsKilledReachTheNextLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server JetStream cluster in child processes")
	}
	c := startChildCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	writer := openLog(t, c.urlExcept(""), WithReplicas(3))
	for i := range 3 {
		rec := eventbus.ReplicaRecord{ID: int64(i), JSON: []byte(fmt.Sprintf(`{"id":%d}`, i))}
		if err := writer.AppendRecords(ctx, "s", []eventbus.ReplicaRecord{rec}); err != nil {
			t.Fatal(err)
		}
	}
	info, err := writer.stream.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("stream info: %+v, %v", info, err)
	}
	leader := info.Cluster.Leader
	// The survivor's Log is open before the kill, as a surviving node's is.
	survivor := openLog(t, c.urlExcept(leader), WithReplicas(3), WithOpTimeout(20*time.Second))

	c.kill(t, leader)
	items, _, err := survivor.Load(ctx, "s")
	if err != nil {
		t.Fatalf("Load right after the leader %s was killed: %v", leader, err)
	}
	if len(items) != 3 || items[2].ID != 2 {
		t.Fatalf("Load after the kill returned %d events, want the 3 acknowledged", len(items))
	}
	rec := eventbus.ReplicaRecord{ID: 3, JSON: []byte(`{"id":3}`)}
	if err := survivor.AppendRecords(ctx, "s", []eventbus.ReplicaRecord{rec}); err != nil {
		t.Fatalf("append on the survivor after the kill: %v", err)
	}
	if items, _, err = survivor.Load(ctx, "s"); err != nil || len(items) != 4 {
		t.Fatalf("after the append the stream holds %d events (%v), want 4", len(items), err)
	}
}
