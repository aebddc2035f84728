package remote

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testSSHD is a real OpenSSH server on a loopback port, with throwaway keys,
// started by the test and stopped by its cleanup.
type testSSHD struct {
	Addr       string
	ClientKey  string
	KnownHosts string
	User       string
}

func startSSHD(t testing.TB) *testSSHD {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
	}
	if _, err := os.Stat(sshd); err != nil {
		t.Fatalf("sshd not installed (apt-get install openssh-server; .ci/run does it): %v", err)
	}
	dir := t.TempDir()
	keygen := func(path string) {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	hostKey, clientKey := filepath.Join(dir, "host_key"), filepath.Join(dir, "client_key")
	keygen(hostKey)
	keygen(clientKey)
	pub, _ := os.ReadFile(clientKey + ".pub")
	auth := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(auth, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cfg := filepath.Join(dir, "sshd_config")
	// Logins get a clean home: the login shell must not run the host user's
	// ~/.bashrc (slow pyenv hooks on this machine; state from other tests).
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	conf := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin yes
StrictModes no
UsePAM no
PasswordAuthentication no
PidFile %s/sshd.pid
Subsystem sftp internal-sftp
LogLevel ERROR
SetEnv HOME=%s
`, port, hostKey, auth, dir, home)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll("/run/sshd", 0o755) // privilege-separation directory
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	logs := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case logs <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for len(logs) > 0 {
				b.WriteString(<-logs + "\n")
			}
			t.Fatalf("sshd did not listen on %s: %s", addr, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	hostPub, _ := os.ReadFile(hostKey + ".pub")
	fields := strings.Fields(string(hostPub))
	known := filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%s %s %s\n", port, fields[0], fields[1])
	if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testSSHD{Addr: addr, ClientKey: clientKey, KnownHosts: known, User: user}
}

func (s *testSSHD) config(t testing.TB) SSHConfig {
	// Unix socket paths are limited to 108 bytes: keep the agent dir short.
	dir, err := os.MkdirTemp("", "crl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return SSHConfig{Addr: s.Addr, User: s.User, KeyFile: s.ClientKey, KnownHosts: s.KnownHosts, AgentDir: dir}
}

func TestSSHRunsCommandsAndChecksHostKeys(t *testing.T) {
	srv := startSSHD(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	h := &sshHost{cfg: srv.config(t)}
	defer h.close()
	out, err := h.run(ctx, "echo hello-$((1+1))", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "hello-2" {
		t.Fatalf("out = %q", out)
	}
	if _, err := h.run(ctx, "exit 3", nil); err == nil {
		t.Fatal("a failing command must be an error")
	}

	// An unknown host key is refused with advice.
	bad := srv.config(t)
	bad.KnownHosts = filepath.Join(t.TempDir(), "empty_known_hosts")
	_ = os.WriteFile(bad.KnownHosts, nil, 0o600)
	hb := &sshHost{cfg: bad}
	_, err = hb.run(ctx, "true", nil)
	if err == nil || !strings.Contains(err.Error(), "is not in") {
		t.Fatalf("unknown host key: err = %v", err)
	}
	// A mismatched host key is refused as a possible MITM.
	other := filepath.Join(t.TempDir(), "k")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	otherPub, _ := os.ReadFile(other + ".pub")
	f := strings.Fields(string(otherPub))
	_, port, _ := net.SplitHostPort(srv.Addr)
	_ = os.WriteFile(bad.KnownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%s %s %s\n", port, f[0], f[1])), 0o600)
	hm := &sshHost{cfg: bad}
	_, err = hm.run(ctx, "true", nil)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched host key: err = %v", err)
	}
}

func TestEnsureAgentUploadsOnlyWhenTheHashDiffers(t *testing.T) {
	srv := startSSHD(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := &sshHost{cfg: srv.config(t)}
	defer h.close()

	local := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(local, []byte("#!/bin/sh\necho v1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p1, err := h.ensureAgent(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(p1) // the "remote" host is this machine
	if err != nil {
		t.Fatal(err)
	}
	p2, err := h.ensureAgent(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(p2)
	if p1 != p2 || !os.SameFile(st1, st2) || !st1.ModTime().Equal(st2.ModTime()) {
		t.Fatalf("identical agent was uploaded again: %s %s", p1, p2)
	}
	if err := os.WriteFile(local, []byte("#!/bin/sh\necho v2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p3, err := h.ensureAgent(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	if p3 == p1 {
		t.Fatal("a changed agent must get a new remote path")
	}
	got, _ := os.ReadFile(p3)
	if string(got) != "#!/bin/sh\necho v2\n" {
		t.Fatalf("remote copy = %q", got)
	}
}

func TestSSHLoginsUseTheTestHome(t *testing.T) {
	srv := startSSHD(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := &sshHost{cfg: srv.config(t)}
	defer h.close()
	out, err := h.run(ctx, "echo $HOME", nil)
	if err != nil {
		t.Fatal(err)
	}
	if home, _ := os.UserHomeDir(); strings.TrimSpace(string(out)) == home {
		t.Fatalf("ssh login HOME is the host user's %s", home)
	}
}
