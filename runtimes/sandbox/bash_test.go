package sandbox

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"corral/eventbus"
)

// btSession starts a session in a temp dir and closes it at cleanup.
func btSession(t *testing.T, opts BashOptions) *BashSession {
	t.Helper()
	if opts.WorkDir == "" {
		opts.WorkDir = t.TempDir()
	}
	opts.Env = append([]string{"HOME=" + t.TempDir()}, opts.Env...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := NewBashSession(ctx, opts)
	if err != nil {
		t.Fatalf("NewBashSession: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

type btResult struct {
	ev      *eventbus.Event
	content string
	obs     *eventbus.CmdOutputObservation
}

func btRun(t *testing.T, s *BashSession, a *eventbus.CmdRunAction, timeout float64) btResult {
	t.Helper()
	var tp *float64
	if timeout > 0 {
		tp = &timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ev := s.Run(ctx, a, tp, nil)
	if ev == nil {
		t.Fatalf("Run(%q) returned nil", a.Command)
	}
	r := btResult{ev: ev, content: ev.Content}
	r.obs, _ = ev.Observation.(*eventbus.CmdOutputObservation)
	return r
}

func btMustRun(t *testing.T, s *BashSession, a *eventbus.CmdRunAction, timeout float64) btResult {
	t.Helper()
	r := btRun(t, s, a, timeout)
	if r.obs == nil {
		t.Fatalf("Run(%q): want a run observation, got %T %q", a.Command, r.ev.Observation, r.content)
	}
	return r
}

func btCmd(c string) *eventbus.CmdRunAction { return &eventbus.CmdRunAction{Command: c} }
func btInput(c string) *eventbus.CmdRunAction {
	return &eventbus.CmdRunAction{Command: c, IsInput: true}
}

func btCompleted(code int) string {
	return fmt.Sprintf("\n[The command completed with exit code %d.]", code)
}

func TestRunCompletedCommands(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	tests := []struct {
		name    string
		command string
		content string
		exit    int
	}{
		{"echo prints its argument", "echo hello", "hello", 0},
		{"false exits 1", "false", "", 1},
		{"unknown command exits 127", "nonexistentcmd_corral", "bash: nonexistentcmd_corral: command not found", 127},
		{"output without trailing newline", "printf abc", "abc", 0},
		{"trailing spaces and blank lines are trimmed", `printf '  x  \n\n\n'`, "x", 0},
		{"chained commands run as one", "echo a && echo b; echo c", "a\nb\nc", 0},
		{"exit code of a pipeline", "echo a | grep -q b", "", 1},
		{"heredoc is one command", "cat << EOF\nline1\nline2\nEOF", "line1\nline2", 0},
		{"for loop over lines", "for i in 1 2 3; do\n  echo $i\ndone", "1\n2\n3", 0},
		{"stderr is captured", "echo oops >&2", "oops", 0},
		{"ANSI escapes are left as printed", `printf '\033[31mred\033[0m\n'`, "\x1b[31mred\x1b[0m", 0},
		{"CRLF from the pty becomes LF", `printf 'a\r\nb\n'`, "a\nb", 0},
		{"exit code of a subshell", "(exit 42)", "", 42},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := btMustRun(t, s, btCmd(tc.command), 10)
			if r.content != tc.content {
				t.Errorf("content = %q, want %q", r.content, tc.content)
			}
			if r.obs.Metadata.ExitCode != tc.exit {
				t.Errorf("exit code = %d, want %d", r.obs.Metadata.ExitCode, tc.exit)
			}
			if want := btCompleted(tc.exit); r.obs.Metadata.Suffix != want {
				t.Errorf("suffix = %q, want %q", r.obs.Metadata.Suffix, want)
			}
			if r.obs.Metadata.Prefix != "" {
				t.Errorf("prefix = %q, want empty", r.obs.Metadata.Prefix)
			}
			if r.obs.Command != tc.command {
				t.Errorf("command = %q, want %q", r.obs.Command, tc.command)
			}
		})
	}
}

func TestRunMetadataFromPrompt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := btSession(t, BashOptions{WorkDir: dir})
	r := btMustRun(t, s, btCmd("echo hi"), 10)
	md := r.obs.Metadata
	if md.WorkingDir == nil || *md.WorkingDir != dir {
		t.Errorf("working_dir = %v, want %q", md.WorkingDir, dir)
	}
	host, _ := os.Hostname()
	if md.Hostname == nil || !strings.HasPrefix(host, *md.Hostname) {
		t.Errorf("hostname = %v, want a prefix of %q", md.Hostname, host)
	}
	if md.Username == nil || *md.Username == "" {
		t.Errorf("username = %v, want the current user", md.Username)
	}
	if md.PID != -1 {
		t.Errorf("pid = %d, want -1 ($! is empty without background jobs)", md.PID)
	}
	if s.Cwd() != dir {
		t.Errorf("Cwd() = %q, want %q", s.Cwd(), dir)
	}
	r = btMustRun(t, s, btCmd("sleep 0 & wait"), 10)
	if r.obs.Metadata.PID <= 0 {
		t.Errorf("pid after a background job = %d, want its pid", r.obs.Metadata.PID)
	}
}

func TestRunKeepsStateAcrossActions(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	btMustRun(t, s, btCmd("cd /tmp"), 10)
	r := btMustRun(t, s, btCmd("pwd"), 10)
	if r.content != "/tmp" {
		t.Errorf("pwd after cd /tmp = %q", r.content)
	}
	if s.Cwd() != "/tmp" || r.obs.Metadata.WorkingDir == nil || *r.obs.Metadata.WorkingDir != "/tmp" {
		t.Errorf("Cwd() = %q, metadata working_dir = %v, want /tmp", s.Cwd(), r.obs.Metadata.WorkingDir)
	}
	btMustRun(t, s, btCmd("export CORRAL_X=persisted"), 10)
	if r := btMustRun(t, s, btCmd("echo $CORRAL_X"), 10); r.content != "persisted" {
		t.Errorf("env var across actions = %q", r.content)
	}
	btMustRun(t, s, btCmd("false"), 10)
	if r := btMustRun(t, s, btCmd("echo $?"), 10); r.content != "1" {
		t.Errorf("$? after false = %q, want 1 (PROMPT_COMMAND must not clobber it)", r.content)
	}
}

func TestRunWorkingDirNeedingJSONEscapes(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), `we"ird \dir $(x) 'q'`)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := btSession(t, BashOptions{WorkDir: dir})
	r := btMustRun(t, s, btCmd("pwd"), 10)
	if r.content != dir || s.Cwd() != dir {
		t.Errorf("pwd = %q, Cwd() = %q, want %q", r.content, s.Cwd(), dir)
	}
}

