package remote

import (
	"context"
	"net"
	"os/exec"
	"sort"
	"testing"
	"time"

	"corral/runtimes"
	"corral/transport/agentwire"
)

func p50(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func echoRoundTrips(b *testing.B, ctx context.Context, c *agentwire.Client) time.Duration {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		obs := runOn(b, ctx, c, "echo hi", nil)
		lat = append(lat, time.Since(start))
		if obs.Content != "hi" {
			b.Fatalf("obs = %q", obs.Content)
		}
	}
	b.StopTimer()
	return p50(lat)
}

// sshTrue is the baseline: `ssh host true` with the same key and host
// settings, a full connection each time (what a naive remote backend pays).
func sshTrue(b *testing.B, srv *testSSHD, n int) time.Duration {
	b.Helper()
	_, port, _ := net.SplitHostPort(srv.Addr)
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		out, err := exec.Command("ssh", "-p", port, "-i", srv.ClientKey, "-o", "UserKnownHostsFile="+srv.KnownHosts,
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", srv.User+"@127.0.0.1", "true").CombinedOutput()
		if err != nil {
			b.Fatalf("ssh true: %v: %s", err, out)
		}
		lat = append(lat, time.Since(start))
	}
	return p50(lat)
}

// BenchmarkRemoteTLSRoundTrip: `echo hi` through the remote backend to an
// agent over loopback TLS (target p50 <= 3 ms).
func BenchmarkRemoteTLSRoundTrip(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	addr, certDir := startTLSAgent(b, "tok")
	be, err := New(Config{Hosts: []HostConfig{agentHost(addr, certDir, "tok")}})
	if err != nil {
		b.Fatal(err)
	}
	hd, err := be.Start(ctx, runtimes.Spec{SessionID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	c, err := be.dial(ctx, hd)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	runOn(b, ctx, c, "true", nil) // warm
	med := echoRoundTrips(b, ctx, c)
	b.ReportMetric(float64(med.Microseconds())/1000, "p50-ms")
	b.ReportMetric(3, "target-ms")
}

// BenchmarkRemoteSSH measures `echo hi` through the SSH tunnel (target p50
// <= 5 ms) and sandbox start over SSH with the agent already uploaded
// (target p50 <= 300 ms), beside the baseline `ssh host true`.
func BenchmarkRemoteSSH(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	srv := startSSHD(b)
	be, err := New(Config{AgentBinary: buildAgent(b), Hosts: []HostConfig{{Name: "h", Mode: "ssh", SSH: srv.config(b), MaxSandboxes: 64}}})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	// First start uploads the agent; it is not measured.
	hd, err := be.Start(ctx, runtimes.Spec{SessionID: "warm"})
	if err != nil {
		b.Fatal(err)
	}
	c, err := be.dial(ctx, hd)
	if err != nil {
		b.Fatal(err)
	}
	runOn(b, ctx, c, "true", nil)
	rt := echoRoundTrips(b, ctx, c)
	c.Close()
	_ = be.Destroy(ctx, hd)

	starts := make([]time.Duration, 0, 10)
	for i := 0; i < 10; i++ {
		t0 := time.Now()
		h, err := be.Start(ctx, runtimes.Spec{SessionID: "s"})
		if err != nil {
			b.Fatal(err)
		}
		starts = append(starts, time.Since(t0))
		_ = be.Destroy(ctx, h)
	}
	base := sshTrue(b, srv, 10)
	st := p50(starts)
	b.ReportMetric(float64(rt.Microseconds())/1000, "echo-p50-ms")
	b.ReportMetric(float64(st.Microseconds())/1000, "start-p50-ms")
	b.ReportMetric(float64(base.Microseconds())/1000, "ssh-true-p50-ms")
	b.ReportMetric(float64(st)/float64(base), "start/ssh-true")
}
