package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral/runtimes"
	"corral/transport/agentwire"
)

// readLogs reads a log to its end. The timeout is a hang guard, not a
// synchronisation: a followed log must end on its own.
func readLogs(t *testing.T, rc io.ReadCloser) (lines []string, err error) {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	done := make(chan res, 1)
	go func() {
		b, err := io.ReadAll(rc)
		done <- res{b, err}
	}()
	var r res
	select {
	case r = <-done:
	case <-time.After(90 * time.Second):
		rc.Close()
		<-done
		t.Fatal("the log did not end")
	}
	rc.Close()
	body := strings.TrimSuffix(string(r.b), "\n")
	if body == "" {
		return nil, r.err
	}
	for _, l := range strings.Split(body, "\n") {
		stamp, _, ok := strings.Cut(l, " ")
		if _, perr := time.Parse(time.RFC3339Nano, stamp); !ok || perr != nil {
			t.Errorf("log line %q does not start with an RFC 3339 timestamp and a space", l)
		}
		lines = append(lines, l)
	}
	return lines, r.err
}

// firstLine reads a followed log's first line (the tail asked for), so
// that what the test does next cannot overtake it; the returned reader
// continues after it.
func firstLine(t *testing.T, rc io.ReadCloser) (string, io.ReadCloser) {
	t.Helper()
	br := bufio.NewReader(rc)
	got := make(chan string, 1)
	go func() {
		l, _ := br.ReadString('\n')
		got <- l
	}()
	select {
	case l := <-got:
		if !strings.HasSuffix(l, "\n") {
			t.Fatalf("followed log: first line %q, want a whole line", l)
		}
		return l, struct {
			io.Reader
			io.Closer
		}{br, rc}
	case <-time.After(60 * time.Second): // a hang guard
		rc.Close()
		t.Fatal("followed log: no first line")
	}
	return "", nil
}

func logsOf(t *testing.T, ctx context.Context, b *Backend, hd *runtimes.Handle, opts runtimes.LogOptions) io.ReadCloser {
	t.Helper()
	rc, err := b.Logs(ctx, hd, opts)
	if err != nil {
		t.Fatalf("Logs(%+v): %v", opts, err)
	}
	return rc
}

func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// checkWholeAndTail reads the whole log (the agent's start line) and a
// one-line tail of a running agent.
func checkWholeAndTail(t *testing.T, ctx context.Context, b *Backend, hd *runtimes.Handle) {
	t.Helper()
	lines, err := readLogs(t, logsOf(t, ctx, b, hd, runtimes.LogOptions{Tail: -1}))
	if err != nil || !containsLine(lines, "corral-agent started") {
		t.Fatalf("whole log = %q, %v; want the agent's start line", lines, err)
	}
	tail, err := readLogs(t, logsOf(t, ctx, b, hd, runtimes.LogOptions{Tail: 1}))
	if err != nil || len(tail) != 1 || tail[0] != lines[len(lines)-1] {
		t.Fatalf("tail 1 = %q, %v; want the last line %q", tail, err, lines[len(lines)-1])
	}
}