func TestRunEmptyCommandAndInputWithoutRunningCommand(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	tests := []struct {
		name   string
		action *eventbus.CmdRunAction
		want   string
	}{
		{"empty command", btCmd(""), "ERROR: No previous running command to retrieve logs from."},
		{"blank command", btCmd("  \n "), "ERROR: No previous running command to retrieve logs from."},
		{"input", btInput("hello"), "ERROR: No previous running command to interact with."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := btMustRun(t, s, tc.action, 10)
			if r.content != tc.want || r.obs.Command != "" || r.obs.Metadata.ExitCode != -1 || r.obs.Metadata.Suffix != "" {
				t.Errorf("got content %q command %q metadata %+v", r.content, r.obs.Command, r.obs.Metadata)
			}
		})
	}
}

func TestRunRefusesMultipleCommands(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	r := btRun(t, s, btCmd("echo a\necho b"), 10)
	eo, ok := r.ev.Observation.(*eventbus.ErrorObservation)
	if !ok {
		t.Fatalf("want an error observation, got %T", r.ev.Observation)
	}
	_ = eo
	want := "ERROR: Cannot execute multiple commands at once.\n" +
		"Please run each command separately OR chain them into a single command via && or ;\n" +
		"Provided commands:\n(1) echo a\n(2) echo b"
	if r.content != want {
		t.Errorf("content = %q, want %q", r.content, want)
	}
	// The session is still usable and nothing ran.
	if r := btMustRun(t, s, btCmd("echo ok"), 10); r.content != "ok" {
		t.Errorf("after refusal: %q", r.content)
	}
}

