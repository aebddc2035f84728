package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"corral/eventbus"
	"corral/runtimes"
)

// execCmd runs a bash command through c and returns the observation's
// content (trimmed) and exit code. timeout is the action's hard timeout.
func execCmd(t testing.TB, c runtimes.AgentConn, cmd string, timeout float64) (string, int) {
	t.Helper()
	ev := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: cmd, Blocking: true,
		ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
	ev.SetHardTimeout(timeout, false)
	obs, err := c.Execute(testCtx(t, time.Duration(timeout)*time.Second+time.Minute), "", ev, nil)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	out, ok := obs.Observation.(*eventbus.CmdOutputObservation)
	if !ok {
		t.Fatalf("run %q: observation %T (%q), want run output", cmd, obs.Observation, obs.Content)
	}
	return strings.TrimSpace(obs.Content), out.Metadata.ExitCode
}

func connect(t testing.TB, b *Backend, h *runtimes.Handle) runtimes.AgentConn {
	t.Helper()
	c, err := b.Connect(testCtx(t, time.Minute), h)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStartInspectStopDestroyLeavesNoPod(t *testing.T) {
	b := newBackend(t, nil)
	owner := runtimes.Owner{ID: "store-1", Instance: "run-1", Host: runtimes.Hostname(), LockPath: "/nonexistent/LOCK"}
	h := start(t, b, runtimes.Spec{Owner: owner, Env: map[string]string{"GREETING": "hello from spec"}})
	for k, want := range map[string]string{metaNamespace: env.ns, metaConnect: ConnectPortForward, metaNode: env.node} {
		if got := h.Meta[k]; got != want {
			t.Errorf("Handle.Meta[%s] = %q, want %q", k, got, want)
		}
	}
	if h.Backend != "kubernetes" || !strings.HasPrefix(h.ID, "corral-") || h.Meta[metaPodUID] == "" || h.Token == "" || h.AgentAddr != "127.0.0.1:7777" {
		t.Errorf("handle = %+v", h)
	}
	if got, ok := runtimes.OwnerFromMeta(h.Meta); !ok || got != owner {
		t.Errorf("owner in Handle.Meta = %+v, %v; want %+v", got, ok, owner)
	}
	c := connect(t, b, h)
	if out, code := execCmd(t, c, "echo $GREETING; pwd", 30); out != "hello from spec\n/workspace" || code != 0 {
		t.Errorf("command in the sandbox = %q, exit %d", out, code)
	}
	ctx := testCtx(t, 2*time.Minute)
	if st, err := b.Inspect(ctx, h); err != nil || !st.Running || st.Exit != nil {
		t.Errorf("Inspect of a running sandbox = %+v, %v", st, err)
	}
	wait, err := b.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(ctx, h, time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if e, ok := <-wait; ok {
		t.Errorf("Wait after Stop delivered %+v; want the channel closed without a value", e)
	}
	if !podGone(t, env.ns, h.ID) {
		t.Errorf("pod %s still exists after Stop", h.ID)
	}
	if st, err := b.Inspect(ctx, h); err != nil || st.Running || st.Exit == nil {
		t.Errorf("Inspect after Stop = %+v, %v; want not running, with an exit", st, err)
	}
	for i := range 2 { // the second Destroy finds nothing: not an error
		if err := b.Destroy(ctx, h); err != nil {
			t.Errorf("Destroy #%d: %v", i+1, err)
		}
	}
	if _, err := b.Inspect(ctx, h); !errors.Is(err, runtimes.ErrNotFound) {
		t.Errorf("Inspect after Destroy: %v, want ErrNotFound", err)
	}
	if err := b.Pause(ctx, h); !errors.Is(err, runtimes.ErrNotSupported) || !strings.Contains(err.Error(), "cannot freeze") {
		t.Errorf("Pause: %v, want a clear ErrNotSupported", err)
	}
}

func TestRecoverAfterEngineRestartFindsThePod(t *testing.T) {
	b1 := newBackend(t, nil)
	h, err := b1.Start(testCtx(t, 3*time.Minute), runtimes.Spec{SessionID: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	c1 := connect(t, b1, h)
	execCmd(t, c1, "echo kept > /workspace/mark", 30)
	c1.Close()
	b1.Close() // the engine goes away; the pod stays

	b2 := newBackend(t, nil)
	t.Cleanup(func() { b2.Destroy(context.Background(), h) })

	ctx := testCtx(t, 2*time.Minute)
	for _, tc := range []struct {
		name string
		h    *runtimes.Handle
	}{
		{"by the stored handle", h},
		{"by pod name alone", &runtimes.Handle{ID: h.ID}},
		{"by session id alone", &runtimes.Handle{SessionID: h.SessionID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rh, err := b2.Recover(ctx, tc.h)
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
			if rh.ID != h.ID || rh.Token != h.Token || rh.SessionID != h.SessionID || rh.Meta[metaPodUID] != h.Meta[metaPodUID] {
				t.Errorf("recovered handle %+v, started %+v", rh, h)
			}
			if out, _ := execCmd(t, connect(t, b2, rh), "cat /workspace/mark", 30); out != "kept" {
				t.Errorf("the recovered sandbox's workspace has %q", out)
			}
		})
	}
	if err := b2.Destroy(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Recover(ctx, h); !errors.Is(err, runtimes.ErrNotFound) {
		t.Errorf("Recover of a destroyed sandbox: %v, want ErrNotFound", err)
	}
}

func TestPodDeletedByHandFiresWait(t *testing.T) {
	b := newBackend(t, nil)
	h := start(t, b, runtimes.Spec{})
	ctx := testCtx(t, 2*time.Minute)
	wait, err := b.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.client.CoreV1().Pods(env.ns).Delete(ctx, h.ID, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case e, ok := <-wait:
		if !ok || !strings.Contains(e.Reason, "pod deleted") || e.OOMKilled {
			t.Errorf("Wait = %+v (ok %v), want an exit with reason \"pod deleted\"", e, ok)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not fire after the pod was deleted by hand")
	}
	// A second Wait on the dead sandbox answers at once with the same exit.
	again, err := b.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := <-again; !ok || !strings.Contains(e.Reason, "pod deleted") {
		t.Errorf("second Wait = %+v (ok %v)", e, ok)
	}
}

// TestOOM pins what happens on the test node (cgroup v1, containerd 1.6)
// when a sandbox overruns its memory limit:
//   - a command's memory hog is killed by the kernel's OOM killer inside
//     the container's cgroup (the agent gives its shells oom_score_adj
//     1000, so they go first); the agent lives on, the command sees exit
//     code 137, the pod keeps running and Wait does not fire;
//   - memory no kill can free (a full tmpfs: /dev/shm is charged to the
//     container) makes the OOM killer take every process, the agent too:
//     the container ends, the kubelet reports OOMKilled, and Wait fails
//     the runtime with OOMKilled and code 137.
func TestOOM(t *testing.T) {
	limit := runtimes.Resources{MemoryBytes: 64 << 20}
	t.Run("a command's hog is killed and the sandbox lives", func(t *testing.T) {
		const hog = "head -c 300m /dev/zero | tail" // tail keeps the newline-free input in memory
		b := newBackend(t, nil)
		h := start(t, b, runtimes.Spec{Resources: limit})
		ctx := testCtx(t, 2*time.Minute)
		wait, err := b.Wait(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		c := connect(t, b, h)
		if _, code := execCmd(t, c, hog, 90); code != 137 {
			t.Errorf("the hog's exit code = %d, want 137 (SIGKILL from the OOM killer)", code)
		}
		if out, _ := execCmd(t, c, "echo still here", 30); out != "still here" {
			t.Errorf("after the OOM kill: %q", out)
		}
		if st, err := b.Inspect(ctx, h); err != nil || !st.Running {
			t.Errorf("Inspect after a command's OOM kill = %+v, %v; want running", st, err)
		}
		select {
		case e, ok := <-wait:
			t.Errorf("Wait fired (%+v, %v) though the sandbox lives", e, ok)
		default:
		}
	})
	t.Run("the container OOM-killed fails the runtime with OOMKilled", func(t *testing.T) {
		b := newBackend(t, nil)
		h := start(t, b, runtimes.Spec{Resources: limit})
		ctx := testCtx(t, 3*time.Minute)
		wait, err := b.Wait(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		c := connect(t, b, h)
		go func() { // its connection dies with the agent: no answer expected
			ev := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: "head -c 100m /dev/zero > /dev/shm/fill", Blocking: true})
			ev.SetHardTimeout(90, false)
			c.Execute(ctx, "", ev, nil)
		}()
		select {
		case e, ok := <-wait:
			if !ok || !e.OOMKilled || e.Code != 137 || !strings.Contains(e.Reason, "OOMKilled") {
				t.Errorf("Wait = %+v (ok %v), want OOMKilled, code 137, reason naming OOMKilled", e, ok)
			}
		case <-ctx.Done():
			t.Fatal("Wait did not fire after the container was OOM-killed")
		}
		if st, err := b.Inspect(ctx, h); err != nil || st.Running || st.Exit == nil || !st.Exit.OOMKilled {
			t.Errorf("Inspect = %+v, %v; want an OOMKilled exit", st, err)
		}
	})
}

func TestConcurrentSessionsLeaveNoPod(t *testing.T) {
	b := newBackend(t, func(c *Config) { c.NodeID = env.node + "-many" })
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			h, err := b.Start(ctx, runtimes.Spec{SessionID: fmt.Sprintf("many-%02d", i)})
			if err != nil {
				errs <- fmt.Errorf("start %d: %w", i, err)
				return
			}
			if err := b.Destroy(ctx, h); err != nil {
				errs <- fmt.Errorf("destroy %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := env.client.CoreV1().Pods(env.ns).List(testCtx(t, time.Minute), metav1.ListOptions{LabelSelector: LabelNode + "=" + labelValue(env.node+"-many")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("%d pods left after %d concurrent start+destroy", len(list.Items), n)
	}
}

// TestReapRemovesOnlyDeadOwnersPods starts pods for a live and a dead
// ephemeral owner, then reaps from a new backend as a restarted Corral
// would.
func TestReapRemovesOnlyDeadOwnersPods(t *testing.T) {
	dir := t.TempDir()
	host := runtimes.Hostname()
	lock := func(name string) (string, io.Closer) {
		p := filepath.Join(dir, name)
		l, err := runtimes.AcquireOwnerLock(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return p, l
	}
	alivePath, _ := lock("alive")
	deadPath, dead := lock("dead")
	alive := runtimes.Owner{ID: t.Name() + "-alive", Host: host, LockPath: alivePath}
	gone := runtimes.Owner{ID: t.Name() + "-dead", Host: host, LockPath: deadPath}
	b1 := newBackend(t, nil)
	keep := start(t, b1, runtimes.Spec{SessionID: "reap-keep", Owner: alive})
	lost, err := b1.Start(testCtx(t, 3*time.Minute), runtimes.Spec{SessionID: "reap-lost", Owner: gone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b1.Destroy(context.Background(), lost) })
	dead.Close() // its owner dies

	b2 := newBackend(t, nil)
	self := runtimes.Owner{ID: t.Name() + "-self", Host: host}
	reaped, err := runtimes.Reap(testCtx(t, 2*time.Minute), b2, self, nil, nil)
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	var names []string
	for _, h := range reaped {
		names = append(names, h.ID)
	}
	if len(reaped) != 1 || reaped[0].ID != lost.ID {
		t.Errorf("reaped %v, want only the dead owner's pod %s", names, lost.ID)
	}
	if !podGone(t, env.ns, lost.ID) {
		t.Errorf("the dead owner's pod %s is still there", lost.ID)
	}
	if podGone(t, env.ns, keep.ID) {
		t.Errorf("the live owner's pod %s was removed", keep.ID)
	}
}

func TestLogsHoldTheAgentsLog(t *testing.T) {
	b := newBackend(t, nil)
	h := start(t, b, runtimes.Spec{})
	rc, err := b.Logs(testCtx(t, time.Minute), h, runtimes.LogOptions{Tail: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	listening := false
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		ts, text, _ := strings.Cut(line, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("log line %q does not start with an RFC 3339 timestamp: %v", line, err)
		}
		listening = listening || strings.HasPrefix(text, "listening on")
	}
	if !listening {
		t.Errorf("the log has no \"listening on\" line:\n%s", data)
	}
}
