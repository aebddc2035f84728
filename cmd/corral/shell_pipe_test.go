package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestShellReadingAScriptPrintsATranscript: with stdin a pipe, each line is
// echoed after its prompt, output and OpenHands' notes follow in order, a
// line read while a command waits for input goes to it, and the end of the
// script ends the session, releasing its sandbox.
func TestShellReadingAScriptPrintsATranscript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local sandbox")
	}
	defer verifyNoLeaks(t, goleak.IgnoreCurrent())
	agent := buildAgent(t)
	tmp, err := os.MkdirTemp("", "csp") // short: socket paths live here
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	t.Setenv("TMPDIR", tmp)
	t.Setenv("XDG_RUNTIME_DIR", "")

	// All of it is in the pipe before the first command ends: "bob" is
	// typed ahead, and goes to read once it returned control.
	script := strings.Join([]string{
		"echo hi-$((1+1))",
		"false",
		`read -p "name? " x; echo "hello-$x"`,
		"bob",
		"printf no-newline",
	}, "\n")
	var stdout, stderr bytes.Buffer
	code := runShell(context.Background(), []string{"--runtime", "local"}, strings.NewReader(script), &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	out := stdout.String()
	_, transcript, ok := strings.Cut(out, "\n$ ")
	if !ok {
		t.Fatalf("no prompt in:\n%s", out)
	}
	want := []string{
		"echo hi-$((1+1))",
		"hi-2",
		"[The command completed with exit code 0.]",
		"$ false",
		"[The command completed with exit code 1.]",
		`$ read -p "name? " x; echo "hello-$x"`,
		"name?",
		"[The command has no new output after 10 seconds.",
		"input> bob",
		"hello-bob",
		"[The command completed with exit code 0.]",
		"$ printf no-newline",
		"no-newline",
		"[The command completed with exit code 0.]",
		"$ ",
		"", // the end of the script ends the prompt's line
	}
	lines := strings.Split(transcript, "\n")
	if len(lines) != len(want) {
		t.Fatalf("transcript has %d lines, want %d:\n%s", len(lines), len(want), transcript)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Fatalf("line %d is %q, want it to begin with %q; transcript:\n%s", i+1, lines[i], w, transcript)
		}
	}
	if strings.Contains(out, "\x1b[") || strings.Contains(out, "###PS1") {
		t.Fatalf("escapes or protocol blocks in the transcript of a pipe:\n%q", out)
	}
	if left := (&shellUnderPTY{agent: agent, tmp: tmp}).sandboxLeft(); len(left) > 0 {
		t.Fatalf("the sandbox outlived the shell: %v", left)
	}
}
