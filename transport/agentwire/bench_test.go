package agentwire

import (
	"context"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"corral/eventbus"
)

// streamExec answers every action at once after emitting size bytes of
// output in 32 KiB pieces: it isolates the protocol's own cost.
type streamExec struct{ size int }

func (x streamExec) Execute(ctx context.Context, ev *eventbus.Event, onOutput func([]byte)) *eventbus.Event {
	buf := make([]byte, 32<<10)
	for i := range buf {
		buf[i] = 'a' + byte(i%26)
	}
	for left := x.size; left > 0; left -= len(buf) {
		onOutput(buf[:min(left, len(buf))])
	}
	md := eventbus.DefaultMetadata()
	md.ExitCode = 0
	return eventbus.NewObservation(ev.ID, "", &eventbus.CmdOutputObservation{Command: "stream", Metadata: md})
}
func (streamExec) ListFiles(string) []string                       { return nil }
func (streamExec) UploadZip(string, io.Reader, string, bool) error { return nil }
func (streamExec) DownloadZip(io.Writer, string) error             { return nil }

func serveExec(b *testing.B, x Executor) string {
	srv, err := NewServer(x, testToken, WithResultRetention(time.Minute, 16))
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(shortTempDir(b), "b.sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		b.Fatal(err)
	}
	hs := newHTTPServer(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	b.Cleanup(func() { srv.Close(); hs.Close(); <-done })
	return "unix://" + p
}

func p50(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkEchoRoundTrip: `echo hi` through agentwire over a unix socket
// (executor spawns bash -c per action) against spawning `bash -c 'echo hi'`
// directly, both measured here. agentwire-overhead-ms is the difference.
func BenchmarkEchoRoundTrip(b *testing.B) {
	a := startAgent(b, "unix")
	c := dial(b, a.addr)
	ctx := context.Background()
	action := runAction("echo hi")
	base := make([]time.Duration, 0, b.N)
	wire := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if out, err := exec.Command("bash", "-c", "echo hi").Output(); err != nil || string(out) != "hi\n" {
			b.Fatal(err)
		}
		base = append(base, time.Since(t0))
		t0 = time.Now()
		obs, err := c.Execute(ctx, "", action, nil)
		if err != nil || obs.Content != "hi\n" {
			b.Fatal(err)
		}
		wire = append(wire, time.Since(t0))
	}
	b.StopTimer()
	bp, wp := p50(base), p50(wire)
	b.ReportMetric(ms(wp), "p50-ms")
	b.ReportMetric(ms(bp), "baseline-spawn-p50-ms")
	b.ReportMetric(ms(wp-bp), "agentwire-overhead-ms")
	b.ReportMetric(float64(wp)/float64(bp), "ratio")
}

// BenchmarkProtocolRoundTrip: one exec/result round trip with an executor
// that answers at once, against a plain request/response over a raw unix
// socket pair in the same run.
func BenchmarkProtocolRoundTrip(b *testing.B) {
	addr := serveExec(b, streamExec{size: 0})
	c := dial(b, addr)
	ctx := context.Background()
	action := runAction("x")
	rawP50 := rawUnixRoundTrip(b, b.N)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := c.Execute(ctx, "", action, nil); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(ms(p50(lat)), "p50-ms")
	b.ReportMetric(ms(rawP50), "baseline-raw-socket-p50-ms")
	b.ReportMetric(float64(p50(lat))/float64(rawP50), "ratio")
}

// BenchmarkStream1MiB: 1 MiB of output streamed as chunks through agentwire
// over a unix socket, against copying 1 MiB through a raw unix socket.
func BenchmarkStream1MiB(b *testing.B) {
	const size = 1 << 20
	addr := serveExec(b, streamExec{size: size})
	c := dial(b, addr)
	ctx := context.Background()
	action := runAction("stream")
	rawRate := rawUnixThroughput(b, size, max(b.N, 5))
	b.SetBytes(size)
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for range b.N {
		got := 0
		if _, err := c.Execute(ctx, "", action, func(_ uint64, d []byte) { got += len(d) }); err != nil {
			b.Fatal(err)
		}
		if got != size {
			b.Fatalf("streamed %d bytes, want %d", got, size)
		}
	}
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	rate := float64(size) * float64(b.N) / el.Seconds() / 1e6
	// CPU per MiB (agent and client together, both in this process) bounds
	// the rate an unloaded machine reaches; wall-clock rates swing with
	// whatever else the machine runs.
	b.ReportMetric(ms(cpu)/float64(b.N), "cpu-ms/MiB")
	b.ReportMetric(float64(size)/1e6/(cpu.Seconds()/float64(b.N)), "cpu-bound-MB/s")
	b.ReportMetric(rate, "agentwire-MB/s")
	b.ReportMetric(rawRate, "baseline-raw-socket-MB/s")
	b.ReportMetric(rate/rawRate, "ratio")
}

func unixPair(b *testing.B) (net.Conn, net.Conn) {
	p := filepath.Join(shortTempDir(b), "r.sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); acc <- c }()
	cl, err := net.Dial("unix", p)
	if err != nil {
		b.Fatal(err)
	}
	return cl, <-acc
}

func rawUnixRoundTrip(b *testing.B, n int) time.Duration {
	cl, sv := unixPair(b)
	defer cl.Close()
	defer sv.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			k, err := sv.Read(buf)
			if err != nil {
				return
			}
			if _, err := sv.Write(buf[:k]); err != nil {
				return
			}
		}
	}()
	msg := make([]byte, 200)
	buf := make([]byte, 512)
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		_, _ = cl.Write(msg)
		if _, err := io.ReadFull(cl, buf[:len(msg)]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	return p50(lat)
}

func rawUnixThroughput(b *testing.B, size, n int) float64 {
	cl, sv := unixPair(b)
	defer cl.Close()
	go func() {
		defer sv.Close()
		buf := make([]byte, 32<<10)
		for left := size * n; left > 0; left -= len(buf) {
			if _, err := sv.Write(buf[:min(left, len(buf))]); err != nil {
				return
			}
		}
	}()
	t0 := time.Now()
	k, _ := io.Copy(io.Discard, cl)
	if k != int64(size*n) {
		b.Fatalf("raw copy moved %d bytes", k)
	}
	return float64(k) / time.Since(t0).Seconds() / 1e6
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
