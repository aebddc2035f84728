package remote

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
)

// buildAgent builds the real static agent once per test binary.
func buildAgent(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "corral-remote-test-")
		if err != nil {
			agentErr = err
			return
		}
		agentPath = filepath.Join(dir, "corral-agent")
		cmd := exec.Command("go", "build", "-o", agentPath, "corral/cmd/corral-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = err
			agentPath = string(out)
		}
	})
	if agentErr != nil {
		t.Fatalf("build corral-agent: %v: %s", agentErr, agentPath)
	}
	return agentPath
}

func runAction(t *testing.T, ctx context.Context, b *Backend, hd *runtimes.Handle, cmd string) *eventbus.Event {
	t.Helper()
	c, err := b.dial(ctx, hd)
	if err != nil {
		t.Fatalf("dial agent: %v", err)
	}
	defer c.Close()
	a := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: cmd, ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
	a.ID = 1
	a.SetHardTimeout(20, false)
	obs, err := c.Execute(ctx, "", a, nil)
	if err != nil {
		t.Fatalf("execute %q: %v", cmd, err)
	}
	return obs
}

func pgidAlive(pgid int) bool { return syscall.Kill(-pgid, 0) == nil }

func TestSSHBackendStartsRunsPausesAndDestroysARemoteAgent(t *testing.T) {
	srv := startSSHD(t)
	agent := buildAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sc := srv.config(t)
	b, err := New(Config{AgentBinary: agent, Hosts: []HostConfig{{Name: "h1", Mode: "ssh", SSH: sc, MaxSandboxes: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	hd, err := b.Start(ctx, runtimes.Spec{SessionID: "sess-1", Env: map[string]string{"CORRAL_TEST_VAR": "from-spec"}})
	if err != nil {
		t.Fatal(err)
	}
	pgid, _ := strconv.Atoi(hd.Meta["pgid"])
	if !pgidAlive(pgid) {
		t.Fatalf("agent process group %d not running", pgid)
	}
	obs := runAction(t, ctx, b, hd, "echo remote-$CORRAL_TEST_VAR")
	if !strings.Contains(obs.Content, "remote-from-spec") {
		t.Fatalf("observation = %q", obs.Content)
	}
	if st, err := b.Inspect(ctx, hd); err != nil || !st.Running {
		t.Fatalf("inspect = %+v, %v", st, err)
	}

	// Pause freezes the group (state T), resume thaws it.
	if err := b.Pause(ctx, hd); err != nil {
		t.Fatal(err)
	}
	if st := procState(t, pgid); st != "T" {
		t.Fatalf("paused agent state = %q, want T", st)
	}
	if err := b.Resume(ctx, hd); err != nil {
		t.Fatal(err)
	}
	obs = runAction(t, ctx, b, hd, "echo after-resume")
	if !strings.Contains(obs.Content, "after-resume") {
		t.Fatalf("after resume: %q", obs.Content)
	}

	// A second start goes to the same host (room for 2); a third is refused.
	hd2, err := b.Start(ctx, runtimes.Spec{SessionID: "sess-2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Start(ctx, runtimes.Spec{SessionID: "sess-3"}); err == nil || !strings.Contains(err.Error(), "max_sandboxes") {
		t.Fatalf("third start: err = %v", err)
	}

	dir := hd.Meta["dir"]
	if err := b.Destroy(ctx, hd); err != nil {
		t.Fatal(err)
	}
	if err := b.Destroy(ctx, hd2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for pgidAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if pgidAlive(pgid) {
		t.Fatalf("process group %d survived Destroy", pgid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("sandbox dir %s not removed: %v", dir, err)
	}
	if _, err := b.Recover(ctx, hd); err == nil {
		t.Fatal("recovering a destroyed sandbox must fail")
	}
}

func TestSSHBackendRecoverReattachesAfterARestartOfCorral(t *testing.T) {
	srv := startSSHD(t)
	agent := buildAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{AgentBinary: agent, Hosts: []HostConfig{{Name: "h1", Mode: "ssh", SSH: srv.config(t)}}}
	b1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hd, err := b1.Start(ctx, runtimes.Spec{SessionID: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	runAction(t, ctx, b1, hd, "export KEPT=yes")
	b1.Close() // "Corral restarts": the SSH connection is gone, the agent stays

	b2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	hd2, err := b2.Recover(ctx, hd)
	if err != nil {
		t.Fatal(err)
	}
	obs := runAction(t, ctx, b2, hd2, "echo kept=$KEPT")
	if !strings.Contains(obs.Content, "kept=yes") {
		t.Fatalf("shell state lost across reattach: %q", obs.Content)
	}
	if err := b2.Destroy(ctx, hd2); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadHostConfigs(t *testing.T) {
	tests := []struct {
		name string
		h    HostConfig
		want string
	}{
		{"unknown mode", HostConfig{Mode: "telnet"}, `mode "telnet"`},
		{"agent without addr", HostConfig{Mode: "agent", Token: "t"}, "needs addr"},
		{"agent without token", HostConfig{Mode: "agent", Addr: "127.0.0.2:9"}, "token"},
		{"agent with missing CA", HostConfig{Mode: "agent", Addr: "127.0.0.2:9", Token: "t", CAFile: "/nonexistent/ca.pem"}, "ca_file"},
		{"ssh without addr", HostConfig{Mode: "ssh"}, "ssh.addr"},
		{"ssh with missing key", HostConfig{Mode: "ssh", SSH: SSHConfig{Addr: "127.0.0.1:22", User: "root", KeyFile: "/nonexistent/key"}}, "ssh key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Hosts: []HostConfig{tc.h}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("no hosts must be an error")
	}
}

func procState(t *testing.T, pid int) string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if f[0] == "T" || time.Now().After(deadline) {
			return f[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
}
