package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runAgent runs the built agent with args and returns its exit code and
// combined output.
func runAgent(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(agentBin, args...)
	cmd.Env = append(filterEnv(os.Environ()), "HOME="+t.TempDir())
	out, _ := cmd.CombinedOutput()
	return cmd.ProcessState.ExitCode(), string(out)
}

// TestCopyToInstallsARunnableAgent: --copy-to writes a byte-identical,
// executable copy (creating the directory), replaces an existing file, leaves
// no temporary file behind, and the copy runs.
func TestCopyToInstallsARunnableAgent(t *testing.T) {
	want, err := os.ReadFile(agentBin)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "new", "dir")
	dst := filepath.Join(dir, "corral-agent")
	for _, round := range []string{"into a new directory", "over the previous copy"} {
		code, out := runAgent(t, "--copy-to", dst)
		if code != 0 || !strings.Contains(out, "copied corral-agent") || !strings.Contains(out, dst) {
			t.Fatalf("%s: exit %d, output %q; want exit 0 naming %s", round, code, out, dst)
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatalf("%s: %v", round, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the copy differs from the agent (%d vs %d bytes)", round, len(got), len(want))
		}
		fi, err := os.Stat(dst)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want 0755", round, fi.Mode().Perm())
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only corral-agent (a temporary file left behind?)", len(entries))
	}
	out, err := exec.Command(dst, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "agentwire protocol") {
		t.Fatalf("the copy does not run: %v %q", err, out)
	}
}

// TestCopyToBadPathsSayWhatIsWrong: every unusable PATH is refused with exit
// 1, a message naming it and nothing written.
func TestCopyToBadPathsSayWhatIsWrong(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dst  string
		want []string
	}{
		{"empty path", "", []string{"--copy-to needs a file path"}},
		{"a directory", base, []string{"is a directory", filepath.Join(base, "corral-agent")}},
		{"parent is a file", filepath.Join(file, "corral-agent"), []string{"creating its directory", file}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runAgent(t, "--copy-to", tc.dst)
			if code != 1 {
				t.Errorf("exit %d, want 1 (output %q)", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output %q does not contain %q", out, w)
				}
			}
		})
	}
	if entries, _ := os.ReadDir(base); len(entries) != 1 {
		t.Errorf("%s holds %d entries after refused copies, want 1", base, len(entries))
	}
}
