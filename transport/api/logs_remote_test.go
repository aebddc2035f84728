package api

import (
	"bufio"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"corral/actors"
	"corral/eventbus"
	"corral/runtimes/remote"
)

// startLoopbackAgent runs the real agent as an operator would on a remote
// host (agent mode), on a loopback TCP port (clear text is allowed there),
// and returns its address and process; the test's cleanup stops it.
func startLoopbackAgent(t *testing.T, token string) (string, *os.Process) {
	t.Helper()
	cmd := exec.Command(buildAgent(t), "--listen", "127.0.0.1:0", "--token", token, "--workdir", t.TempDir())
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Scan()
		line <- sc.Text()
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		if addr, ok := strings.CutPrefix(l, "listening on "); ok {
			return addr, cmd.Process
		}
		t.Fatalf("agent printed %q, want \"listening on ADDR\"", l)
	case <-time.After(60 * time.Second): // a hang guard
		t.Fatal("the agent did not print its address")
	}
	return "", nil
}

// TestLogsOfARemoteSandboxThroughTheAPI: a session on the remote runtime
// (agent mode) serves its agent's log like a local one: the lines so far,
// then followed until the sandbox ends (here its operator stops the agent),
// with the agent's last words and then the end line.
func TestLogsOfARemoteSandboxThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real agent; skipped in -short mode")
	}
	addr, agent := startLoopbackAgent(t, "remote-logs-token")
	backend, err := remote.New(remote.Config{Hosts: []remote.HostConfig{{Name: "box", Mode: "agent", Addr: addr,
		Token: "remote-logs-token", Plaintext: true}}}, remote.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	f := newEngineFixture(t, backend, nil)
	var s Session
	f.mustJSON("POST", "/api/sessions", map[string]any{"runtime": "remote"}, 201, &s)
	for deadline := time.Now().Add(60 * time.Second); s.Status != actors.StateRunning || s.RuntimeStatus != eventbus.StatusReady; time.Sleep(20 * time.Millisecond) {
		if s.Status == actors.StateError || time.Now().After(deadline) {
			t.Fatalf("remote session never became ready: %+v", s)
		}
		f.mustJSON("GET", "/api/sessions/"+s.ID, nil, 200, &s)
	}
	checkLogsSoFar(t, f.fixture, s.ID)

	res := followLogs(t, f.fixture, s.ID, 0)
	defer res.Body.Close()
	read := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(res.Body) // ends when the server ends the stream
		read <- string(b)
	}()
	if err := agent.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var body string
	select {
	case body = <-read:
	case <-time.After(90 * time.Second): // a hang guard, not a synchronisation
		t.Fatal("the followed log did not end after the agent stopped")
	}
	lines := logLines(t, body)
	if len(lines) < 2 || !strings.Contains(body, "corral-agent: shutting down") ||
		!strings.HasSuffix(lines[len(lines)-1], " corral: end of logs: the sandbox stopped") {
		t.Fatalf("followed log = %q, want the agent's last line (shutting down), then the end line", body)
	}
}
