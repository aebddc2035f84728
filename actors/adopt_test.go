package actors

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
	"corral/eventbus/jetstream"
	"corral/runtimes"
	"corral/runtimes/local"
)

// natsNode is an embedded NATS server with JetStream on a fixed loopback
// port, so it can be stopped and started again on the same data (a lost
// quorum that comes back).
type natsNode struct {
	t   *testing.T
	cfg jetstream.ServerConfig
	srv *jetstream.Server
}

func startNATS(t *testing.T) *natsNode {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	n := &natsNode{t: t, cfg: jetstream.ServerConfig{NodeID: "nats-test", Host: "127.0.0.1", ClientPort: port,
		StoreDir: filepath.Join(t.TempDir(), "jetstream"), Logger: quietLogger()}}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *natsNode) start() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := jetstream.StartServer(ctx, n.cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.srv = srv
}

func (n *natsNode) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv = nil
	}
}

func (n *natsNode) url() string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.cfg.ClientPort))
}

// clusterEngine is one node of a cluster: its own replicated store (a
// local directory plus its own JetStream Log on the shared server) and an
// engine in cluster mode over backend b.
func clusterEngine(t *testing.T, n *natsNode, nodeID string, b runtimes.Backend) (*Engine, *jetstream.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lg, err := jetstream.Open(ctx, n.url(), jetstream.WithLogger(quietLogger()), jetstream.WithOpTimeout(time.Second), jetstream.WithClientName(nodeID))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lg.Close() })
	scfg := eventbus.DefaultConfig()
	scfg.StoreDir = t.TempDir()
	st, err := eventbus.OpenStore(scfg, eventbus.WithReplica(lg), eventbus.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	reg, err := runtimes.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.DefaultRuntime = b.Name()
	e, err := NewEngine(cfg, reg, WithStore(st), WithCluster(lg), WithNodeID(nodeID), WithLogger(testLogger(t)), WithHostEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, e) })
	return e, lg
}

// checkIDs fails unless the session's stored ids are 0, 1, 2, ... with no
// gap and no repeat.
func checkIDs(t *testing.T, evs []*eventbus.Event) {
	t.Helper()
	for i, ev := range evs {
		if ev.ID != int64(i) {
			t.Fatalf("event %d has id %d, want ids without a gap: %s", i, ev.ID, describeAll(evs))
		}
	}
}