func TestRunHardTimeoutRefusalAndCtrlC(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{NoChangeTimeout: 30 * time.Second})
	r := btMustRun(t, s, btCmd("echo start; sleep 30"), 1)
	wantSuffix := "\n[The command timed out after 1.0 seconds. " + TimeoutMessageTemplate + "]"
	if r.obs.Metadata.Suffix != wantSuffix {
		t.Errorf("suffix = %q, want %q", r.obs.Metadata.Suffix, wantSuffix)
	}
	if r.content != "start" || r.obs.Metadata.ExitCode != -1 || r.obs.Metadata.Prefix != "" {
		t.Errorf("content %q exit %d prefix %q", r.content, r.obs.Metadata.ExitCode, r.obs.Metadata.Prefix)
	}

	a := btCmd("echo x")
	a.Hidden = true
	r = btMustRun(t, s, a, 1)
	wantSuffix = "\n[Your command \"echo x\" is NOT executed. The previous command is still running - You CANNOT send new commands until the previous command is completed. By setting `is_input` to `true`, you can interact with the current process: " + TimeoutMessageTemplate + "]"
	if r.obs.Metadata.Suffix != wantSuffix {
		t.Errorf("refusal suffix = %q, want %q", r.obs.Metadata.Suffix, wantSuffix)
	}
	if r.obs.Metadata.Prefix != "[Below is the output of the previous command.]\n" {
		t.Errorf("refusal prefix = %q", r.obs.Metadata.Prefix)
	}
	if r.content != "" || r.obs.Metadata.ExitCode != -1 || !r.obs.Hidden || r.obs.Command != "echo x" {
		t.Errorf("refusal content %q exit %d hidden %v command %q", r.content, r.obs.Metadata.ExitCode, r.obs.Hidden, r.obs.Command)
	}

	r = btMustRun(t, s, btInput("C-c"), 5)
	if r.obs.Metadata.ExitCode != 130 {
		t.Errorf("exit after C-c = %d, want 130", r.obs.Metadata.ExitCode)
	}
	if want := "\n[The command completed with exit code 130. CTRL+C was sent.]"; r.obs.Metadata.Suffix != want {
		t.Errorf("suffix after C-c = %q, want %q", r.obs.Metadata.Suffix, want)
	}
	if r := btMustRun(t, s, btCmd("echo x"), 5); r.content != "x" || r.obs.Metadata.ExitCode != 0 {
		t.Errorf("after C-c: %q exit %d", r.content, r.obs.Metadata.ExitCode)
	}
}

func TestRunHardTimeoutPrintsTimeoutAsPythonFloat(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	r := btMustRun(t, s, btCmd("sleep 5"), 0.5)
	if want := "\n[The command timed out after 0.5 seconds. " + TimeoutMessageTemplate + "]"; r.obs.Metadata.Suffix != want {
		t.Errorf("suffix = %q, want %q", r.obs.Metadata.Suffix, want)
	}
	btMustRun(t, s, btInput("C-c"), 5)
}

func TestRunNoChangeTimeoutAndContinuation(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{NoChangeTimeout: time.Second})
	r := btMustRun(t, s, btCmd("echo one; sleep 1.5; echo two; sleep 3; echo three"), 20)
	want := "\n[The command has no new output after 1 seconds. " + TimeoutMessageTemplate + "]"
	if r.obs.Metadata.Suffix != want || r.content != "one" || r.obs.Metadata.Prefix != "" || r.obs.Metadata.ExitCode != -1 {
		t.Fatalf("first: content %q metadata %+v", r.content, r.obs.Metadata)
	}
	// The empty command fetches only the new output; output resets the
	// no-change timer.
	r = btMustRun(t, s, btCmd(""), 20)
	if r.content != "two" || r.obs.Metadata.Prefix != continuePrefix || r.obs.Metadata.Suffix != want {
		t.Fatalf("continuation: content %q prefix %q suffix %q", r.content, r.obs.Metadata.Prefix, r.obs.Metadata.Suffix)
	}
	// A blocking empty command waits for the end.
	a := btCmd("")
	a.Blocking = true
	r = btMustRun(t, s, a, 20)
	if r.content != "three" || r.obs.Metadata.ExitCode != 0 || r.obs.Metadata.Suffix != btCompleted(0) || r.obs.Metadata.Prefix != "" {
		t.Fatalf("completion: content %q metadata %+v", r.content, r.obs.Metadata)
	}
	if r := btMustRun(t, s, btCmd(""), 5); r.content != msgNoPrevLogs {
		t.Errorf("after completion, empty command: %q", r.content)
	}
}

