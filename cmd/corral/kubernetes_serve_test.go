package main

// Crash-recovery tests of `corral serve --runtimes kubernetes` as real
// processes (issue 14): a serve killed with SIGKILL mid-command is
// restarted on the same store and re-attaches the session's pod, and a
// pod left by a `corral exec` killed with SIGKILL is reaped by the next
// serve. The pods are checked with client-go on the testbed cluster.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"corral/runtimes/kubernetes"
)

// kubeServeRig is one persistent store and one configuration of the
// kubernetes backend whose pods carry a corral.node label unique to the
// test, so the test finds (and, after a failure, removes) only its own.
type kubeServeRig struct {
	t      *testing.T
	kc     kubeCluster
	corral string
	store  string
	cfg    string
	node   string
}

func newKubeServeRig(t *testing.T) *kubeServeRig {
	t.Helper()
	kc := needKubeCluster(t)
	if testing.Short() {
		t.Skip("starts real serve processes and pods; skipped in -short mode")
	}
	dir := t.TempDir()
	r := &kubeServeRig{t: t, kc: kc, store: filepath.Join(dir, "events"), node: testNode()}
	r.corral, _ = buildCorral(t, dir)
	// The sweep is registered before any process is started, so it runs
	// after their cleanups have killed them (cleanups run last-in first-out).
	t.Cleanup(r.sweep)
	r.cfg = writeServeConfig(t, fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
[engine]
skip_git_config = true
[events]
store_dir = %q
[runtime.kubernetes]
kubeconfig = %q
node_id = %q
image_pull_policy = "Never"
`, r.store, kc.kubeconfig, r.node))
	return r
}

// serve starts `corral serve --runtimes kubernetes -v` on the rig's store;
// a failed test shows its log.
func (r *kubeServeRig) serve() *serveProc {
	p := startServe(r.t, r.corral, r.cfg, "--runtimes", "kubernetes", "-v")
	r.t.Cleanup(func() {
		if r.t.Failed() {
			r.t.Logf("serve pid %d log:\n%s", p.cmd.Process.Pid, p.stderr.String())
		}
	})
	return p
}

// pods are the test's pods (in any phase, deleting ones included).
func (r *kubeServeRig) pods() []corev1.Pod {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := r.kc.client.CoreV1().Pods(kubernetes.DefaultNamespace).List(ctx,
		metav1.ListOptions{LabelSelector: kubernetes.LabelNode + "=" + r.node})
	if err != nil {
		r.t.Fatalf("list the test's pods: %v", err)
	}
	return list.Items
}

// waitPods polls the test's pods until ok holds.
func (r *kubeServeRig) waitPods(ok func([]corev1.Pod) bool, what string) []corev1.Pod {
	r.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		pods := r.pods()
		if ok(pods) {
			return pods
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("waiting for %s: the test's pods are %v", what, podNames(pods))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sweep deletes whatever pod of the test is left (after a failure) at
// once, so a failing test leaks nothing.
func (r *kubeServeRig) sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zero := int64(0)
	_ = r.kc.client.CoreV1().Pods(kubernetes.DefaultNamespace).DeleteCollection(ctx,
		metav1.DeleteOptions{GracePeriodSeconds: &zero},
		metav1.ListOptions{LabelSelector: kubernetes.LabelNode + "=" + r.node})
}

// shutdown ends p as an operator does (SIGTERM) and checks it exits 0.
func (r *kubeServeRig) shutdown(p *serveProc) {
	r.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatalf("SIGTERM serve: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			r.t.Errorf("serve exited with %v after SIGTERM; stderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(90 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		r.t.Fatalf("serve did not exit in 90s after SIGTERM; stderr:\n%s", p.stderr.String())
	}
}

func podNames(pods []corev1.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		s := p.Name + "(" + string(p.UID) + ")"
		if p.DeletionTimestamp != nil {
			s += "[deleting]"
		}
		out = append(out, s)
	}
	return out
}

// outputWatch follows a session's live output over the events WebSocket.
type outputWatch struct {
	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
}

// watchOutput subscribes to the session's WebSocket before an action is
// submitted, so no chunk of its output is missed.
func watchOutput(t *testing.T, p *serveProc, sid string) *outputWatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	url := "ws" + strings.TrimPrefix(p.base, "http") + "api/sessions/" + sid + "/events/ws"
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		cancel()
		t.Fatalf("dial %s: %v", url, err)
	}
	conn.SetReadLimit(1 << 22)
	w := &outputWatch{conn: conn, ctx: ctx, cancel: cancel}
	t.Cleanup(w.close)
	return w
}

// waitFor reads frames until the live output of action id contains want:
// then the command is running in the pod (it has printed).
func (w *outputWatch) waitFor(t *testing.T, id int64, want string) {
	t.Helper()
	var got strings.Builder
	for {
		_, data, err := w.conn.Read(w.ctx)
		if err != nil {
			t.Fatalf("waiting for %q in the live output of action %d (so far %q): %v", want, id, got.String(), err)
		}
		var f struct {
			Type     string `json:"type"`
			ActionID int64  `json:"action_id"`
			Data     string `json:"data"`
		}
		if json.Unmarshal(data, &f) != nil || f.Type != "output" || f.ActionID != id {
			continue
		}
		got.WriteString(f.Data)
		if strings.Contains(got.String(), want) {
			return
		}
	}
}

func (w *outputWatch) close() {
	_ = w.conn.CloseNow()
	w.cancel()
}

// TestKubernetesServeKilledMidCommandReattachesThePodWithItsShellAndOutput:
// kill -9 of serve while a command runs in the session's pod; the next
// serve on the same store re-attaches the SAME pod (name and uid), answers
// the in-flight action once with its real output, continues the ids and
// keeps the shell; deleting the session then removes the pod.
func TestKubernetesServeKilledMidCommandReattachesThePodWithItsShellAndOutput(t *testing.T) {
	r := newKubeServeRig(t)
	first := r.serve()
	code, b := first.do("POST", "api/sessions", `{"runtime":"kubernetes"}`)
	if code != 201 {
		t.Fatalf("create = %d %s", code, b)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(b, &created)
	sid := created.ID
	first.waitRunning(sid)
	if got := first.observationOf(sid, first.submit(sid, "export LEFT_BEFORE_CRASH=still-here")); exitCodeOf(got) != float64(0) {
		t.Fatalf("export: %+v", got)
	}
	before := r.waitPods(func(p []corev1.Pod) bool { return len(p) == 1 }, "the session's one pod")[0]
	if h := (&rig{t: t, store: r.store}).handleOf(sid); h != before.Name {
		t.Fatalf("the session's record names sandbox %q, the cluster has pod %s", h, before.Name)
	}

	ws := watchOutput(t, first, sid)
	inflight := first.submit(sid, "echo line-1; echo line-2; echo line-3; sleep 6; echo finished-while-down")
	ws.waitFor(t, inflight, "line-3")
	first.kill()
	ws.close()
	if pods := r.pods(); len(pods) != 1 || pods[0].UID != before.UID || pods[0].DeletionTimestamp != nil {
		t.Fatalf("the pod %s did not outlive serve untouched: %v", before.Name, podNames(pods))
	}

	second := r.serve()
	obs := second.observationOf(sid, inflight)
	if obs.Observation != "run" || !strings.Contains(obs.Content, "line-1") || !strings.Contains(obs.Content, "finished-while-down") {
		t.Fatalf("in-flight action answered with %+v, want its real output", obs)
	}
	if ec := exitCodeOf(obs); ec != float64(0) {
		t.Fatalf("exit code = %v, want 0 (extras %v)", ec, obs.Extras)
	}
	second.waitRunning(sid)
	after := second.submit(sid, "echo $LEFT_BEFORE_CRASH")
	if got := second.observationOf(sid, after); !strings.Contains(got.Content, "still-here") {
		t.Fatalf("the recovered session lost its shell: %q", got.Content)
	}
	checkRecoveredEvents(t, second.eventPages(sid, "corral_events=true"), inflight, after)
	if h := (&rig{t: t, store: r.store}).handleOf(sid); h != before.Name {
		t.Fatalf("the recovered session's record names sandbox %q, want the re-attached pod %s", h, before.Name)
	}
	if pods := r.pods(); len(pods) != 1 || pods[0].Name != before.Name || pods[0].UID != before.UID {
		t.Fatalf("pods after recovery = %v, want only the re-attached %s(%s)", podNames(pods), before.Name, before.UID)
	}

	if code, b := second.do("DELETE", "api/sessions/"+sid, ""); code != 200 {
		t.Fatalf("delete the session = %d %s", code, b)
	}
	r.kc.waitNoPods(t, kubernetes.DefaultNamespace, r.node)
	r.shutdown(second)
}

// checkRecoveredEvents: ids run 0, 1, 2, ... without a gap or repeat
// across the restart, the in-flight action has exactly one observation,
// and the action after the restart comes after it.
func checkRecoveredEvents(t *testing.T, evs []apiEvent, inflight, after int64) {
	t.Helper()
	for i, ev := range evs {
		if ev.ID != int64(i) {
			t.Fatalf("event #%d has id %d: ids have a gap or a repeat: %v", i, ev.ID, eventIDs(evs))
		}
	}
	if n := len(answersTo(evs, inflight)); n != 1 {
		t.Fatalf("in-flight action %d has %d observations, want 1: %+v", inflight, n, answersTo(evs, inflight))
	}
	if after <= inflight {
		t.Fatalf("the action after the restart has id %d, not after the in-flight %d", after, inflight)
	}
}

func eventIDs(evs []apiEvent) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// startKubeExec starts `corral exec --runtime kubernetes` running command.
func startKubeExec(t *testing.T, r *kubeServeRig, command string) *execProc {
	t.Helper()
	cmd := exec.Command(r.corral, "exec", "--runtime", "kubernetes", "--config", r.cfg)
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"action":"run","args":{"command":%q}}`+"\n", command))
	// exec's temporary event store (its owner lock) goes under the test's
	// own directory: a killed exec cannot remove it, and nothing else does.
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	e := &execProc{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		e.done <- <-e.done
	})
	return e
}

