package remote

import (
	"context"
	"os/exec"
	"testing"

	"corral/runtimes"
	"corral/runtimes/backendtest"
)

// TestConformanceRemote runs the shared action suite against both kinds
// of remote host: ssh mode (the agent uploaded to and started on a real
// sshd on loopback, reached through the SSH tunnel) and agent mode (an
// agent already listening with TLS). The "remote" host is this machine,
// so python3 is there when it is here.
func TestConformanceRemote(t *testing.T) {
	_, err := exec.LookPath("python3")
	hasPython := err == nil
	harness := func(b *Backend) backendtest.Harness {
		return backendtest.Harness{
			Backend: b,
			Start: func(t *testing.T) *runtimes.Handle {
				hd, err := b.Start(context.Background(), runtimes.Spec{SessionID: "conformance"})
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				t.Cleanup(func() {
					if err := b.Destroy(context.Background(), hd); err != nil {
						t.Errorf("Destroy: %v", err)
					}
				})
				return hd
			},
			HasPython: hasPython,
		}
	}
	t.Run("ssh", func(t *testing.T) {
		srv := startSSHD(t)
		b, err := New(Config{AgentBinary: buildAgent(t), Hosts: []HostConfig{{Name: "ssh1", Mode: "ssh", SSH: srv.config(t)}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		backendtest.Run(t, harness(b))
	})
	t.Run("agent-tls", func(t *testing.T) {
		addr, certDir := startTLSAgent(t, "conformance-token")
		b, err := New(Config{Hosts: []HostConfig{agentHost(addr, certDir, "conformance-token")}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		backendtest.Run(t, harness(b))
	})
}
