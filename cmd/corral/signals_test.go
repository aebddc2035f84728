package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// shellUnderPTY is `corral shell --runtime local` on a real terminal, as a
// separate process: session leader with the PTY as controlling terminal, so
// closing the PTY hangs it up like closing a terminal window.
type shellUnderPTY struct {
	t      *testing.T
	cmd    *exec.Cmd
	ptmx   *os.File
	agent  string // the corral-agent executable its sandboxes run
	tmp    string // TMPDIR: where runtimes/local puts sockets and workspaces
	mu     sync.Mutex
	out    bytes.Buffer
	exited chan struct{}
}

func startShellUnderPTY(t *testing.T) *shellUnderPTY {
	t.Helper()
	// Build before buildAgent changes HOME (and with it Go's caches).
	corral := filepath.Join(t.TempDir(), "corral")
	build := exec.Command("go", "build", "-o", corral, "corral/cmd/corral")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build corral: %v\n%s", err, out)
	}
	agent := buildAgent(t)             // on PATH, and a HOME for the sandboxes
	tmp, err := os.MkdirTemp("", "cs") // short: socket paths live here
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	sh := &shellUnderPTY{t: t, agent: agent, tmp: tmp, exited: make(chan struct{})}
	sh.cmd = exec.Command(corral, "shell", "--runtime", "local")
	sh.cmd.Env = append(os.Environ(), "TMPDIR="+sh.tmp, "XDG_RUNTIME_DIR=", "TERM=dumb")
	ptmx, err := pty.Start(sh.cmd)
	if err != nil {
		t.Fatal(err)
	}
	sh.ptmx = ptmx
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			sh.mu.Lock()
			sh.out.Write(buf[:n])
			sh.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { _ = sh.cmd.Wait(); close(sh.exited) }()
	t.Cleanup(func() {
		select {
		case <-sh.exited:
		default:
			_ = sh.cmd.Process.Kill()
			<-sh.exited
		}
		ptmx.Close()
	})
	sh.waitOutput("$ ", 1)
	return sh
}

// waitOutput waits until s occurs n times in the terminal output.
func (sh *shellUnderPTY) waitOutput(s string, n int) {
	sh.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		sh.mu.Lock()
		got := sh.out.String()
		sh.mu.Unlock()
		if strings.Count(got, s) >= n {
			return
		}
		select {
		case <-sh.exited:
			sh.t.Fatalf("corral shell exited (%v) before printing %q; output:\n%s", sh.cmd.ProcessState, s, got)
		default:
		}
		if time.Now().After(deadline) {
			sh.t.Fatalf("no %q (x%d) in the shell's output:\n%s", s, n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (sh *shellUnderPTY) typeIn(s string) {
	sh.t.Helper()
	if _, err := sh.ptmx.Write([]byte(s)); err != nil {
		sh.t.Fatal(err)
	}
}

func (sh *shellUnderPTY) wait() int {
	sh.t.Helper()
	select {
	case <-sh.exited:
	case <-time.After(2 * time.Minute):
		sh.t.Fatal("corral shell did not exit")
	}
	return sh.cmd.ProcessState.ExitCode()
}

// sandboxLeft lists what the session's local sandbox leaves behind: agent
// processes and runtimes/local's socket directories, workspaces and state
// files (corral-local-<uid>/<id>.json when XDG_RUNTIME_DIR is unset).
func (sh *shellUnderPTY) sandboxLeft() []string {
	left := processesMatching("", sh.agent)
	ents, _ := os.ReadDir(sh.tmp)
	for _, e := range ents {
		switch {
		case strings.HasPrefix(e.Name(), "corral-agent-"), strings.HasPrefix(e.Name(), "corral-ws-"):
			left = append(left, filepath.Join(sh.tmp, e.Name()))
		case strings.HasPrefix(e.Name(), "corral-local-"):
			states, _ := filepath.Glob(filepath.Join(sh.tmp, e.Name(), "*.json"))
			left = append(left, states...)
		}
	}
	return left
}

func TestShellReleasesItsSandboxWhenItsTerminalGoesAwayOrItIsTerminated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts local sandboxes")
	}
	tests := []struct {
		name string
		busy bool // a command is running when the signal comes
		end  func(sh *shellUnderPTY)
	}{
		{"closing the terminal (SIGHUP) while a command runs", true, func(sh *shellUnderPTY) { sh.ptmx.Close() }},
		{"SIGHUP at the prompt", false, func(sh *shellUnderPTY) { _ = sh.cmd.Process.Signal(syscall.SIGHUP) }},
		{"SIGTERM while a command runs", true, func(sh *shellUnderPTY) { _ = sh.cmd.Process.Signal(syscall.SIGTERM) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh := startShellUnderPTY(t)
			sh.typeIn("echo up-$((40+2))\n")
			sh.waitOutput("up-42", 1)
			if len(processesMatching("", sh.agent)) == 0 || len(sh.sandboxLeft()) == 0 {
				t.Fatal("no sandbox found while the shell runs: the leak check below would prove nothing")
			}
			if tt.busy {
				sh.typeIn("sleep 300\n")
				sh.waitOutput("sleep 300", 1)
			}
			tt.end(sh)
			if code := sh.wait(); code != exitInterrupt {
				t.Errorf("exit code %d, want %d", code, exitInterrupt)
			}
			if left := sh.sandboxLeft(); len(left) > 0 {
				t.Fatalf("the sandbox outlived the shell: %v", left)
			}
		})
	}
}

func TestShellCtrlCAtThePromptKeepsTheSession(t *testing.T) {
	if testing.Short() {
		t.Skip("starts local sandboxes")
	}
	sh := startShellUnderPTY(t)
	sh.typeIn("\x03") // the terminal turns it into SIGINT
	sh.waitOutput("^C", 1)
	sh.waitOutput("$ ", 2)
	sh.typeIn("echo still-$((1+1))\n")
	sh.waitOutput("still-2", 1)
	sh.typeIn("exit\n")
	if code := sh.wait(); code != exitOK {
		t.Fatalf("exit code %d after exit, want 0", code)
	}
	if left := sh.sandboxLeft(); len(left) > 0 {
		t.Fatalf("the sandbox outlived the shell: %v", left)
	}
}
