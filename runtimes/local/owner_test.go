package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
)

// Environment of the helper process that plays a Corral killed with
// kill -9 (TestHelperCorralProcess).
const (
	helperAgentEnv = "CORRAL_LOCAL_HELPER_AGENT" // agent binary; set = helper mode
	helperStateEnv = "CORRAL_LOCAL_HELPER_STATE" // state dir
	helperTempEnv  = "CORRAL_LOCAL_HELPER_TEMP"  // temp dir
	helperLockEnv  = "CORRAL_LOCAL_HELPER_LOCK"  // owner lock it holds
)

// shortDir is a temporary directory short enough for agent socket paths
// (t.TempDir() carries the test's long name).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "cl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// crashedOwner is the owner the helper records on its sandbox.
func crashedOwner(lock string) runtimes.Owner {
	return runtimes.Owner{ID: "crashed-corral", Instance: "helper", Host: runtimes.Hostname(), LockPath: lock}
}

// runCmd runs a bash command on c and returns its trimmed output.
func runCmd(t *testing.T, c runtimes.AgentConn, cmd string) string {
	t.Helper()
	a := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: cmd, ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
	a.ID = 1
	a.SetHardTimeout(30, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obs, err := c.Execute(ctx, "", a, nil)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return strings.TrimSpace(obs.Content)
}

// TestHelperCorralProcess is not a test: run by startCrashingCorral, it
// holds an owner lock, starts a sandbox, exports a variable in its shell,
// prints the handle and waits to be killed.
func TestHelperCorralProcess(t *testing.T) {
	if os.Getenv(helperAgentEnv) == "" {
		t.Skip("helper process of TestSandboxOfAKilledCorral")
	}
	lock := os.Getenv(helperLockEnv)
	if _, err := runtimes.AcquireOwnerLock(lock); err != nil {
		t.Fatal(err)
	}
	b, err := New(WithAgentBinary(agentBin), WithStateDir(os.Getenv(helperStateEnv)), WithTempDir(os.Getenv(helperTempEnv)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := b.Start(ctx, runtimes.Spec{SessionID: "crashed-session", Owner: crashedOwner(lock)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Connect(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	runCmd(t, c, "export CRASH_VAR=survived; cd /")
	line, _ := json.Marshal(h)
	os.Stdout.Write(append(line, '\n'))
	bufio.NewReader(os.Stdin).ReadString('\n') // until kill -9
	os.Exit(0)
}

// startCrashingCorral runs the helper, waits for its sandbox, kills the
// helper with SIGKILL and returns the sandbox's handle as it printed it.
func startCrashingCorral(t *testing.T, stateDir, lock string) *runtimes.Handle {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCorralProcess$")
	cmd.Env = append(os.Environ(), helperAgentEnv+"="+agentBin, helperStateEnv+"="+stateDir,
		helperTempEnv+"="+shortDir(t), helperLockEnv+"="+lock)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	r := bufio.NewReader(out)
	line, err := r.ReadBytes('\n')
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: Corral gets no chance to clean up
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	cmd.Wait()
	var h runtimes.Handle
	if err != nil || json.Unmarshal(line, &h) != nil {
		t.Fatalf("helper printed %s%s (%v)", line, rest, err)
	}
	t.Cleanup(func() { // whatever the test did, no agent outlives it
		if pid, _ := strconv.Atoi(h.Meta[metaPID]); pid > 1 && isAgentOn(pid, h.AgentAddr) {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
	return &h
}

func TestSandboxOfAKilledCorralIsRecoveredThenReapedByTheNextBackend(t *testing.T) {
	stateDir := t.TempDir()
	lock := filepath.Join(t.TempDir(), "LOCK")
	printed := startCrashingCorral(t, stateDir, lock)

	next := newBackend(t, WithStateDir(stateDir))
	ctx := context.Background()
	listed, err := next.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != printed.ID || listed[0].Token != printed.Token {
		t.Fatalf("List after the crash = %+v, want the crashed Corral's sandbox %s", listed, printed.ID)
	}
	if o, ok := runtimes.OwnerFromMeta(listed[0].Meta); !ok || o != crashedOwner(lock) {
		t.Fatalf("state file owner = %+v, %v; want %+v", o, ok, crashedOwner(lock))
	}
	t.Run("RecoverAndConnectReachTheSameShell", func(t *testing.T) {
		h, err := next.Recover(ctx, listed[0])
		if err != nil {
			t.Fatalf("Recover from the state file alone: %v", err)
		}
		c, err := next.Connect(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := runCmd(t, c, "echo $CRASH_VAR; pwd"); got != "survived\n/" {
			t.Fatalf("shell after the crash says %q, want the variable and cwd set before it", got)
		}
	})
	t.Run("ReapRemovesItOnceItsEphemeralOwnerIsDead", func(t *testing.T) {
		self := runtimes.Owner{ID: "next-corral", Host: runtimes.Hostname(), LockPath: filepath.Join(t.TempDir(), "LOCK")}
		reaped, err := runtimes.Reap(ctx, next, self, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(reaped) != 1 || reaped[0].ID != printed.ID {
			t.Fatalf("reaped %+v, want the crashed Corral's sandbox", reaped)
		}
		assertGone(t, next, printed)
	})
}

// assertGone checks a destroyed sandbox left no agent, socket directory,
// state file or (owned) workspace.
func assertGone(t *testing.T, b *Backend, h *runtimes.Handle) {
	t.Helper()
	pid, _ := strconv.Atoi(h.Meta[metaPID])
	waitUntil(t, func() bool { return !isAgentOn(pid, h.AgentAddr) })
	if _, err := b.Recover(context.Background(), h); !errors.Is(err, runtimes.ErrNotFound) {
		t.Errorf("Recover after the reap = %v, want ErrNotFound", err)
	}
	for _, p := range []string{h.Meta[metaSockDir], b.statePath(h.ID), h.Workspace} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the reap: %v", p, err)
		}
	}
}

func TestReapByASecondBackendSparesLiveOwners(t *testing.T) {
	stateDir, dir := t.TempDir(), t.TempDir()
	deadLock, liveLock := filepath.Join(dir, "dead"), filepath.Join(dir, "live")
	if err := os.WriteFile(deadLock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := runtimes.AcquireOwnerLock(liveLock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	host := runtimes.Hostname()
	first := newBackend(t, WithStateDir(stateDir), WithTempDir(shortDir(t)))
	ctx := context.Background()
	start := func(sid string, o runtimes.Owner) *runtimes.Handle {
		h, err := first.Start(ctx, runtimes.Spec{SessionID: sid, Owner: o})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { first.Destroy(context.Background(), h) })
		return h
	}
	dead := start("dead", runtimes.Owner{ID: "dead-owner", Host: host, LockPath: deadLock})
	live := start("live", runtimes.Owner{ID: "live-owner", Host: host, LockPath: liveLock})

	second := newBackend(t, WithStateDir(stateDir))
	self := runtimes.Owner{ID: "second", Host: host, LockPath: filepath.Join(dir, "second")}
	reaped, err := runtimes.Reap(ctx, second, self, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := handleIDs(reaped); !slices.Equal(ids, []string{dead.ID}) {
		t.Fatalf("reaped %q, want only the dead owner's %s", ids, dead.ID)
	}
	assertGone(t, second, dead)
	c, err := second.Connect(ctx, live)
	if err != nil {
		t.Fatalf("the live owner's sandbox: %v", err)
	}
	defer c.Close()
	if got := runCmd(t, c, "echo still-here"); got != "still-here" {
		t.Fatalf("live owner's sandbox answers %q", got)
	}
}

func handleIDs(hs []*runtimes.Handle) []string {
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID)
	}
	return ids
}

func TestRecoverAndDestroyRefuseARecycledPid(t *testing.T) {
	sleep := exec.Command("sleep", "300")
	sleep.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	pid := sleep.Process.Pid
	b := newBackend(t)
	sockDir := filepath.Join(t.TempDir(), "corral-agent-x")
	// A handle whose pid now belongs to another program, start time and all.
	h := &runtimes.Handle{Backend: "local", ID: strconv.Itoa(pid), AgentAddr: "unix://" + sockDir + "/agent.sock",
		Meta: map[string]string{metaPID: strconv.Itoa(pid), metaStart: procStart(pid), metaSockDir: sockDir}}
	if _, err := b.Recover(context.Background(), h); !errors.Is(err, runtimes.ErrNotFound) {
		t.Fatalf("Recover of a pid that is not a corral-agent = %v, want ErrNotFound", err)
	}
	if err := b.Destroy(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err != nil || procState(pid) == "Z" {
		t.Fatalf("Destroy signalled a process that is not its agent (state %q, %v)", procState(pid), err)
	}
}

func TestStateFileHoldsTheHandleUntilDestroy(t *testing.T) {
	stateDir := t.TempDir()
	b := newBackend(t, WithStateDir(stateDir))
	o := runtimes.Owner{ID: "store", Instance: "run", Host: "h", LockPath: "/l", Durable: true}
	h, err := b.Start(context.Background(), runtimes.Spec{SessionID: "s1", Owner: o})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := runtimes.OwnerFromMeta(h.Meta); !ok || got != o {
		t.Errorf("Handle.Meta owner = %+v, want %+v", got, o)
	}
	path := filepath.Join(stateDir, h.ID+".json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st stateFile
	if err := json.Unmarshal(raw, &st); err != nil || st.Version != 1 || st.Handle == nil {
		t.Fatalf("state file %s = %s (%v)", path, raw, err)
	}
	if st.Handle.AgentAddr != h.AgentAddr || st.Handle.Token != h.Token || st.Handle.Workspace != h.Workspace || st.Handle.Meta[metaPID] != h.ID {
		t.Errorf("state file handle %+v, want %+v", st.Handle, h)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600 (it holds the token)", fi.Mode().Perm())
	}
	if err := b.Destroy(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file survived Destroy: %v", err)
	}
}

// TestReapFindsASandboxWhoseStartWasCutShortBeforeItsPidWasRecorded plays a
// Corral killed between starting its agent and writing the state file that
// names the agent's pid: only the pending state file written before the
// start is left. The next backend lists the agent (found by its socket)
// and Reap removes it; a pending start whose agent never ran is cleaned up
// too.
func TestReapFindsASandboxWhoseStartWasCutShortBeforeItsPidWasRecorded(t *testing.T) {
	stateDir, dir := t.TempDir(), t.TempDir()
	dead := runtimes.Owner{ID: "cut-short", Instance: "gone", Host: runtimes.Hostname(), LockPath: filepath.Join(dir, "dead")}
	if err := os.WriteFile(dead.LockPath, nil, 0o600); err != nil { // nobody holds it
		t.Fatal(err)
	}
	crashed := newBackend(t, WithStateDir(stateDir), WithTempDir(shortDir(t)))
	ctx := context.Background()
	pending := func(h *runtimes.Handle) *runtimes.Handle {
		p := cloneHandle(h)
		p.ID = pendingID(h.Meta[metaSockDir])
		delete(p.Meta, metaPID)
		delete(p.Meta, metaStart)
		if err := crashed.saveState(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(crashed.statePath(h.ID)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	running, err := crashed.Start(ctx, runtimes.Spec{SessionID: "agent-ran", Owner: dead})
	if err != nil {
		t.Fatal(err)
	}
	pending(running)
	never, err := crashed.Start(ctx, runtimes.Spec{SessionID: "agent-never-ran", Owner: dead})
	if err != nil {
		t.Fatal(err)
	}
	neverPending := pending(never)
	pid, _ := strconv.Atoi(never.ID)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	waitUntil(t, func() bool { return !isAgentOn(pid, never.AgentAddr) })

	next := newBackend(t, WithStateDir(stateDir))
	listed, err := next.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := handleIDs(listed), []string{neverPending.ID, running.ID}; !slices.Equal(sortedCopy(got), sortedCopy(want)) {
		t.Fatalf("List after the cut-short starts = %v, want %v (the running agent by its pid)", got, want)
	}
	self := runtimes.Owner{ID: "next-corral", Host: runtimes.Hostname(), LockPath: filepath.Join(dir, "self")}
	reaped, err := runtimes.Reap(ctx, next, self, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(reaped) != 2 {
		t.Fatalf("reaped %v, want both cut-short starts", handleIDs(reaped))
	}
	assertGone(t, next, running)
	for _, p := range []string{never.Meta[metaSockDir], next.statePath(neverPending.ID), never.Workspace} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the reap of a start whose agent never ran: %v", p, err)
		}
	}
	if left, _ := os.ReadDir(stateDir); len(left) != 0 {
		t.Errorf("state files left: %v", left)
	}
}

func sortedCopy(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
