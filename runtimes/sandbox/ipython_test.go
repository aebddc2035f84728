package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
)

func cell(t *testing.T, x *Executor, code string, timeout float64, extra bool) string {
	t.Helper()
	ev := xAct(5, &eventbus.IPythonRunCellAction{Code: code, IncludeExtra: extra})
	if timeout > 0 {
		ev.Timeout = &timeout
	}
	obs := x.Execute(context.Background(), ev, nil)
	io, ok := obs.Observation.(*eventbus.IPythonRunCellObservation)
	if !ok {
		t.Fatalf("cell %q: got %s %q", code, obs.Type(), obs.Content)
	}
	if io.Code != code {
		t.Fatalf("code not echoed: %q", io.Code)
	}
	return obs.Content
}

func TestIPythonCellsShareGlobalsAndEchoTheLastExpression(t *testing.T) {
	x, _ := newTestExecutor(t)
	cases := []struct{ code, want string }{
		{"x = 40", "[Code executed successfully with no output]"},
		{"x + 2", "42"},
		{"print('a')\nprint('b')\nx", "a\nb\n40"},
		{"x;", "[Code executed successfully with no output]"},
		{"None", "[Code executed successfully with no output]"},
		{"'s'", "'s'"},
		{"def f(n):\n    return n * 2\nf(x)", "80"},
		{"import sys\nprint('err', file=sys.stderr)", "err"},
		{"!echo from-shell", "from-shell"},
		{"print('trailing   \\n\\n')", "trailing"},
	}
	for _, tc := range cases {
		if got := cell(t, x, tc.code, 0, false); got != tc.want {
			t.Errorf("cell %q = %q, want %q", tc.code, got, tc.want)
		}
	}
	got := cell(t, x, "1/0", 0, false)
	if !strings.HasPrefix(got, "Traceback (most recent call last):") || !strings.HasSuffix(got, "ZeroDivisionError: division by zero") || !strings.Contains(got, "1/0") {
		t.Errorf("traceback %q", got)
	}
	if got := cell(t, x, "def (:", 0, false); !strings.Contains(got, "SyntaxError") {
		t.Errorf("syntax error %q", got)
	}
	if got := cell(t, x, "x", 0, false); got != "40" {
		t.Errorf("globals lost after errors: %q", got)
	}
	// kernel_init_code runs once per interpreter, before the cell.
	for i := range 2 {
		obs := x.Execute(context.Background(), xAct(6, &eventbus.IPythonRunCellAction{Code: "inits", KernelInitCode: "inits = globals().get('inits', 0) + 1"}), nil)
		if obs.Content != "1" {
			t.Fatalf("kernel_init_code run %d: %q", i, obs.Content)
		}
	}
}

func TestIPythonIncludeExtraAndCwdFollowsBash(t *testing.T) {
	x, dir := newTestExecutor(t)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	got := cell(t, x, "import os\nprint(os.getcwd())", 0, true)
	lines := strings.Split(got, "\n")
	if len(lines) != 3 || lines[0] != dir || lines[1] != "[Jupyter current working directory: "+dir+"]" || !strings.HasPrefix(lines[2], "[Jupyter Python interpreter: /") {
		t.Fatalf("extra lines %q", got)
	}
	xRun(t, x, "cd sub")
	sub := filepath.Join(dir, "sub")
	if got := cell(t, x, "os.getcwd()", 0, false); got != "'"+sub+"'" {
		t.Fatalf("cwd did not follow bash: %q", got)
	}
	// A chdir inside python sticks until bash moves again.
	cell(t, x, "os.chdir('/')", 0, false)
	if got := cell(t, x, "os.getcwd()", 0, false); got != "'/'" {
		t.Fatalf("python chdir lost: %q", got)
	}
}

func TestIPythonTimeoutInterruptsAndTheNextCellWorks(t *testing.T) {
	x, _ := newTestExecutor(t)
	cell(t, x, "kept = 'yes'", 0, false)
	var streamed strings.Builder
	ev := xAct(9, &eventbus.IPythonRunCellAction{Code: "import time\nprint('start', flush=True)\ntime.sleep(60)"})
	to := 1.0
	ev.Timeout = &to
	start := time.Now()
	obs := x.Execute(context.Background(), ev, func(b []byte) { streamed.Write(b) })
	if obs.Content != "[Execution timed out (1 seconds).]" {
		t.Fatalf("timeout content %q", obs.Content)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("interrupt took %s", time.Since(start))
	}
	if !strings.Contains(streamed.String(), "start") {
		t.Fatalf("live output not streamed: %q", streamed.String())
	}
	if got := cell(t, x, "kept", 0, false); got != "'yes'" {
		t.Fatalf("after interrupt: %q", got)
	}
	// A cell that ignores KeyboardInterrupt gets its interpreter killed;
	// the next cell starts a fresh one.
	to = 1
	ev = xAct(10, &eventbus.IPythonRunCellAction{Code: "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass"})
	ev.Timeout = &to
	if obs := x.Execute(context.Background(), ev, nil); obs.Content != "[Execution timed out (1 seconds).]" {
		t.Fatalf("stubborn cell: %q", obs.Content)
	}
	if got := cell(t, x, "'kept' in globals()", 0, false); got != "False" {
		t.Fatalf("fresh interpreter expected: %q", got)
	}
}

func TestIPythonInterpreterExitIsReportedAndRestarted(t *testing.T) {
	x, _ := newTestExecutor(t)
	got := cell(t, x, "print('bye', flush=True)\nimport os\nos._exit(3)", 0, false)
	if !strings.HasPrefix(got, "bye\n[the Python interpreter exited while running the cell") {
		t.Fatalf("exit: %q", got)
	}
	if got := cell(t, x, "1+1", 0, false); got != "2" {
		t.Fatalf("after restart: %q", got)
	}
}

func TestIPythonWithoutPythonIsAClearError(t *testing.T) {
	x, _ := newTestExecutor(t, WithPython(""))
	xWantError(t, xExec(t, x, &eventbus.IPythonRunCellAction{Code: "1"}),
		"Cannot run IPython cell: no python3 interpreter was found on PATH in the sandbox. Install python3 or configure its path (WithPython), or use the bash tool instead.", "")
	x2, _ := newTestExecutor(t, WithPython("/nonexistent/python3"))
	obs := xExec(t, x2, &eventbus.IPythonRunCellAction{Code: "1"})
	if _, ok := obs.Observation.(*eventbus.ErrorObservation); !ok || !strings.Contains(obs.Content, "/nonexistent/python3") {
		t.Fatalf("bad interpreter: %s %q", obs.Type(), obs.Content)
	}
}
