package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// benchNode is one `corral serve` process started by `corral bench
// cluster`: its fixed ports and --data, so it can be killed and started
// again on the same store. Only processes started here are ever signalled.
type benchNode struct {
	name    string
	api     string // http://127.0.0.1:PORT (fixed: a restart keeps it)
	bin     string
	args    []string // serve arguments after "serve"
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	log     *tailBuffer
	logPath string // when set, every run's log is appended here too
	started time.Time
}

// tailBuffer keeps the last 8 KiB written: a node's log for error messages.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = append([]byte(nil), t.b[len(t.b)-8<<10:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// benchPorts returns a port P with P..P+n-1 free on 127.0.0.1 now, from
// 18000-18999 (the bench's range, away from other tests' fixed ports),
// skipping ports in taken.
func benchPorts(n int, taken map[int]bool) (int, error) {
	start := 18000 + rand.IntN(1000-n)
	for i := 0; i < 1000; i++ {
		p := 18000 + (start-18000+i*7)%(1000-n)
		ok := true
		for j := range n {
			if taken[p+j] || !portFree(p+j) {
				ok = false
				break
			}
		}
		if ok {
			for j := range n {
				taken[p+j] = true
			}
			return p, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports in 127.0.0.1:18000-18999", n)
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// start launches the node and waits until it serves (prints its URL), the
// process exits, or ctx ends; on failure the process is killed and waited.
func (n *benchNode) start(ctx context.Context) error {
	n.log = &tailBuffer{}
	cmd := exec.Command(n.bin, append([]string{"serve"}, n.args...)...)
	cmd.Stderr = n.log
	var logFile *os.File
	if n.logPath != "" {
		f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("node %s: open its log: %w", n.name, err)
		}
		logFile = f
		cmd.Stderr = io.MultiWriter(f, n.log)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return fmt.Errorf("start node %s: %w", n.name, err)
	}
	n.cmd, n.exited, n.started = cmd, make(chan struct{}), time.Now()
	served := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "open http") {
				once.Do(func() { close(served) })
			}
		}
		_ = cmd.Wait() // after stdout's EOF, as exec requires
		if logFile != nil {
			logFile.Close()
		}
		close(n.exited)
	}()
	select {
	case <-served:
		return nil
	case <-n.exited:
		return fmt.Errorf("node %s exited before serving (%v): %s", n.name, cmd.ProcessState, lastLines(n.log.String(), 5))
	case <-ctx.Done():
		n.kill()
		return fmt.Errorf("node %s did not serve: %w; log: %s", n.name, ctx.Err(), lastLines(n.log.String(), 5))
	}
}

// running reports whether the node's process is up.
func (n *benchNode) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be reaped.
func (n *benchNode) kill() {
	if !n.running() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// stop sends SIGTERM (the node drains and leaves), then SIGKILL after
// grace, and waits for the process either way.
func (n *benchNode) stop(grace time.Duration) {
	if !n.running() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(grace):
		n.kill()
	}
}

func lastLines(s string, k int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-k):], " | ")
}

// benchHTTP sends one request with a per-request timeout and returns the
// status and body; a transport error is returned as err.
func benchHTTP(ctx context.Context, client *http.Client, timeout time.Duration, method, url, body string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

// aliveMembers is GET /api/cluster on n: the node ids of alive members.
func (n *benchNode) aliveMembers(ctx context.Context, client *http.Client) ([]string, error) {
	code, out, err := benchHTTP(ctx, client, 3*time.Second, "GET", n.api+"/api/cluster", "")
	if err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("GET /api/cluster on %s: %d %s %v", n.name, code, bytes.TrimSpace(out), err)
	}
	var v struct {
		Members []struct{ ID, Status string }
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("GET /api/cluster on %s: %w", n.name, err)
	}
	var ids []string
	for _, m := range v.Members {
		if m.Status == "alive" {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

// errStopPoll in a condition's error ends benchPoll at once: retrying
// cannot help.
var errStopPoll = errors.New("not retried")

// benchPoll calls cond every 100 ms until it returns true, an error
// wrapping errStopPoll, or until timeout; what names the awaited condition
// in the error, which also holds cond's last error.
func benchPoll(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if errors.Is(err, errStopPoll) {
			return err
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %s: %w", what, timeout, errors.Join(ctx.Err(), last))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeBenchConfig writes a serve config file for the local runtime.
func writeBenchConfig(path, body string) error {
	return os.WriteFile(path, []byte(body), 0o644)
}
