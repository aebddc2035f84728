package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"corral/eventbus"
	"corral/transport/agentwire"
)

var agentBin string

func TestMain(m *testing.M) {
	if os.Getenv(controllerEnv) != "" {
		os.Exit(controllerMain())
	}
	dir, err := os.MkdirTemp("", "corral-agent-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "corral-agent")
	build := exec.Command("go", "build", "-o", agentBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building corral-agent:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := 0
	func() {
		defer os.RemoveAll(dir)
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		code = m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
			}
		}
	}()
	os.Exit(code)
}

const token = "e2e-token"

type agentProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *bytes.Buffer
	exited chan struct{}
}

// startAgent runs the built binary with args (plus a real workdir) and
// waits for its "listening on" line.
func startAgent(t *testing.T, prefix []string, env []string, args ...string) *agentProc {
	t.Helper()
	argv := append(append([]string{}, prefix...), agentBin)
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// A private HOME: the agent's bash must not read (or write) the
	// machine's ~/.bashrc.
	cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir()), env...)
	cmd.WaitDelay = 5 * time.Second // never hang on pipes held by a stray child
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	})
	select {
	case line, ok := <-lines:
		addr, found := strings.CutPrefix(line, "listening on ")
		if !ok || !found {
			t.Fatalf("first stdout line %q, want \"listening on ADDR\"; stderr:\n%s", line, p.stderr)
		}
		p.addr = addr
	case <-time.After(20 * time.Second):
		t.Fatalf("agent did not print its address; stderr:\n%s", p.stderr)
	}
	return p
}