// sshSandbox starts a sandbox on a backend with one ssh host (a real sshd
// on loopback); the test's cleanup destroys it and closes the backend.
func sshSandbox(t *testing.T, ctx context.Context, sessionID string) (*Backend, *runtimes.Handle) {
	t.Helper()
	srv := startSSHD(t)
	b, err := New(Config{AgentBinary: buildAgent(t), Hosts: []HostConfig{{Name: "h1", Mode: "ssh", SSH: srv.config(t)}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	hd, err := b.Start(ctx, runtimes.Spec{SessionID: sessionID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Destroy(context.Background(), hd) })
	return b, hd
}

func TestLogsOfAnSSHSandboxFollowUntilItStopsThenItIsGone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	b, hd := sshSandbox(t, ctx, "logs-ssh")
	checkWholeAndTail(t, ctx, b, hd)

	// Following from the end: Stop (SIGTERM to the group) makes the agent
	// log its shutdown, which arrives, and then the log ends cleanly.
	rc := logsOf(t, ctx, b, hd, runtimes.LogOptions{Follow: true, Tail: 0})
	if err := b.Stop(ctx, hd, 0); err != nil {
		t.Fatal(err)
	}
	lines, err := readLogs(t, rc)
	if err != nil || !containsLine(lines, "shutting down") || containsLine(lines, "corral-agent started") {
		t.Fatalf("followed log = %q, %v; want only the lines after tail=0, ending after the shutdown line", lines, err)
	}

	_, err = b.Logs(ctx, hd, runtimes.LogOptions{Tail: -1})
	if !errors.Is(err, runtimes.ErrNotFound) || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("logs of a stopped agent: err = %v, want ErrNotFound saying it exited", err)
	}
}

func TestLogsOfAnSSHSandboxEndCleanlyWhenItsAgentIsKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	b, hd := sshSandbox(t, ctx, "logs-kill")
	_, rc := firstLine(t, logsOf(t, ctx, b, hd, runtimes.LogOptions{Follow: true, Tail: 1}))
	pgid, _ := strconv.Atoi(hd.Meta["pgid"])
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil { // the "remote" host is this one
		t.Fatal(err)
	}
	if lines, err := readLogs(t, rc); err != nil {
		t.Fatalf("followed log of a killed agent: %q, then %v; want a clean end", lines, err)
	}
}

func TestLogsOfAnAgentModeHostOverTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	addr, certDir, cmd := startTLSAgentProc(t, "secret-logs")
	b, err := New(Config{Hosts: []HostConfig{agentHost(addr, certDir, "secret-logs")}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hd, err := b.Start(ctx, runtimes.Spec{SessionID: "logs-tls"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Destroy(context.Background(), hd)
	checkWholeAndTail(t, ctx, b, hd)

	// Destroying the sandbox leaves the operator's agent running but ends
	// the sandbox's followed log.
	_, rc := firstLine(t, logsOf(t, ctx, b, hd, runtimes.LogOptions{Follow: true, Tail: 1}))
	if err := b.Destroy(ctx, hd); err != nil {
		t.Fatal(err)
	}
	if lines, err := readLogs(t, rc); err != nil {
		t.Fatalf("followed log across Destroy: %q, then %v; want a clean end", lines, err)
	}

	// The operator stops the agent: its last words arrive, then the end.
	rc = logsOf(t, ctx, b, hd, runtimes.LogOptions{Follow: true, Tail: 0})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	lines, err := readLogs(t, rc)
	if err != nil || !containsLine(lines, "shutting down") {
		t.Fatalf("followed log = %q, %v; want the shutdown line and a clean end", lines, err)
	}
	_, err = b.Logs(ctx, hd, runtimes.LogOptions{Tail: -1})
	if !errors.Is(err, runtimes.ErrNotFound) {
		t.Fatalf("logs of an agent that is gone: err = %v, want ErrNotFound", err)
	}
}

// TestLogsOfAnAgentTooOldToServeThemIsNotSupported: an agent without
// GET /agentwire/logs (here the real agent behind a proxy that answers
// that path with a plain 404, as an older agent's router does) is
// ErrNotSupported with what to do, not a hang or a bare 404.
func TestLogsOfAnAgentTooOldToServeThemIsNotSupported(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, certDir := startTLSAgent(t, "secret-old")
	pem, err := os.ReadFile(filepath.Join(certDir, "agent.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	target := &url.URL{Scheme: "https", Host: addr}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = "" },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.2"}},
	}
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == agentwire.PathLogs {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer old.Close()
	b, err := New(Config{Hosts: []HostConfig{{Name: "old", Mode: "agent", Addr: old.Listener.Addr().String(), Token: "secret-old", Plaintext: true}}},
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hd, err := b.Start(ctx, runtimes.Spec{SessionID: "old-agent"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Destroy(context.Background(), hd)
	_, err = b.Logs(ctx, hd, runtimes.LogOptions{Tail: -1})
	if !errors.Is(err, runtimes.ErrNotSupported) || !strings.Contains(err.Error(), "older than this Corral") {
		t.Fatalf("logs of an old agent: err = %v, want ErrNotSupported saying the agent is too old", err)
	}
}
