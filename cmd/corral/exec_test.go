package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	for _, rt := range []string{"local", "cli"} {
		t.Run(rt, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, in, "exec", "--runtime", rt)
			if code != exitBadInput {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitBadInput, stderr)
			}
			if !strings.Contains(stderr, "line 2:") || !strings.Contains(stderr, "line 4:") || !strings.Contains(stderr, "not an action") {
				t.Fatalf("stderr does not name the bad lines:\n%s", stderr)
			}
			var types, kinds []string
			causes := map[int64]string{}
			for i, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
				var ev struct {
					ID          int64  `json:"id"`
					Action      string `json:"action"`
					Observation string `json:"observation"`
					Cause       *int64 `json:"cause"`
					Content     string `json:"content"`
				}
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("stdout line %d is not JSON: %v", i+1, err)
				}
				if ev.ID != int64(i) {
					t.Fatalf("stdout line %d has id %d: not in id order", i+1, ev.ID)
				}
				types = append(types, ev.Action+ev.Observation)
				if ev.Action != "" {
					kinds = append(kinds, "A:"+ev.Action)
				} else {
					kinds = append(kinds, "O:"+ev.Observation)
				}
				if ev.Cause != nil {
					causes[*ev.Cause] = ev.Observation + ":" + ev.Content
				}
			}
			// Actions keep their input order; each observation comes after
			// its action (the engine may run one before the next is stored).
			var acts []string
			for _, ty := range kinds {
				if a, ok := strings.CutPrefix(ty, "A:"); ok {
					acts = append(acts, a)
				}
			}
			got := strings.Join(types, ",")
			if strings.Join(acts, ",") != "run,think,read" || !strings.HasSuffix(got, ",runtime_status") || len(types) != 11 {
				t.Fatalf("event types %s", got)
			}
			for cause := range causes {
				if cause < 0 || cause >= int64(len(kinds)) || !strings.HasPrefix(kinds[cause], "A:") {
					t.Fatalf("an observation answers event %d, which is not an action (%s)", cause, got)
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
		{"unknown runtime", good, []string{"exec", "--runtime", "nope"}, exitUsage, `unknown runtime "nope"; known: local, cli, docker, remote`},
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
