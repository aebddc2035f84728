package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests here drive the built `corral shell --runtime local` in a tmux
// pane the way a person does: keys in, the screen read back (capture-pane).
// Every wait polls the screen for what must appear, with a deadline
// generous enough for a loaded machine; none sleeps to synchronise.

// paneDeadline bounds every wait on the screen. The slowest step waits
// for the sandbox's 10 s no-change timeout; it is below the 120 s hard
// timeout, so a command that only a timeout would end fails the wait.
const paneDeadline = 100 * time.Second

// shellBinaries are the executables the tests run: corral, and the agent
// its local sandboxes start (found on PATH).
type shellBinaries struct{ corral, agent string }

func buildShellBinaries(t *testing.T) shellBinaries {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is needed to test `corral shell` as a terminal: apt-get install tmux (scripts/test-deps, run by make test, installs it)")
	}
	// Build before buildAgent changes HOME (and with it Go's caches).
	corral := filepath.Join(t.TempDir(), "corral")
	if out, err := exec.Command("go", "build", "-o", corral, "corral/cmd/corral").CombinedOutput(); err != nil {
		t.Fatalf("build corral: %v\n%s", err, out)
	}
	return shellBinaries{corral: corral, agent: buildAgent(t)}
}

// shellInTmux is one `corral shell` in a pane of its own tmux server.
type shellInTmux struct {
	t      *testing.T
	bin    shellBinaries
	sock   string // the tmux server's socket
	status string // the pane writes corral's exit code here when it ends
	tmp    string // corral's TMPDIR: its temporary store and local sandboxes
	marker string // in the environment of everything the shell starts
}

func startShellInTmux(t *testing.T, bin shellBinaries) *shellInTmux {
	t.Helper()
	dir, err := os.MkdirTemp("", "cst") // short: unix socket paths live here
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tmp := filepath.Join(dir, "t")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	sh := &shellInTmux{t: t, bin: bin, sock: filepath.Join(dir, "tmux.sock"), status: filepath.Join(dir, "status"), tmp: tmp,
		marker: fmt.Sprint("shell-tmux-", os.Getpid(), "-", time.Now().UnixNano())}
	script := fmt.Sprintf("%s shell --runtime local; echo $? > %s.tmp && mv %s.tmp %s", bin.corral, sh.status, sh.status, sh.status)
	cmd := exec.Command("tmux", "-S", sh.sock, "-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50", "-s", "corral", script)
	// The server started here passes its environment to the pane.
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "XDG_RUNTIME_DIR=", "FARM_MARKER="+sh.marker)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start tmux: %v\n%s", err, out)
	}
	t.Cleanup(sh.kill)
	sh.waitFor("a first prompt", func(screen string) bool { return strings.Contains(screen, "\n$ ") })
	return sh
}

// kill ends the tmux server (its pane gets SIGHUP, as when a terminal
// window closes) and waits until the shell and its sandbox are gone.
func (sh *shellInTmux) kill() {
	_ = exec.Command("tmux", "-S", sh.sock, "kill-server").Run()
	deadline := time.Now().Add(paneDeadline)
	for len(processesMatching(sh.marker, "")) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := processesMatching(sh.marker, ""); len(left) > 0 {
		sh.t.Errorf("processes of the shell outlived its terminal: %v", left)
	}
}

// screen is the pane's whole history, wrapped lines joined.
func (sh *shellInTmux) screen() string {
	out, err := exec.Command("tmux", "-S", sh.sock, "capture-pane", "-p", "-J", "-N", "-S", "-", "-t", "corral").Output()
	if err != nil {
		return fmt.Sprintf("(no screen: %v)", err)
	}
	return string(out)
}

