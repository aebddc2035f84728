package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFarmForkFromRunsTheSetUpOnceAndForksIt: jobs with fork_from start
// from their set-up job's sandbox (its files, its events in their log);
// a fork_from naming no job, or a set-up job that failed, is an error.
func TestFarmForkFromRunsTheSetUpOnceAndForksIt(t *testing.T) {
	cliEnv(t)
	dir := t.TempDir()
	jobs := filepath.Join(dir, "jobs.jsonl")
	os.WriteFile(jobs, []byte(`{"id":"a1","fork_from":"setup","check":"grep -qx prepared prep.txt && test ! -f a2.txt && touch a1.txt"}
{"id":"setup","actions":[{"action":"run","args":{"command":"echo prepared > prep.txt"}}],"check":"true"}
{"id":"a2","fork_from":"setup","check":"grep -qx prepared prep.txt && test ! -f a1.txt && touch a2.txt"}
{"id":"orphan","fork_from":"nosuch","check":"true"}
{"id":"badsetup","check":"false"}
{"id":"b1","fork_from":"badsetup","check":"true"}
`), 0o644)
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	code := runFarm(context.Background(), []string{"--concurrency", "3", "--retries", "0", "--out", out, "--progress", "none", jobs}, nil, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (some jobs fail by design)\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	got := readResults(t, out)
	for id, want := range map[string]struct{ status, err string }{
		"setup": {"passed", ""}, "a1": {"passed", ""}, "a2": {"passed", ""},
		"orphan": {"error", "names no job"}, "badsetup": {"failed", ""}, "b1": {"error", "ended failed"},
	} {
		r := got[id]
		if string(r.Status) != want.status || !strings.Contains(r.Error, want.err) {
			t.Errorf("job %s: %s (%q), want %s with %q", id, r.Status, r.Error, want.status, want.err)
		}
	}
	log, err := os.ReadFile(filepath.Join(out, "events", "a1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "echo prepared > prep.txt") {
		t.Errorf("a1's event log lacks the set-up job's action:\n%s", log)
	}
}