func TestClusterModeNeedsANodeIDAndAReplicatedStore(t *testing.T) {
	n := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lg, err := jetstream.Open(ctx, n.url(), jetstream.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	plain := func() *eventbus.Store {
		scfg := eventbus.DefaultConfig()
		scfg.StoreDir = t.TempDir()
		st, err := eventbus.OpenStore(scfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	reg, _ := runtimes.NewRegistry(local.NewInProcess(local.InProcessTempDir(t.TempDir())))
	cfg := testConfig()
	cfg.DefaultRuntime = "cli"
	for _, tc := range []struct {
		name string
		opts []Option
		want string
	}{
		{"no node id", []Option{WithStore(plain()), WithCluster(lg)}, "WithNodeID"},
		{"no replica on the store", []Option{WithStore(plain()), WithCluster(lg), WithNodeID("n1")}, "eventbus.WithReplica"},
		{"no store", []Option{WithCluster(lg), WithNodeID("n1")}, "WithStore"},
		{"node id without cluster", []Option{WithNodeID("n1")}, "WithCluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEngine(cfg, reg, append(tc.opts, WithLogger(testLogger(t)))...)
			if err == nil {
				shutdown(t, e)
				t.Fatal("NewEngine succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

func TestAdoptReattachesTheLiveSandboxAndFencesTheOldOwner(t *testing.T) {
	n, state := startNATS(t), t.TempDir()
	a, _ := clusterEngine(t, n, "node-a", localBackend(t, state))
	b, _ := clusterEngine(t, n, "node-b", localBackend(t, state))
	ctx := ctxT(t)
	sid := startSession(t, a, SessionSpec{})
	if _, _, err := a.Run(ctx, sid, cmd("export KEPT=yes")); err != nil {
		t.Fatal(err)
	}
	before, err := a.Get(ctx, sid)
	if err != nil || before.Handle == nil {
		t.Fatalf("Get = %+v, %v", before, err)
	}
	last := history(t, a, sid)
	lastID := last[len(last)-1].ID

	// node-a is still running the session (as a node partitioned away is).
	if err := b.Adopt(ctx, sid); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if err := b.Adopt(ctx, sid); err != nil {
		t.Fatalf("a second Adopt of an owned session: %v", err)
	}
	if got := b.SessionCount(); got != 1 {
		t.Fatalf("SessionCount = %d after Adopt, want 1", got)
	}
	if err := b.WaitReady(ctx, sid); err != nil {
		t.Fatal(err)
	}
	id, obs, err := b.Run(ctx, sid, cmd("echo kept-$KEPT"))
	if err != nil || !strings.Contains(obs.Content, "kept-yes") {
		t.Fatalf("after Adopt: %v %v; want the same shell (KEPT still exported)", obs, err)
	}
	if id <= lastID {
		t.Fatalf("first action after Adopt has id %d, want ids continuing after %d", id, lastID)
	}
	after, err := b.Get(ctx, sid)
	if err != nil || after.Handle == nil || after.Handle.ID != before.Handle.ID {
		t.Fatalf("adopted session's sandbox = %+v (%v), want the same sandbox %s", after.Handle, err, before.Handle.ID)
	}

	// The old owner's next append is fenced: its Session stops, without
	// touching the sandbox, and nothing of it reaches the stream.
	_, _, err = a.Run(ctx, sid, cmd("echo from-the-old-owner"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "another node") {
		t.Fatalf("old owner's Run = %v, want ErrUnavailable saying another node owns the session", err)
	}
	waitFor(t, func() bool { _, err := a.Get(ctx, sid); return errors.Is(err, ErrNotFound) })
	if got := a.SessionCount(); got != 0 {
		t.Fatalf("old owner's SessionCount = %d, want 0", got)
	}
	if _, obs, err := b.Run(ctx, sid, cmd("echo still-$KEPT")); err != nil || !strings.Contains(obs.Content, "still-yes") {
		t.Fatalf("the new owner's sandbox after the old owner was fenced: %v %v", obs, err)
	}
	evs := history(t, b, sid)
	checkIDs(t, evs)
	for _, ev := range evs {
		if a, ok := ev.Action.(*eventbus.CmdRunAction); ok && strings.Contains(a.Command, "from-the-old-owner") {
			t.Fatalf("the fenced owner's action reached the stream: %s", describeAll(evs))
		}
	}
}

func TestAdoptAnswersTheInFlightActionOnceWhenTheSandboxIsGone(t *testing.T) {
	n, state := startNATS(t), t.TempDir()
	ba := localBackend(t, state)
	a, _ := clusterEngine(t, n, "node-a", ba)
	b, _ := clusterEngine(t, n, "node-b", localBackend(t, state))
	ctx := ctxT(t)
	sid := startSession(t, a, SessionSpec{})
	info, err := a.Get(ctx, sid)
	if err != nil || info.Handle == nil {
		t.Fatalf("Get = %+v, %v", info, err)
	}
	inflight, err := a.Submit(ctx, sid, cmd("sleep 30"))
	if err != nil {
		t.Fatal(err)
	}
	// node-a dies with the action in flight, and the sandbox with it.
	dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Detach(dctx); err != nil {
		t.Fatal(err)
	}
	if err := ba.Destroy(ctx, info.Handle); err != nil {
		t.Fatal(err)
	}

	if err := b.Adopt(ctx, sid); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	obs, err := waitObservation(ctx, b, sid, inflight)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := obs.Observation.(*eventbus.ErrorObservation); !ok || e.ErrorID != ErrIDSandboxLost || !strings.Contains(obs.Content, "node-b") {
		t.Fatalf("in-flight action answered with %s %q, want an error %s naming the new node", obs.Type(), obs.Content, ErrIDSandboxLost)
	}
	if err := b.WaitReady(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if _, obs, err := b.Run(ctx, sid, cmd("echo fresh")); err != nil || !strings.Contains(obs.Content, "fresh") {
		t.Fatalf("after the lost sandbox: %v %v", obs, err)
	}
	evs := history(t, b, sid)
	checkIDs(t, evs)
	if got := len(answers(evs)[inflight]); got != 1 {
		t.Fatalf("the in-flight action has %d observations, want exactly 1: %s", got, describeAll(evs))
	}
}

func TestReleaseThenAdoptElsewhereKeepsEverything(t *testing.T) {
	n, state := startNATS(t), t.TempDir()
	a, _ := clusterEngine(t, n, "node-a", localBackend(t, state))
	b, _ := clusterEngine(t, n, "node-b", localBackend(t, state))
	ctx := ctxT(t)
	sid := startSession(t, a, SessionSpec{})
	if _, _, err := a.Run(ctx, sid, cmd("export KEPT=yes")); err != nil {
		t.Fatal(err)
	}
	stopped := startSession(t, a, SessionSpec{})
	if _, err := a.Stop(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	before, err := a.Get(ctx, sid)
	if err != nil || before.Handle == nil {
		t.Fatalf("Get = %+v, %v", before, err)
	}
	pending, err := a.Submit(ctx, sid, cmd("sleep 1; echo done-$KEPT"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{sid, stopped} {
		if err := a.Release(ctx, s); err != nil {
			t.Fatalf("Release %s: %v", s, err)
		}
		if _, err := a.Get(ctx, s); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after Release, Get %s = %v, want ErrNotFound", s, err)
		}
	}
	if err := a.Release(ctx, sid); err != nil {
		t.Fatalf("Release of a session the engine no longer knows: %v", err)
	}
	if got := a.SessionCount(); got != 0 {
		t.Fatalf("SessionCount after Release = %d, want 0", got)
	}

	for _, s := range []string{sid, stopped} {
		if err := b.Adopt(ctx, s); err != nil {
			t.Fatalf("Adopt %s: %v", s, err)
		}
	}
	if info, err := b.Get(ctx, stopped); err != nil || info.State != StateStopped {
		t.Fatalf("adopted stopped session: %+v, %v; want it known and STOPPED", info, err)
	}
	if got := b.SessionCount(); got != 1 {
		t.Fatalf("SessionCount = %d, want 1 (the stopped session is known, not running)", got)
	}
	obs, err := waitObservation(ctx, b, sid, pending)
	if err != nil || !strings.Contains(obs.Content, "done-yes") {
		t.Fatalf("the action pending at Release answered with %v (%v), want its real output", obs, err)
	}
	if _, obs, err := b.Run(ctx, sid, cmd("echo again-$KEPT")); err != nil || !strings.Contains(obs.Content, "again-yes") {
		t.Fatalf("after Release and Adopt: %v %v", obs, err)
	}
	after, err := b.Get(ctx, sid)
	if err != nil || after.Handle == nil || after.Handle.ID != before.Handle.ID {
		t.Fatalf("sandbox after Release and Adopt = %+v (%v), want the same %s", after.Handle, err, before.Handle.ID)
	}
	evs := history(t, b, sid)
	checkIDs(t, evs)
	if got := len(answers(evs)[pending]); got != 1 {
		t.Fatalf("the pending action has %d observations, want exactly 1: %s", got, describeAll(evs))
	}
}

func TestAClusterEngineRecoversNothingAndRefusesToReap(t *testing.T) {
	n := startNATS(t)
	e, _ := clusterEngine(t, n, "node-a", local.NewInProcess(local.InProcessTempDir(t.TempDir())))
	ctx := ctxT(t)
	if rep, err := e.Recover(ctx); err != nil || len(rep.Sessions) != 0 {
		t.Fatalf("Recover = %+v, %v; want nothing", rep, err)
	}
	if _, err := e.Reap(ctx); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("Reap = %v, want ErrNotSupported", err)
	}
	if err := e.Adopt(ctx, "no-such-session"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Adopt of an unknown session = %v, want ErrNotFound", err)
	}
}

func TestNoQuorumPausesTheSessionAndLosesNothing(t *testing.T) {
	n := startNATS(t)
	e, lg := clusterEngine(t, n, "node-a", local.NewInProcess(local.InProcessTempDir(t.TempDir())))
	ctx := ctxT(t)
	sid := startSession(t, e, SessionSpec{})
	if _, _, err := e.Run(ctx, sid, cmd("echo before")); err != nil {
		t.Fatal(err)
	}
	running, err := e.Submit(ctx, sid, cmd("sleep 2; echo ran-through"))
	if err != nil {
		t.Fatal(err)
	}
	n.stop() // the quorum is lost while the action runs

	_, _, err = e.Run(ctx, sid, cmd("echo during"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("Run without a quorum = %v, want ErrUnavailable naming the lost quorum", err)
	}
	// Once the running action's observation could not be stored, the
	// session holds it and pauses: actions are refused without a try.
	waitFor(t, func() bool {
		_, _, err = e.Run(ctx, sid, cmd("echo during"))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Run without a quorum = %v, want ErrUnavailable", err)
		}
		return strings.Contains(err.Error(), "is paused")
	})
	whileLost := history(t, e, sid)

	n.start()
	// The observation of the running action was kept and is stored once
	// the quorum is back; the session then takes actions again.
	obs, err := waitObservation(ctx, e, sid, running)
	if err != nil || !strings.Contains(obs.Content, "ran-through") {
		t.Fatalf("the action running when the quorum was lost: %v (%v), want its real output", obs, err)
	}
	var after *eventbus.Event
	waitFor(t, func() bool {
		_, after, err = e.Run(ctx, sid, cmd("echo after"))
		return err == nil
	})
	if !strings.Contains(after.Content, "after") {
		t.Fatalf("after the quorum came back: %v", after)
	}
	items, _, err := lg.Load(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	evs := history(t, e, sid)
	checkIDs(t, evs)
	if len(items) != len(evs) {
		t.Fatalf("the replica has %d events, the local store %d: %s", len(items), len(evs), describeAll(evs))
	}
	if len(whileLost) > len(items) {
		t.Fatalf("while the quorum was lost the local store had %d events, more than the replica's %d", len(whileLost), len(items))
	}
	for _, ev := range evs {
		if a, ok := ev.Action.(*eventbus.CmdRunAction); ok && strings.Contains(a.Command, "during") {
			t.Fatalf("the refused action was stored: %s", describeAll(evs))
		}
	}
	if got := len(answers(evs)[running]); got != 1 {
		t.Fatalf("the running action has %d observations, want exactly 1: %s", got, describeAll(evs))
	}
}