// stop sends SIGTERM to the agent (or to pid when non-zero) and returns
// the exit code of the started process.
func (p *agentProc) stop(t *testing.T, pid ...int) int {
	t.Helper()
	target := p.cmd.Process.Pid
	if len(pid) > 0 {
		target = pid[0]
	}
	if err := syscall.Kill(target, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("agent did not exit within 10s of SIGTERM; stderr:\n%s", p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// descendants lists every process below pid (from /proc).
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], n)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func runEvent(cmd string) *eventbus.Event {
	return eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: cmd, Blocking: true, ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
}

func TestAgentServesAgentwireOverUnixSocketAndShutsDownClean(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "ca")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "agent.sock")
	work := t.TempDir()
	p := startAgent(t, nil, []string{"CORRAL_AGENT_TOKEN=" + token}, "--listen", "unix://"+sock, "--workdir", work)
	if p.addr != "unix://"+sock {
		t.Fatalf("printed %q", p.addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := agentwire.Dial(ctx, p.addr, token, agentwire.WithClientVersion("e2e"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	obs, err := c.Execute(ctx, "", runEvent("echo hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	run, ok := obs.Observation.(*eventbus.CmdOutputObservation)
	if !ok || obs.Content != "hi" || run.Metadata.ExitCode != 0 {
		t.Fatalf("echo hi gave %T %q", obs.Observation, obs.Content)
	}
	var streamed bytes.Buffer
	var seqs []uint64
	obs, err = c.Execute(ctx, "", runEvent("for i in 1 2 3 4 5; do echo tick$i; sleep 0.1; done"), func(seq uint64, d []byte) {
		seqs = append(seqs, seq)
		streamed.Write(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(obs.Content, "tick5") || len(seqs) < 2 || !strings.Contains(streamed.String(), "tick5") {
		t.Fatalf("streaming: %d chunks %q, observation %q", len(seqs), streamed.String(), obs.Content)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs %v", seqs)
		}
	}
	if err := c.Upload(ctx, work, strings.NewReader("hello file"), "up.txt", false); err != nil {
		t.Fatal(err)
	}
	files, err := c.ListFiles(ctx, work)
	if err != nil || !contains(files, "up.txt") {
		t.Fatalf("list: %v %v", files, err)
	}
	var z bytes.Buffer
	if err := c.Download(ctx, work, &z); err != nil {
		t.Fatal(err)
	}
	if got := zipFile(t, z.Bytes(), "up.txt"); got != "hello file" {
		t.Fatalf("download round trip: %q", got)
	}
	// A zip uploaded recursively is unpacked into the destination.
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("tree/leaf.txt")
	_, _ = w.Write([]byte("leaf"))
	zw.Close()
	if err := c.Upload(ctx, filepath.Join(work, "unz"), &zb, "tree.zip", true); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(work, "unz", "tree", "leaf.txt")); err != nil || string(b) != "leaf" {
		t.Fatalf("recursive upload: %q %v", b, err)
	}
	// A long-running command's processes must not outlive the agent.
	bg, err := c.Execute(ctx, "", runEvent("sleep 300 &"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = bg
	kids := descendants(p.cmd.Process.Pid)
	if len(kids) == 0 {
		t.Fatal("agent has no child processes (bash session expected)")
	}
	c.Close()
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left behind: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, k := range kids {
		for alive(k) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(k) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", k))
			t.Errorf("process %d (%q) outlived the agent", k, cmdline)
		}
	}
}

func TestAgentServesOpenHandsHTTPAPI(t *testing.T) {
	work := t.TempDir()
	tokFile := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, nil, nil, "--listen", "127.0.0.1:0", "--token-file", tokFile, "--workdir", work)
	base := "http://" + p.addr
	hc := &http.Client{Timeout: 60 * time.Second}
	defer hc.CloseIdleConnections()
	do := func(method, path, key, ctype string, body io.Reader) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, body)
		if key != "" {
			req.Header.Set("X-Session-API-Key", key)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := do("GET", "/alive", "", "", nil); code != 200 || string(b) != `{"status":"ok"}` {
		t.Fatalf("/alive: %d %s", code, b)
	}
	code, b := do("GET", "/server_info", "", "", nil)
	var info struct {
		Uptime    *float64 `json:"uptime"`
		IdleTime  *float64 `json:"idle_time"`
		Resources struct {
			CPU    *float64          `json:"cpu_percent"`
			Memory map[string]any    `json:"memory"`
			Disk   map[string]any    `json:"disk"`
			IO     map[string]uint64 `json:"io"`
		} `json:"resources"`
	}
	if code != 200 || json.Unmarshal(b, &info) != nil || info.Uptime == nil || info.IdleTime == nil || info.Resources.CPU == nil ||
		info.Resources.Memory["rss"] == nil || info.Resources.Disk["total"] == nil || info.Resources.IO == nil {
		t.Fatalf("/server_info: %d %s", code, b)
	}
	action := `{"action":{"action":"run","args":{"command":"echo hi; echo err >&2","blocking":false},"timeout":30}}`
	if code, b := do("POST", "/execute_action", "", "application/json", strings.NewReader(action)); code != 403 || string(b) != `{"detail":"Invalid API Key"}` {
		t.Fatalf("no key: %d %s", code, b)
	}
	if code, b := do("POST", "/execute_action", "wrong", "application/json", strings.NewReader(action)); code != 403 {
		t.Fatalf("wrong key: %d %s", code, b)
	}
	code, b = do("POST", "/execute_action", token, "application/json", strings.NewReader(action))
	var obs map[string]any
	if code != 200 || json.Unmarshal(b, &obs) != nil || obs["observation"] != "run" || obs["content"] != "hi\nerr" {
		t.Fatalf("execute_action: %d %s", code, b)
	}
	if md := obs["extras"].(map[string]any)["metadata"].(map[string]any); md["exit_code"] != 0.0 {
		t.Fatalf("exit code %v", md["exit_code"])
	}
	for _, bad := range []string{`not json`, `{}`, `{"action":{"observation":"run","content":"","extras":{}}}`, `{"action":{"action":"no_such_action","args":{}}}`} {
		code, b := do("POST", "/execute_action", token, "application/json", strings.NewReader(bad))
		var d map[string]string
		if code != 500 || json.Unmarshal(b, &d) != nil || !strings.HasPrefix(d["detail"], "Internal server error: ") {
			t.Fatalf("%s: %d %s", bad, code, b)
		}
	}
	huge := `{"action":{"action":"run","args":{"command":"` + strings.Repeat("x", 65<<20) + `"}}}`
	if code, b := do("POST", "/execute_action", token, "application/json", strings.NewReader(huge)); code != 413 || !strings.Contains(string(b), "too large") {
		t.Fatalf("huge body: %d %.200s", code, b)
	}
	// upload (multipart field "file") then list and download
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "note.txt")
	_, _ = fw.Write([]byte("uploaded"))
	mw.Close()
	dest := filepath.Join(work, "in")
	code, b = do("POST", "/upload_file?destination="+dest+"&recursive=false", token, mw.FormDataContentType(), &mp)
	if code != 200 || !strings.Contains(string(b), `"filename":"note.txt"`) {
		t.Fatalf("upload_file: %d %s", code, b)
	}
	code, b = do("POST", "/list_files", token, "application/json", strings.NewReader(`{"path":"`+dest+`"}`))
	if code != 200 || string(b) != `["note.txt"]` {
		t.Fatalf("list_files: %d %s", code, b)
	}
	code, b = do("POST", "/list_files", token, "application/json", strings.NewReader(`{}`))
	if code != 200 || !strings.Contains(string(b), `"in/"`) {
		t.Fatalf("list_files of the workdir: %d %s", code, b)
	}
	if code, b := do("POST", "/list_files", "", "application/json", strings.NewReader(`{}`)); code != 403 {
		t.Fatalf("list_files without key: %d %s", code, b)
	}
	code, b = do("GET", "/download_files?path="+dest, token, "", nil)
	if code != 200 || zipFile(t, b, "note.txt") != "uploaded" {
		t.Fatalf("download_files: %d", code)
	}
	if code, b := do("GET", "/download_files?path=relative/x", token, "", nil); code != 500 || !strings.Contains(string(b), "detail") {
		t.Fatalf("download of a relative path: %d %s", code, b)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
	}
}

func TestAgentAsPID1ReapsOrphansAndKeepsExitCodes(t *testing.T) {
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("cannot create a PID namespace here (needs root and unshare): %v", err)
	}
	sockDir, err := os.MkdirTemp("", "ca")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "agent.sock")
	p := startAgent(t, []string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, nil, "--listen", "unix://"+sock, "--token", token, "--workdir", t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := agentwire.Dial(ctx, p.addr, token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	obs, err := c.Execute(ctx, "", runEvent("echo $$ > /dev/null; cat /proc/1/cmdline | tr '\\0' ' '"), nil)
	if err != nil || !strings.Contains(obs.Content, "corral-agent") {
		t.Fatalf("PID 1 is not the agent's init: %q %v", obs.Content, err)
	}
	// Orphans: each sh exits at once, its sleep is re-parented to PID 1.
	obs, err = c.Execute(ctx, "", runEvent("for i in 1 2 3 4 5; do sh -c 'sleep 0.1 &'; done; sleep 1; grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l; (exit 7)"), nil)
	if err != nil {
		t.Fatal(err)
	}
	run := obs.Observation.(*eventbus.CmdOutputObservation)
	if strings.TrimSpace(obs.Content) != "0" || run.Metadata.ExitCode != 7 {
		t.Fatalf("zombies left %q (want 0), exit code %d (want 7)", obs.Content, run.Metadata.ExitCode)
	}
	c.Close()
	// unshare does not forward signals: signal the namespace's PID 1 (the
	// init half of corral-agent), as a container runtime would.
	kids := descendants(p.cmd.Process.Pid)
	if len(kids) < 2 {
		t.Fatalf("want init + agent below unshare, got %v", kids)
	}
	if code := p.stop(t, kids[0]); code != 0 {
		t.Fatalf("exit %d after SIGTERM through the init; stderr:\n%s", code, p.stderr)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left behind: %v", err)
	}
}

func TestAgentFlagsAndTokenSources(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		wantOut  string
	}{
		{"help documents every flag", []string{"--help"}, nil, 0, "--listen"},
		{"version", []string{"--version"}, nil, 0, "agentwire protocol 1"},
		{"missing listen", []string{"--token", "x"}, nil, 1, "--listen is required"},
		{"missing token", []string{"--listen", "127.0.0.1:0"}, nil, 1, "no token"},
		{"bad listen", []string{"--listen", "nonsense", "--token", "x"}, nil, 1, "neither unix:///path/to.sock nor HOST:PORT"},
		{"empty token file", []string{"--listen", "127.0.0.1:0", "--token-file", "/dev/null"}, nil, 1, "is empty"},
		{"unknown flag", []string{"--nope"}, nil, 2, "flag provided but not defined"},
		{"bad no-change-timeout", []string{"--no-change-timeout", "soon"}, nil, 2, "want seconds (10) or a positive duration"},
		{"zero result-ttl is refused", []string{"--result-ttl", "0s"}, nil, 2, "must be positive"},
		{"negative keep-results is refused", []string{"--keep-results", "-1"}, nil, 2, "must be positive"},
		{"busy unix socket path is not a socket", []string{"--listen", "unix:///proc/version", "--token", "x"}, nil, 1, "--listen unix:///proc/version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(agentBin, tc.args...)
			cmd.Env = append(filterEnv(os.Environ()), "HOME="+t.TempDir())
			cmd.Env = append(cmd.Env, tc.env...)
			out, _ := cmd.CombinedOutput()
			if cmd.ProcessState.ExitCode() != tc.wantCode || !strings.Contains(string(out), tc.wantOut) {
				t.Fatalf("exit %d output %q; want exit %d containing %q", cmd.ProcessState.ExitCode(), out, tc.wantCode, tc.wantOut)
			}
			if tc.name == "help documents every flag" {
				for _, f := range []string{"--listen", "--token", "--token-file", "--workdir", "--user", "--no-change-timeout", "--result-ttl", "--keep-results", "--version", "--copy-to"} {
					if !strings.Contains(string(out), f+" ") && !strings.Contains(string(out), f+"\n") {
						t.Errorf("--help does not document %s", f)
					}
				}
			}
		})
	}
	// SESSION_API_KEY works as the token and as X-Session-API-Key.
	p := startAgent(t, nil, []string{"SESSION_API_KEY=oh-key"}, "--listen", "127.0.0.1:0", "--workdir", t.TempDir(), "--no-change-timeout", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := agentwire.Dial(ctx, p.addr, "oh-key")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Alive(ctx); err != nil {
		t.Fatal(err)
	}
	// --no-change-timeout 1: a quiet non-blocking command returns control
	// after about a second, still running (exit code -1).
	quiet := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: "sleep 4; echo done", ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
	obs, err := c.Execute(ctx, "", quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	if run, ok := obs.Observation.(*eventbus.CmdOutputObservation); !ok || run.Metadata.ExitCode != -1 || strings.Contains(obs.Content, "done") {
		t.Fatalf("--no-change-timeout 1 not applied: %+v %q", obs.Observation, obs.Content)
	}
	c.Close()
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func filterEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "CORRAL_AGENT_TOKEN=") && !strings.HasPrefix(e, "SESSION_API_KEY=") {
			out = append(out, e)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func zipFile(t *testing.T, b []byte, name string) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	for _, f := range zr.File {
		if f.Name == name {
			rc, _ := f.Open()
			defer rc.Close()
			got, _ := io.ReadAll(rc)
			return string(got)
		}
	}
	t.Fatalf("zip has no %s", name)
	return ""
}
