package actors

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes/local"
)

func agentPID(t *testing.T, e *Engine, sid string) int {
	t.Helper()
	info, err := e.Get(ctxT(t), sid)
	if err != nil || info.Handle == nil {
		t.Fatalf("Get: %+v %v", info, err)
	}
	pid, err := strconv.Atoi(info.Handle.ID)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func statuses(evs []*eventbus.Event) []string {
	var out []string
	for _, ev := range evs {
		if st, ok := ev.Observation.(*eventbus.RuntimeStatusObservation); ok {
			out = append(out, st.Status)
		}
	}
	return out
}

func TestRuntimeRestartsAfterAgentKill9(t *testing.T) {
	e, _ := newLocalEngine(t, testConfig())
	sid := startSession(t, e, SessionSpec{})
	ctx := ctxT(t)
	if _, _, err := e.Run(ctx, sid, cmd("export BEFORE=1; echo started > marker.txt")); err != nil {
		t.Fatal(err)
	}
	pid := agentPID(t, e, sid)
	inflight, err := e.Submit(ctx, sid, cmd("sleep 60"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the command start
	must(t, syscall.Kill(pid, syscall.SIGKILL))

	obs, err := waitObservation(ctx, e, sid, inflight)
	if err != nil {
		t.Fatal(err)
	}
	eo, ok := obs.Observation.(*eventbus.ErrorObservation)
	if !ok || eo.ErrorID != ErrIDRuntimeRestarted || !strings.Contains(obs.Content, "sandbox exited") {
		t.Fatalf("in-flight action answered with %s %+v %q", obs.Type(), obs.Observation, obs.Content)
	}
	// The session works afterwards, in the same workspace, with a new agent.
	_, after, err := e.Run(ctx, sid, cmd("cat marker.txt; echo BEFORE=$BEFORE"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(after.Content); got != "started\nBEFORE=" {
		t.Fatalf("after restart: %q", got)
	}
	if newPID := agentPID(t, e, sid); newPID == pid {
		t.Fatalf("agent pid unchanged (%d)", pid)
	}
	evs := history(t, e, sid)
	st := strings.Join(statuses(evs), ",")
	if !strings.Contains(st, eventbus.StatusReady+","+eventbus.StatusErrorRuntimeDisconnected+",") || !strings.HasSuffix(st, eventbus.StatusReady) {
		t.Fatalf("statuses %s", st)
	}
	checkExactlyOne(t, evs)
	info, _ := e.Get(ctx, sid)
	if info.Restarts != 1 || info.State != StateRunning {
		t.Fatalf("info after restart: %+v", info)
	}
}

func TestRuntimeGivesUpAfterRetries(t *testing.T) {
	cfg := testConfig()
	cfg.RestartMaxRetries = 2
	e, _ := newLocalEngine(t, cfg)
	sid := startSession(t, e, SessionSpec{})
	ctx := ctxT(t)
	for i := 0; i <= cfg.RestartMaxRetries; i++ {
		waitFor(t, func() bool {
			info, err := e.Get(ctx, sid)
			return err == nil && info.RuntimeStatus == eventbus.StatusReady && info.Restarts == i
		})
		must(t, syscall.Kill(agentPID(t, e, sid), syscall.SIGKILL))
	}
	waitFor(t, func() bool { info, err := e.Get(ctx, sid); return err == nil && info.State == StateError })
	info, _ := e.Get(ctx, sid)
	if !strings.Contains(info.Error, "gave up after 2 restarts") {
		t.Fatalf("error %q", info.Error)
	}
	evs := history(t, e, sid)
	if last := statuses(evs); last[len(last)-1] != eventbus.StatusError {
		t.Fatalf("statuses %v", last)
	}
	if _, err := e.Submit(ctx, sid, cmd("true")); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("submit to failed session: %v", err)
	}
	if n := countChildren(t); n != 0 {
		out, _ := exec.Command("ps", "-ef", "--forest").Output()
		t.Fatalf("%d agent processes left after the session failed:\n%s", n, out)
	}
}

func TestPauseResumeLocal(t *testing.T) {
	e, _ := newLocalEngine(t, testConfig())
	sid := startSession(t, e, SessionSpec{})
	ctx := ctxT(t)
	info, err := e.Pause(ctx, sid)
	if err != nil || info.State != StatePaused {
		t.Fatalf("Pause: %+v %v", info, err)
	}
	id, err := e.Submit(ctx, sid, cmd("echo after-resume"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if len(answers(history(t, e, sid))[id]) != 0 {
		t.Fatal("action ran while paused")
	}
	if info, err = e.Resume(ctx, sid); err != nil || info.State != StateRunning {
		t.Fatalf("Resume: %+v %v", info, err)
	}
	obs, err := waitObservation(ctx, e, sid, id)
	if err != nil || strings.TrimSpace(obs.Content) != "after-resume" {
		t.Fatalf("after resume: %v %v", obs, err)
	}
}

func TestLocalRefusals(t *testing.T) {
	t.Run("agent binary missing says how to build it", func(t *testing.T) {
		_, err := local.New(local.WithAgentBinary("/nonexistent/corral-agent"))
		if err == nil || !strings.Contains(err.Error(), "make build") {
			t.Fatalf("err = %v", err)
		}
		t.Setenv("PATH", t.TempDir())
		_, err = local.New()
		if err == nil || !strings.Contains(err.Error(), "corral-agent binary not found") || !strings.Contains(err.Error(), "make build") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("workspace missing", func(t *testing.T) {
		e, _ := newLocalEngine(t, testConfig())
		ctx := ctxT(t)
		info, err := e.CreateSession(ctx, SessionSpec{Workspace: "/nonexistent/dir"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.WaitReady(ctx, info.ID); err == nil || !strings.Contains(err.Error(), "workspace /nonexistent/dir does not exist") {
			t.Fatalf("WaitReady = %v", err)
		}
	})
	t.Run("workspace not writable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			// root writes anywhere; use a read-only bind instead: a file, not a dir
			ws := t.TempDir() + "/file"
			must(t, os.WriteFile(ws, nil, 0o644))
			e, _ := newLocalEngine(t, testConfig())
			ctx := ctxT(t)
			info, err := e.CreateSession(ctx, SessionSpec{Workspace: ws})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.WaitReady(ctx, info.ID); err == nil || !strings.Contains(err.Error(), "is not a directory") {
				t.Fatalf("WaitReady = %v", err)
			}
			return
		}
		ws := t.TempDir()
		must(t, os.Chmod(ws, 0o500))
		e, _ := newLocalEngine(t, testConfig())
		ctx := ctxT(t)
		info, _ := e.CreateSession(ctx, SessionSpec{Workspace: ws})
		if err := e.WaitReady(ctx, info.ID); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Fatalf("WaitReady = %v", err)
		}
	})
}

// countChildren counts live (non-zombie) child processes of this test
// process, from /proc.
func countChildren(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == me && f[0] != "Z" {
			n++
		}
	}
	return n
}