// waitFor polls the screen until ok holds.
func (sh *shellInTmux) waitFor(what string, ok func(screen string) bool) string {
	sh.t.Helper()
	deadline := time.Now().Add(paneDeadline)
	for {
		screen := sh.screen()
		if ok(screen) {
			return screen
		}
		if _, err := os.Stat(sh.status); err == nil {
			sh.t.Fatalf("corral shell ended before %s; screen:\n%s", what, screen)
		}
		if time.Now().After(deadline) {
			sh.t.Fatalf("no %s on the screen after %v:\n%s", what, paneDeadline, screen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitText waits until s is on the screen n times.
func (sh *shellInTmux) waitText(s string, n int) string {
	sh.t.Helper()
	return sh.waitFor(fmt.Sprintf("%q (x%d)", s, n), func(screen string) bool { return strings.Count(screen, s) >= n })
}

// waitLine waits until a line of the screen is exactly s.
func (sh *shellInTmux) waitLine(s string) string {
	sh.t.Helper()
	return sh.waitFor(fmt.Sprintf("a line %q", s), func(screen string) bool { return countLines(screen, s) > 0 })
}

func countLines(screen, s string) int {
	n := 0
	for _, l := range strings.Split(screen, "\n") {
		if strings.TrimRight(l, " ") == s {
			n++
		}
	}
	return n
}

// promptLines counts the lines that begin with one of the shell's prompts.
func promptLines(screen string) int {
	n := 0
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, "$ ") || strings.HasPrefix(l, "input> ") {
			n++
		}
	}
	return n
}

// typeLine types text and Enter.
func (sh *shellInTmux) typeLine(text string) {
	sh.t.Helper()
	sh.typeText(text)
	sh.keys("Enter")
}

func (sh *shellInTmux) typeText(text string) {
	sh.t.Helper()
	if out, err := exec.Command("tmux", "-S", sh.sock, "send-keys", "-t", "corral", "-l", "--", text).CombinedOutput(); err != nil {
		sh.t.Fatalf("send-keys %q: %v\n%s", text, err, out)
	}
}

// keys presses keys by tmux name (Enter, C-c, C-d).
func (sh *shellInTmux) keys(names ...string) {
	sh.t.Helper()
	args := append([]string{"-S", sh.sock, "send-keys", "-t", "corral"}, names...)
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		sh.t.Fatalf("send-keys %v: %v\n%s", names, err, out)
	}
}

// exitCode waits for the shell to end and returns its exit code.
func (sh *shellInTmux) exitCode() int {
	sh.t.Helper()
	deadline := time.Now().Add(paneDeadline)
	for {
		b, err := os.ReadFile(sh.status)
		if err == nil {
			code, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				sh.t.Fatalf("exit status file holds %q", b)
			}
			return code
		}
		if time.Now().After(deadline) {
			sh.t.Fatalf("corral shell did not end; screen:\n%s", sh.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sandboxLeft lists the agent processes and local sandbox files the
// shell's session left behind (the rules of shellUnderPTY.sandboxLeft).
func (sh *shellInTmux) sandboxLeft() []string {
	return (&shellUnderPTY{agent: sh.bin.agent, tmp: sh.tmp}).sandboxLeft()
}

// commandsRunning lists the processes started under the shell whose
// command line is argv.
func (sh *shellInTmux) commandsRunning(argv ...string) []string {
	want := []byte(strings.Join(argv, "\x00") + "\x00")
	var out []string
	for _, pid := range processesMatching(sh.marker, "") {
		if cmdline, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline")); bytes.Equal(cmdline, want) {
			out = append(out, pid)
		}
	}
	return out
}

// noProtocolOnScreen fails when the bash session's PS1 metadata blocks
// reached the person at the shell.
func (sh *shellInTmux) noProtocolOnScreen() {
	sh.t.Helper()
	if screen := sh.screen(); strings.Contains(screen, "###PS1") {
		sh.t.Errorf("a PS1 protocol block is on the screen:\n%s", screen)
	}
}

func TestShellInATerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts local sandboxes under tmux")
	}
	bin := buildShellBinaries(t)
	t.Run("output streams while the command runs and each line shows once", func(t *testing.T) {
		sh := startShellInTmux(t, bin)
		flag := filepath.Join(t.TempDir(), "go")
		// The loop prints until the test creates flag: the first tick on
		// the screen is output shown before its command ended.
		sh.typeLine(fmt.Sprintf("i=0; until [ -e %s ]; do i=$((i+1)); echo tick-$i; sleep 0.2; done; echo loop-$((40+2))", flag))
		screen := sh.waitLine("tick-1")
		if promptLines(screen) != 1 || strings.Contains(screen, "[The command") {
			t.Fatalf("tick-1 was shown only once the command returned control, not while it ran; screen:\n%s", screen)
		}
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		screen = sh.waitText("[The command completed with exit code 0.]", 1)
		if countLines(screen, "loop-42") != 1 {
			t.Fatalf("want loop-42 once before the exit code; screen:\n%s", screen)
		}
		ticks := 0
		for countLines(screen, fmt.Sprint("tick-", ticks+1)) == 1 {
			ticks++
		}
		if ticks < 1 || strings.Count(screen, "tick-") != ticks+1 { // +1: the command line
			t.Fatalf("want tick-1..tick-N each once (no output lost or shown twice), got %d in order; screen:\n%s", ticks, screen)
		}
		sh.noProtocolOnScreen()
	})
	t.Run("a line typed while a command runs is the next command", func(t *testing.T) {
		sh := startShellInTmux(t, bin)
		flag := filepath.Join(t.TempDir(), "go")
		// It prints while it waits, so it never returns control early.
		sh.typeLine(fmt.Sprintf("until [ -e %s ]; do echo waiting; sleep 0.2; done", flag))
		sh.waitLine("waiting")
		sh.typeLine("echo typed-$((1+1))")
		sh.waitText("typed-$((1+1))", 1) // the terminal's echo, amid the output
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		screen := sh.waitLine("typed-2")
		done := strings.Index(screen, "[The command completed with exit code 0.]")
		if done < 0 || done > strings.Index(screen, "\ntyped-2") {
			t.Fatalf("the typed-ahead line must run after the command it was typed during; screen:\n%s", screen)
		}
		sh.noProtocolOnScreen()
	})
	t.Run("a failing command ends with its exit code", func(t *testing.T) {
		sh := startShellInTmux(t, bin)
		sh.typeLine("false")
		sh.waitText("[The command completed with exit code 1.]", 1)
		sh.typeLine("printf no-newline-$((1+1))")
		screen := sh.waitText("[The command completed with exit code 0.]", 1)
		if countLines(screen, "no-newline-2") != 1 {
			t.Fatalf("output without a final newline must end its own line before the exit code; screen:\n%s", screen)
		}
		sh.noProtocolOnScreen()
	})
	t.Run("a command waiting for input shows its prompt and gets the next line", func(t *testing.T) {
		sh := startShellInTmux(t, bin)
		sh.typeLine(`read -p "name-$((1+2))? " x; echo "hello-$x"`)
		sh.waitText("name-3?", 1)
		sh.waitText("[The command has no new output after 10 seconds.", 1)
		sh.waitText("input> ", 1)
		sh.typeLine("bob")
		sh.waitLine("hello-bob")
		sh.waitText("[The command completed with exit code 0.]", 1)
		sh.typeLine("echo after-$((6*7))")
		sh.waitLine("after-42")
		sh.noProtocolOnScreen()
	})
	t.Run("Ctrl-C interrupts the running command and the shell goes on", func(t *testing.T) {
		sh := startShellInTmux(t, bin)
		sh.typeLine("echo sleep-$((50+50)); sleep 100")
		sh.waitLine("sleep-100")
		sh.waitFor("sleep 100 running", func(string) bool { return len(sh.commandsRunning("sleep", "100")) > 0 })
		sh.keys("C-c")
		sh.waitText("[The command completed with exit code 130.", 1)
		if left := sh.commandsRunning("sleep", "100"); len(left) > 0 {
			t.Fatalf("sleep 100 still runs after Ctrl-C and its exit code 130: %v", left)
		}
		// A loop that never stops printing never returns control by
		// itself (until the 120 s hard timeout): only an interrupt sent at
		// once ends it.
		sh.typeLine("while true; do echo busy-$((1+1)); sleep 0.2; done")
		sh.waitLine("busy-2")
		sh.keys("C-c")
		sh.waitText("[The command completed with exit code 130.", 2)
		sh.typeLine("echo alive-$((2+3))")
		sh.waitLine("alive-5")
		sh.noProtocolOnScreen()
	})
	t.Run("Ctrl-C and Ctrl-D at the input prompt go to the command still running", func(t *testing.T) {
		sh := startShellInTmux(t, bin)
		sh.typeLine("read x")
		sh.waitText("input> ", 1)
		sh.keys("C-c")
		sh.waitText("[The command completed with exit code 130. CTRL+C was sent.]", 1)
		sh.typeLine("cat")
		sh.waitText("input> ", 2)
		sh.typeLine("meow-$((1+1))")
		sh.waitLine("meow-$((1+1))") // cat's copy: the terminal's echo follows the prompt
		sh.waitText("input> ", 3)
		sh.keys("C-d")
		sh.waitText("[The command completed with exit code 0. CTRL+D was sent.]", 1)
		sh.typeLine("echo still-$((2*4))")
		sh.waitLine("still-8")
	})
	t.Run("Ctrl-C at an idle prompt drops the line typed so far", func(t *testing.T) {
		sh := startShellInTmux(t, bin)
		prompts := strings.Count(sh.screen(), "$ ")
		sh.typeText("echo half-typed")
		sh.keys("C-c")
		sh.waitText("$ ", prompts+1)
		sh.typeLine("echo clean-$((3+4))")
		screen := sh.waitLine("clean-7")
		if countLines(screen, "half-typed") > 0 || strings.Contains(screen, "not found") {
			t.Fatalf("the line dropped by Ctrl-C ran; screen:\n%s", screen)
		}
	})
	t.Run("Ctrl-D at an empty prompt ends the session and releases its sandbox", func(t *testing.T) {
		sh := startShellInTmux(t, bin)
		sh.typeLine("echo up-$((40+2))")
		sh.waitLine("up-42")
		if len(sh.sandboxLeft()) == 0 {
			t.Fatal("no sandbox found while the shell runs: the leak check below would prove nothing")
		}
		sh.keys("C-d")
		if code := sh.exitCode(); code != exitOK {
			t.Fatalf("exit code %d after Ctrl-D, want 0", code)
		}
		if left := sh.sandboxLeft(); len(left) > 0 {
			t.Fatalf("the sandbox outlived the shell: %v", left)
		}
	})
}