func TestRunBlockingSkipsNoChangeTimeout(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{NoChangeTimeout: 500 * time.Millisecond})
	a := btCmd("sleep 1.5; echo done")
	a.Blocking = true
	r := btMustRun(t, s, a, 10)
	if r.content != "done" || r.obs.Metadata.Suffix != btCompleted(0) {
		t.Errorf("blocking: content %q suffix %q", r.content, r.obs.Metadata.Suffix)
	}
}

func TestRunInteractiveInput(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{NoChangeTimeout: time.Second})
	r := btMustRun(t, s, btCmd(`read -p "Enter name: " name && echo "Hello $name"`), 10)
	if r.content != "Enter name:" || r.obs.Metadata.ExitCode != -1 {
		t.Fatalf("prompt: content %q exit %d", r.content, r.obs.Metadata.ExitCode)
	}
	r = btMustRun(t, s, btInput("John"), 10)
	if r.content != "Hello John" || r.obs.Metadata.ExitCode != 0 || r.obs.Command != "John" {
		t.Fatalf("after input: content %q exit %d command %q", r.content, r.obs.Metadata.ExitCode, r.obs.Command)
	}
}

func TestRunCtrlDEndsInput(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{NoChangeTimeout: time.Second})
	btMustRun(t, s, btCmd("cat"), 10)
	btMustRun(t, s, btInput("abc"), 10)
	r := btMustRun(t, s, btInput("C-d"), 10)
	if r.obs.Metadata.ExitCode != 0 || r.obs.Metadata.Suffix != "\n[The command completed with exit code 0. CTRL+D was sent.]" {
		t.Errorf("C-d: content %q metadata %+v", r.content, r.obs.Metadata)
	}
}

func TestRunTruncatesLongOutput(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	r := btMustRun(t, s, btCmd(`python3 -c "print('a'*20000 + 'b'*20000)"`), 20)
	want := strings.Repeat("a", 15000) + truncationMarker + strings.Repeat("b", 15000)
	if r.content != want {
		t.Errorf("content len %d, want %d (head %q tail %q)", len(r.content), len(want), r.content[:20], r.content[len(r.content)-20:])
	}
	// hidden output is not truncated
	a := btCmd(`python3 -c "print('c'*40000)"`)
	a.Hidden = true
	r = btMustRun(t, s, a, 20)
	if r.content != strings.Repeat("c", 40000) || !r.obs.Hidden {
		t.Errorf("hidden: len %d hidden %v", len(r.content), r.obs.Hidden)
	}
}

func TestRunHugeOutputStaysBounded(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	r := btMustRun(t, s, btCmd(`yes 0123456789 | head -c 55000000; echo END`), 60)
	if !strings.HasSuffix(r.content, "0123456789\nEND") || !strings.HasPrefix(r.content, "0123456789\n0123456789") {
		t.Errorf("ends: %q ... %q", r.content[:30], r.content[len(r.content)-30:])
	}
	if !strings.Contains(r.content, truncationMarker) || len(r.content) > 30000+len(truncationMarker) {
		t.Errorf("content len %d, want truncated to 30000 chars", len(r.content))
	}
	if r.obs.Metadata.ExitCode != 0 {
		t.Errorf("exit %d", r.obs.Metadata.ExitCode)
	}
	if c := cap(s.out.tail); c > 4*keepTailBytes {
		t.Errorf("buffer capacity %d after reset, want bounded", c)
	}
}

func TestRunLongCommandLine(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	long := strings.Repeat("x", 10000)
	r := btMustRun(t, s, btCmd("echo "+long+" | wc -c"), 10)
	if r.content != "10001" {
		t.Errorf("wc -c of a 10000-char argument = %q, want 10001", r.content)
	}
	// variables set by a long command persist (it runs in the same shell)
	r = btMustRun(t, s, btCmd("LONGVAR="+long+"; echo ${#LONGVAR}"), 10)
	if r.content != "10000" {
		t.Errorf("got %q", r.content)
	}
	if r := btMustRun(t, s, btCmd("echo ${#LONGVAR}"), 10); r.content != "10000" {
		t.Errorf("persisted: %q", r.content)
	}
	// a heredoc with a long line, then a second long command (the command
	// file is replaced)
	if r := btMustRun(t, s, btCmd("cat > f.txt << 'EOF'\n"+long+"\nshort\nEOF"), 10); r.obs.Metadata.ExitCode != 0 {
		t.Errorf("heredoc: %q %+v", r.content, r.obs.Metadata)
	}
	if r := btMustRun(t, s, btCmd("wc -c < f.txt; echo "+long[:5000]+" >/dev/null"), 10); r.content != "10007" {
		t.Errorf("heredoc file size: %q", r.content)
	}
	// a command with a tty control character is not mangled by the line
	// discipline
	if r := btMustRun(t, s, btCmd("printf '%s' 'a\x15b' | od -An -c"), 10); !strings.Contains(r.content, "025") {
		t.Errorf("control char: %q", r.content)
	}
}

