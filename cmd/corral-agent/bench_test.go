package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"corral/transport/agentwire"
)

// vmRSSkB reads VmRSS of pid from /proc.
func vmRSSkB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// BenchmarkAgentEchoRoundTrip drives the real binary and executor: `echo hi`
// through agentwire over a unix socket, against spawning `bash -c 'echo hi'`
// in the same run. It also reports the agent's idle RSS, read from
// /proc/<pid>/status after start and before any action.
func BenchmarkAgentEchoRoundTrip(b *testing.B) {
	sockDir, err := os.MkdirTemp("", "cab")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "a.sock")
	home := b.TempDir()
	cmd := exec.Command(agentBin, "--listen", "unix://"+sock, "--token", token, "--workdir", b.TempDir())
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line := make([]byte, 256)
	if n, err := out.Read(line); err != nil || !strings.HasPrefix(string(line[:n]), "listening on ") {
		b.Fatalf("agent did not start: %q %v", line[:n], err)
	}
	time.Sleep(500 * time.Millisecond) // let start-up garbage settle
	idleRSS := vmRSSkB(cmd.Process.Pid)

	ctx := context.Background()
	c, err := agentwire.Dial(ctx, "unix://"+sock, token)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Execute(ctx, "", runEvent("true"), nil); err != nil { // warm up
		b.Fatal(err)
	}
	base := make([]time.Duration, 0, b.N)
	wire := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if o, err := exec.Command("bash", "-c", "echo hi").Output(); err != nil || string(o) != "hi\n" {
			b.Fatal(err)
		}
		base = append(base, time.Since(t0))
		t0 = time.Now()
		obs, err := c.Execute(ctx, "", runEvent("echo hi"), nil)
		if err != nil || obs.Content != "hi" {
			b.Fatalf("%v %q", err, obs.Content)
		}
		wire = append(wire, time.Since(t0))
	}
	b.StopTimer()
	p50 := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	wp, bp := p50(wire), p50(base)
	b.ReportMetric(float64(wp)/1e6, "p50-ms")
	b.ReportMetric(float64(bp)/1e6, "baseline-spawn-p50-ms")
	b.ReportMetric(float64(wp)/float64(bp), "ratio")
	b.ReportMetric(float64(idleRSS)/1024, "idle-rss-MB")
	b.ReportMetric(float64(vmRSSkB(cmd.Process.Pid))/1024, "rss-after-MB")
}
