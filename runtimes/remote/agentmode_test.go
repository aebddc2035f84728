package remote

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
	"corral/transport/agentwire"
)

// startTLSAgent runs the real agent on a loopback address with a
// certificate made by its own --generate-cert, and returns its address and
// the directory holding agent.crt/agent.key.
func startTLSAgent(t testing.TB, token string, extra ...string) (addr, certDir string) {
	t.Helper()
	addr, certDir, _ = startTLSAgentProc(t, token, extra...)
	return addr, certDir
}

// startTLSAgentProc is startTLSAgent that also returns the agent's process
// (stopped by the test's cleanup if the test did not end it).
func startTLSAgentProc(t testing.TB, token string, extra ...string) (addr, certDir string, cmd *exec.Cmd) {
	t.Helper()
	bin := buildAgent(t)
	certDir = t.TempDir()
	if out, err := exec.Command(bin, "--generate-cert", certDir, "--cert-hosts", "127.0.0.2").CombinedOutput(); err != nil {
		t.Fatalf("--generate-cert: %v: %s", err, out)
	}
	args := append([]string{"--listen", "127.0.0.2:0", "--token", token, "--workdir", t.TempDir(),
		"--tls-cert", filepath.Join(certDir, "agent.crt"), "--tls-key", filepath.Join(certDir, "agent.key")}, extra...)
	cmd = exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		addr = strings.TrimPrefix(l, "listening on ")
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not print its address")
	}
	return addr, certDir, cmd
}

func agentHost(addr, certDir, token string) HostConfig {
	return HostConfig{Name: "tls1", Mode: "agent", Addr: addr, Token: token, CAFile: filepath.Join(certDir, "agent.crt")}
}

func runOn(t testing.TB, ctx context.Context, c *agentwire.Client, cmd string, onChunk func(uint64, []byte)) *eventbus.Event {
	t.Helper()
	a := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: cmd, ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
	a.ID = 1
	a.SetHardTimeout(30, false)
	obs, err := c.Execute(ctx, "", a, onChunk)
	if err != nil {
		t.Fatalf("execute %q: %v", cmd, err)
	}
	return obs
}

func TestAgentModeOverTLSVerifiesTheServerAndTheToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	addr, certDir := startTLSAgent(t, "secret-1")

	b, err := New(Config{Hosts: []HostConfig{agentHost(addr, certDir, "secret-1")}})
	if err != nil {
		t.Fatal(err)
	}
	hd, err := b.Start(ctx, runtimes.Spec{SessionID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.dial(ctx, hd)
	if err != nil {
		t.Fatal(err)
	}
	if obs := runOn(t, ctx, c, "echo over-tls", nil); !strings.Contains(obs.Content, "over-tls") {
		t.Fatalf("obs = %q", obs.Content)
	}
	c.Close()
	// An agent-mode host serves one sandbox at a time.
	if _, err := b.Start(ctx, runtimes.Spec{SessionID: "s2"}); err == nil {
		t.Fatal("second sandbox on a one-agent host must be refused")
	}
	if err := b.Destroy(ctx, hd); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		host HostConfig
		want string
	}{
		{"wrong token", agentHost(addr, certDir, "wrong"), "token"},
		{"certificate of another agent", func() HostConfig {
			other := t.TempDir()
			if out, err := exec.Command(buildAgent(t), "--generate-cert", other, "--cert-hosts", "127.0.0.2").CombinedOutput(); err != nil {
				t.Fatalf("%v %s", err, out)
			}
			return agentHost(addr, other, "secret-1")
		}(), "certificate"},
		{"name not in the certificate", func() HostConfig {
			h := agentHost(addr, certDir, "secret-1")
			h.ServerName = "agent.example"
			return h
		}(), "certificate"},
		{"plaintext against a TLS agent", HostConfig{Name: "p", Mode: "agent", Addr: addr, Token: "secret-1", Plaintext: true}, ""},
		{"host that is down", agentHost("127.0.0.2:1", certDir, "secret-1"), "refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(Config{Hosts: []HostConfig{tc.host}})
			if err != nil {
				t.Fatal(err)
			}
			sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
			defer scancel()
			_, err = b.Start(sctx, runtimes.Spec{SessionID: "x"})
			if err == nil {
				t.Fatal("start must fail")
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestAgentRequiresClientCertificatesWhenConfigured(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	clientDir := t.TempDir()
	if out, err := exec.Command(buildAgent(t), "--generate-cert", clientDir, "--cert-hosts", "controller").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	addr, certDir := startTLSAgent(t, "tok", "--tls-client-ca", filepath.Join(clientDir, "agent.crt"))

	without := agentHost(addr, certDir, "tok")
	b, _ := New(Config{Hosts: []HostConfig{without}})
	if _, err := b.Start(ctx, runtimes.Spec{SessionID: "x"}); err == nil {
		t.Fatal("a client without a certificate must be refused")
	}
	with := agentHost(addr, certDir, "tok")
	with.CertFile, with.KeyFile = filepath.Join(clientDir, "agent.crt"), filepath.Join(clientDir, "agent.key")
	b2, _ := New(Config{Hosts: []HostConfig{with}})
	hd, err := b2.Start(ctx, runtimes.Spec{SessionID: "x"})
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	_ = b2.Destroy(ctx, hd)
}

func TestAgentRefusesANetworkListenerWithoutTLS(t *testing.T) {
	out, err := exec.Command(buildAgent(t), "--listen", "0.0.0.0:0", "--token", "x").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no TLS") {
		t.Fatalf("agent on 0.0.0.0 without TLS: err=%v out=%s", err, out)
	}
}

// cuttingProxy forwards TCP to target and can cut every live connection.
type cuttingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newCuttingProxy(t *testing.T, target string) *cuttingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttingProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *cuttingProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestCuttingTheConnectionMidCommandLosesNoOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	addr, certDir := startTLSAgent(t, "tok")
	proxy := newCuttingProxy(t, addr)
	h := agentHost(proxy.ln.Addr().String(), certDir, "tok")
	h.ServerName = "127.0.0.2"
	b, err := New(Config{Hosts: []HostConfig{h}})
	if err != nil {
		t.Fatal(err)
	}
	hd, err := b.Start(ctx, runtimes.Spec{SessionID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.dial(ctx, hd, agentwire.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var mu sync.Mutex
	var streamed strings.Builder
	cuts := 0
	onChunk := func(_ uint64, d []byte) {
		mu.Lock()
		streamed.Write(d)
		n := strings.Count(streamed.String(), "line-")
		mu.Unlock()
		if (n >= 10 && cuts == 0) || (n >= 30 && cuts == 1) {
			cuts++
			go proxy.cut()
		}
	}
	obs := runOn(t, ctx, c, "for i in $(seq 1 60); do echo line-$i; sleep 0.02; done", onChunk)
	for i := 1; i <= 60; i++ {
		if !strings.Contains(obs.Content, "line-"+itoa(i)+"\n") && !strings.HasSuffix(obs.Content, "line-"+itoa(i)) {
			t.Fatalf("observation lost line-%d after %d cuts:\n%s", i, cuts, obs.Content)
		}
	}
	if cuts < 2 {
		t.Fatalf("the proxy cut the connection only %d times", cuts)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i <= 60; i++ {
		if n := strings.Count(streamed.String(), "line-"+itoa(i)+"\n"); n != 1 {
			t.Fatalf("streamed line-%d %d times", i, n)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