// podReady reports whether the pod's containers are all ready: its agent
// is up, so the exec's command is about to run or running.
func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestKubernetesServeLeavesALiveExecsPodAloneAndReapsADeadExecs: the pod
// of a `corral exec` (an ephemeral owner) is reaped by the next serve once
// the exec was killed with SIGKILL (its store's lock is free), and left
// alone while the exec lives, which then finishes its command.
func TestKubernetesServeLeavesALiveExecsPodAloneAndReapsADeadExecs(t *testing.T) {
	r := newKubeServeRig(t)
	cases := []struct {
		name    string
		killed  bool // exec is killed with SIGKILL before serve starts
		wantPod bool // its pod is still there, not deleting, once serve is up
	}{
		{name: "live exec is not touched", killed: false, wantPod: true},
		{name: "dead exec's pod is reaped", killed: true, wantPod: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.t = t
			// It prints every few seconds: OpenHands' run answers early
			// after 10 s without output.
			e := startKubeExec(t, r, "for i in 1 2 3 4; do sleep 3; echo tick-$i; done; echo exec-done")
			pod := r.waitPods(func(p []corev1.Pod) bool { return len(p) == 1 && podReady(p[0]) }, "the exec's pod to be ready")[0]
			if c.killed {
				_ = e.cmd.Process.Signal(syscall.SIGKILL)
				_ = e.wait(t)
				if pods := r.pods(); len(pods) != 1 || pods[0].UID != pod.UID || pods[0].DeletionTimestamp != nil {
					t.Fatalf("the killed exec's pod %s did not outlive it untouched: %v", pod.Name, podNames(pods))
				}
			}
			p := r.serve() // reaps at start, before it prints its URL
			pods := r.pods()
			alive := len(pods) == 1 && pods[0].UID == pod.UID && pods[0].DeletionTimestamp == nil
			if alive != c.wantPod {
				t.Fatalf("once serve is up: pods %v, exec's %s alive = %v, want %v", podNames(pods), pod.Name, alive, c.wantPod)
			}
			if c.killed && !strings.Contains(p.stderr.String(), "id="+pod.Name) {
				// Any Corral process on the machine may reap it first (README,
				// Crashes and restarts); only its absence is asserted.
				t.Logf("serve's log does not name the reaped pod %s: another Corral process reaped it first", pod.Name)
			}
			if !c.killed {
				if err := e.wait(t); err != nil {
					t.Fatalf("exec: %v; stderr:\n%s", err, e.stderr.String())
				}
				if out := e.stdout.String(); !strings.Contains(out, "exec-done") || !strings.Contains(out, `"exit_code":0`) && !strings.Contains(out, `"exit_code": 0`) {
					t.Fatalf("exec's observation lacks its output or exit code 0:\n%s", out)
				}
			}
			r.kc.waitNoPods(t, kubernetes.DefaultNamespace, r.node)
			r.shutdown(p)
		})
	}
}
