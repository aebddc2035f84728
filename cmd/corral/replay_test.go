package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// replayTrajectory writes an OpenHands trajectory whose recorded
// observations are known: one run that matches, one whose output differs,
// one whose exit code differs, and an edit recorded the way older OpenHands
// versions stored it (the diff in content, the agent-facing result in
// extras.formatted_output_and_error), which matches.
func replayTrajectory(t *testing.T) string {
	t.Helper()
	run := func(id int64, cmd string) map[string]any {
		return map[string]any{"id": id, "source": "agent", "action": "run", "args": map[string]any{"command": cmd}}
	}
	runObs := func(id, cause int64, cmd, out string, code int) map[string]any {
		return map[string]any{"id": id, "cause": cause, "source": "agent", "observation": "run", "content": out,
			"extras": map[string]any{"command": cmd, "metadata": map[string]any{"exit_code": code}}}
	}
	events := []map[string]any{
		{"id": 0, "source": "user", "action": "message", "args": map[string]any{"content": "go"}},
		run(1, "echo same"), runObs(2, 1, "echo same", "same", 0),
		run(3, "echo new-text"), runObs(4, 3, "echo new-text", "old-text", 0),
		run(5, "false"), runObs(6, 5, "false", "", 0),
		{"id": 7, "source": "agent", "action": "edit", "args": map[string]any{"command": "create", "path": "/workspace/x.txt", "file_text": "hello\n", "impl_source": "oh_aci"}},
		{"id": 8, "cause": 7, "source": "agent", "observation": "edit",
			"content": "--- /workspace/x.txt\n+++ /workspace/x.txt\n@@ -0,0 +1 @@\n+hello",
			"extras": map[string]any{"path": "/workspace/x.txt", "prev_exist": false, "impl_source": "oh_aci",
				"formatted_output_and_error": "File created successfully at: /workspace/x.txt"}},
	}
	b, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "traj.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReplayDiffShowsWhatDiffers(t *testing.T) {
	cliEnv(t)
	traj := replayTrajectory(t)
	verdicts := []string{
		"action 1 run echo same: recorded run exit 0 | new run exit 0 | SAME",
		"action 3 run echo new-text: recorded run exit 0 | new run exit 0 | DIFFER (content differs)",
		"action 5 run false: recorded run exit 0 | new run exit 1 | DIFFER (exit code differs)",
		"action 7 edit create /workspace/x.txt: recorded edit exit - | new edit exit - | SAME",
	}
	diffLines := []string{
		"    --- recorded observation 4",
		"    +++ new observation ",
		"     [run observation, exit code 0]",
		"    -old-text",
		"    +new-text",
		"    --- recorded observation 6",
		"    -[run observation, exit code 0]",
		"    +[run observation, exit code 1]",
	}
	tests := []struct {
		name      string
		args      []string
		code      int
		wantDiffs bool
	}{
		{"without --diff only the verdicts", []string{"replay", traj, "--runtime", "cli"}, exitOK, false},
		{"--diff adds a unified diff under each differing action", []string{"replay", "--diff", traj, "--runtime", "cli"}, exitOK, true},
		{"--strict exits 1 on the differences", []string{"replay", traj, "--runtime", "cli", "--strict", "--diff"}, exitFailed, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s\nstdout:\n%s", code, tc.code, stderr, stdout)
			}
			for _, v := range verdicts {
				if !strings.Contains(stdout, v+"\n") {
					t.Errorf("no line %q in:\n%s", v, stdout)
				}
			}
			if !strings.Contains(stdout, "replayed 4 actions of "+traj+": 2 same, 2 differ, 0 without a recorded observation") {
				t.Errorf("summary missing or wrong:\n%s", stdout)
			}
			for _, d := range diffLines {
				if got := strings.Contains(stdout, "\n"+d); got != tc.wantDiffs {
					t.Errorf("diff line %q present = %v, want %v:\n%s", d, got, tc.wantDiffs, stdout)
				}
			}
			// The matching actions get no diff: the block after a SAME line
			// is the next action's line.
			lines := strings.Split(stdout, "\n")
			for i, l := range lines {
				if strings.HasSuffix(l, "| SAME") && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    ") {
					t.Errorf("a diff follows a matching action: %q then %q", l, lines[i+1])
				}
			}
		})
	}
}
