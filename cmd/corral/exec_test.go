package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
)

// cliEnv builds the agent onto PATH and gives sandboxes a HOME of their own
// (set-up steps write ~/.bashrc and ~/.gitconfig).
func cliEnv(t *testing.T) {
	t.Helper()
	buildAgent(t)
	t.Setenv("HOME", t.TempDir())
}

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExecRunsActionsInOrderAndReportsBadLines(t *testing.T) {
	cliEnv(t)
	in := `{"action":"run","args":{"command":"echo one > f.txt && cat f.txt"},"source":"agent"}
this is not json
{"action":"think","args":{"thought":"hmm"},"source":"agent"}
{"observation":"run","content":"x","extras":{"command":"ls","metadata":{}}}
{"action":"read","args":{"path":"f.txt"},"source":"agent"}
`
	tests := []struct {
		name, runtime string
		corralEvents  bool // --corral-events: runtime_status lines too
	}{
		{"local runtime prints OpenHands events only", "local", false},
		{"cli runtime prints OpenHands events only", "cli", false},
		{"local runtime with --corral-events prints runtime status too", "local", true},
		{"cli runtime with --corral-events prints runtime status too", "cli", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"exec", "--runtime", tc.runtime}
			if tc.corralEvents {
				args = append(args, "--corral-events")
			}
			code, stdout, stderr := runCLI(t, in, args...)
			if code != exitBadInput {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitBadInput, stderr)
			}
			if !strings.Contains(stderr, "line 2:") || !strings.Contains(stderr, "line 4:") || !strings.Contains(stderr, "not an action") {
				t.Fatalf("stderr does not name the bad lines:\n%s", stderr)
			}
			var types []string
			kindOf := map[int64]string{} // id -> "A:<type>" or "O:<type>"
			var acts []string
			causes := map[int64]string{}
			last := int64(-1)
			for i, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
				ev, err := eventbus.Unmarshal([]byte(line))
				if err != nil {
					t.Fatalf("stdout line %d is not an event: %v: %s", i+1, err, line)
				}
				if !tc.corralEvents && ev.IsCorralExtension() {
					t.Fatalf("stdout line %d is Corral's own %q event, not OpenHands JSON: %s", i+1, ev.Type(), line)
				}
				if ev.ID <= last || tc.corralEvents && ev.ID != last+1 {
					t.Fatalf("stdout line %d has id %d after %d: not in id order (or a gap with --corral-events)", i+1, ev.ID, last)
				}
				last = ev.ID
				types = append(types, ev.Type())
				if ev.IsAction() {
					kindOf[ev.ID] = "A:" + ev.Type()
					acts = append(acts, ev.Type())
				} else {
					kindOf[ev.ID] = "O:" + ev.Type()
				}
				if ev.Cause != nil {
					causes[*ev.Cause] = ev.Type() + ":" + ev.Content
				}
			}
			// Actions keep their input order; each observation comes after
			// its action (the engine may run one before the next is stored).
			got := strings.Join(types, ",")
			if strings.Join(acts, ",") != "run,think,read" || strings.HasSuffix(got, ",runtime_status") != tc.corralEvents || tc.corralEvents && len(types) != 11 {
				t.Fatalf("event types %s", got)
			}
			if n := strings.Count(got, "runtime_status"); tc.corralEvents && n == 0 || !tc.corralEvents && n != 0 {
				t.Fatalf("%d runtime_status events printed (--corral-events %v): %s", n, tc.corralEvents, got)
			}
			for cause := range causes {
				if !strings.HasPrefix(kindOf[cause], "A:") {
					t.Fatalf("an observation answers event %d, which is not a printed action (%s)", cause, got)
				}
			}
			if len(causes) != 3 {
				t.Fatalf("want 3 answered actions, got %v (%s)", causes, got)
			}
			found := false
			for _, c := range causes {
				if strings.HasPrefix(c, "run:one") {
					found = true
				}
			}
			if !found {
				t.Fatalf("no run observation with the command's output: %v", causes)
			}
		})
	}
}

func TestExecExitCodes(t *testing.T) {
	cliEnv(t)
	good := `{"action":"run","args":{"command":"true"},"source":"agent"}` + "\n"
	file := filepath.Join(t.TempDir(), "actions.json")
	if err := os.WriteFile(file, []byte(`[{"action":"run","args":{"command":"echo from-file"},"source":"agent"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"all actions answered", good, []string{"exec", "--runtime", "cli"}, exitOK, ""},
		{"actions from a file", "", []string{"exec", "--runtime", "cli", "--file", file}, exitOK, ""},
		{"unknown runtime", good, []string{"exec", "--runtime", "nope"}, exitUsage, `unknown runtime "nope"; known: cli, docker, kubernetes, local, remote`},
		{"file missing", "", []string{"exec", "--file", "/nonexistent.json"}, exitUsage, "no such file"},
		{"workspace missing", good, []string{"exec", "--runtime", "local", "--workspace", "/nonexistent/ws"}, exitNoSandbox, "workspace /nonexistent/ws does not exist"},
		{"config with unknown key", good, []string{"exec", "--config", writeFile(t, "[engine]\nmax_sesions = 3\n")}, exitUsage, "max_sesions"},
		{"unknown command", "", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.stdin, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)\nstdout:\n%s", code, tt.code, stderr, tt.stderr, stdout)
			}
		})
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "corral.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReplayEveryFixture(t *testing.T) {
	cliEnv(t)
	dir := "/work/shared/fixtures/openhands-trajs"
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no trajectories in %s", dir)
	}
	want := map[string][]string{ // per file: the new observation types, in order
		"basic.json":               {"new edit"},
		"basic_gui_mode.json":      {"new run exit 0", "new edit", "new edit", "new run exit -1"},
		"basic_interactions.json":  {},
		"wrong_initial_state.json": {"new read", "new run exit 1", "new read"},
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "", "replay", f, "--runtime", "local")
			if code != exitOK {
				t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			exp, ok := want[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			if len(lines) != len(exp)+1 || !strings.HasPrefix(lines[len(lines)-1], "replayed ") {
				t.Fatalf("output:\n%s", stdout)
			}
			for i, w := range exp {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d %q does not contain %q", i+1, lines[i], w)
				}
			}
		})
	}
}
