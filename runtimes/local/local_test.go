package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"corral/runtimes"
)

var agentBin string

func TestMain(m *testing.M) {
	if bin := os.Getenv(helperAgentEnv); bin != "" { // a helper process: the parent built the agent
		agentBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "corral-local-test-")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "corral-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "../../cmd/corral-agent").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newBackend(t *testing.T, opts ...Option) *Backend {
	t.Helper()
	b, err := New(append([]Option{WithAgentBinary(agentBin), WithTempDir(t.TempDir()), WithStateDir(t.TempDir()), WithEnv("HOME=" + t.TempDir())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWarmPoolHandsOutHealthyAgentsAndRefills(t *testing.T) {
	b := newBackend(t, WithWarmPool(2))
	ctx := context.Background()
	waitUntil(t, func() bool { return b.WarmReady() == 2 })
	// Kill one warm agent: the health check must skip it.
	b.mu.Lock()
	dead := b.warm[0]
	b.mu.Unlock()
	if err := syscall.Kill(dead.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-dead.exited
	h, err := b.Start(ctx, runtimes.Spec{SessionID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if h.ID == dead.h.ID {
		t.Fatal("a dead warm agent was handed out")
	}
	if h.SessionID != "s1" || h.Meta[runtimes.MetaOwnsWorkspace] != "true" {
		t.Fatalf("handle %+v", h)
	}
	waitUntil(t, func() bool { return b.WarmReady() == 2 }) // refilled
	if err := b.Destroy(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.Workspace); !os.IsNotExist(err) {
		t.Fatalf("workspace %s left after Destroy: %v", h.Workspace, err)
	}
}

func TestWaitFiresOnKill9AndNotOnStop(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	h, err := b.Start(ctx, runtimes.Spec{SessionID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	exits, err := b.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(h.ID)
	syscall.Kill(pid, syscall.SIGKILL)
	ex, ok := <-exits
	if !ok || ex.Signal != int(syscall.SIGKILL) {
		t.Fatalf("Wait gave %+v %v, want a SIGKILL exit", ex, ok)
	}
	if _, err := b.Recover(ctx, h); err == nil {
		t.Fatal("Recover of a dead agent succeeded")
	}
	b.Destroy(ctx, h)

	h2, err := b.Start(ctx, runtimes.Spec{SessionID: "w2"})
	if err != nil {
		t.Fatal(err)
	}
	exits2, _ := b.Wait(ctx, h2)
	if err := b.Stop(ctx, h2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if ex, ok := <-exits2; ok {
		t.Fatalf("Wait reported %+v for a requested stop", ex)
	}
	b.Destroy(ctx, h2)
}