func TestRunStreamsOutput(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	var mu sync.Mutex
	var got strings.Builder
	ctx := context.Background()
	ev := s.Run(ctx, btCmd("echo one; sleep 0.2; echo two"), nil, func(p []byte) {
		mu.Lock()
		got.Write(p)
		mu.Unlock()
	})
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(got.String(), "one\ntwo\n") || ev.Content != "one\ntwo" {
		t.Errorf("streamed %q, content %q", got.String(), ev.Content)
	}
}

// is_static is served by the caller with a throw-away session in the
// action's cwd; Run itself does not start another session for it.
func TestRunStaticActionInThrowAwaySessionLeavesMainAlone(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	before := s.Cwd()
	btMustRun(t, s, btCmd("export MAINVAR=main"), 5)
	static := btSession(t, BashOptions{WorkDir: "/tmp"})
	a := btCmd("pwd; echo \"[$MAINVAR]\"; cd /")
	a.IsStatic = true
	r := btMustRun(t, static, a, 10)
	if r.content != "/tmp\n[]" || r.obs.Metadata.ExitCode != 0 {
		t.Errorf("static: content %q exit %d", r.content, r.obs.Metadata.ExitCode)
	}
	if static.Cwd() != "/" {
		t.Errorf("the static action ran elsewhere than in its session: cwd %q", static.Cwd())
	}
	if s.Cwd() != before {
		t.Errorf("main cwd changed to %q", s.Cwd())
	}
	if r := btMustRun(t, s, btCmd("pwd"), 5); r.content != before {
		t.Errorf("main pwd = %q, want %q", r.content, before)
	}
}

func TestRunAfterTimedOutCommandFinishedWhileIdle(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	r := btMustRun(t, s, btCmd("sleep 0.5; echo late"), 0.2)
	if r.obs.Metadata.ExitCode != -1 {
		t.Fatalf("want a hard timeout, got %+v", r.obs.Metadata)
	}
	time.Sleep(time.Second) // the command ends while nobody watches
	// The prompt is back, so the new command runs; its observation also
	// carries the rest of the previous command's output.
	r = btMustRun(t, s, btCmd("echo new"), 5)
	if r.content != "late\nnew" || r.obs.Metadata.ExitCode != 0 || r.obs.Metadata.Suffix != btCompleted(0) {
		t.Errorf("content %q metadata %+v", r.content, r.obs.Metadata)
	}
}

func TestRunCtrlZSuspendsTheJob(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{NoChangeTimeout: 500 * time.Millisecond})
	btMustRun(t, s, btCmd("sleep 30"), 0)
	r := btMustRun(t, s, btInput("C-z"), 5)
	if r.obs.Metadata.ExitCode != 148 || r.obs.Metadata.Suffix != "\n[The command completed with exit code 148. CTRL+Z was sent.]" || !strings.Contains(r.content, "Stopped") {
		t.Errorf("content %q metadata %+v", r.content, r.obs.Metadata)
	}
	if r := btMustRun(t, s, btCmd("kill %1"), 5); r.obs.Metadata.ExitCode != 0 {
		t.Errorf("kill %%1: %q %+v", r.content, r.obs.Metadata)
	}
}

func TestRunHugeOrInfiniteTimeoutMeansNone(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	for _, to := range []float64{math.Inf(1), 1e300} {
		r := btMustRun(t, s, btCmd("echo ok"), to)
		if r.content != "ok" || r.obs.Metadata.Suffix != btCompleted(0) {
			t.Errorf("timeout %v: %q %q", to, r.content, r.obs.Metadata.Suffix)
		}
	}
}
