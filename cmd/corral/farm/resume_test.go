package farm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"corral/actors"
	"corral/runtimes"
	"corral/runtimes/local"
)

// quickJobs are n passing jobs that each record their run in countDir.
func quickJobs(n int, countDir string) ([]jobSpec, string) {
	var specs []jobSpec
	var b strings.Builder
	for i := range n {
		line := fmt.Sprintf(`{"id":"q-%02d","runtime":{"env":{"COUNTDIR":%q}},"actions":[{"action":"run","args":{"command":"echo run >> $COUNTDIR/$JOB; sleep 0.2"}}],"check":"true"}`, i, countDir)
		specs = append(specs, jobSpec{line: line, status: StatusPassed, actions: 2})
		b.WriteString(line + "\n")
	}
	return specs, b.String()
}

func parseOrFail(t *testing.T, text string) []Job {
	t.Helper()
	jobs, bad, err := ParseJobs(strings.NewReader(text), "jobs.jsonl", "testdata")
	if err != nil || len(bad) > 0 {
		t.Fatalf("parse: %v %v", err, bad)
	}
	return jobs
}

func TestFarmResumesAfterCancelWithoutRerunningFinishedJobs(t *testing.T) {
	tmp := t.TempDir()
	countDir := filepath.Join(tmp, "count")
	os.Mkdir(countDir, 0o755)
	specs, text := quickJobs(40, countDir)
	jobs := parseOrFail(t, text)
	marker := fmt.Sprint("cancel-", time.Now().UnixNano())
	out := filepath.Join(tmp, "out")

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once a few results are on disk: a Ctrl-C midway.
		for {
			fin, err := ReadResultsFile(filepath.Join(out, ResultsFile))
			if err == nil && len(fin.Results) >= 8 {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	eng := newBashEngine(tmp, marker)
	sum1, err := New(eng, out, WithConcurrency(4), WithGrace(time.Minute)).Run(ctx, jobs, nil)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if !sum1.Interrupted || sum1.Ran == 0 || sum1.Ran == len(jobs) {
		t.Fatalf("first run: interrupted=%v ran=%d; want an interrupted partial run", sum1.Interrupted, sum1.Ran)
	}
	if len(sum1.Unfinished) != len(jobs)-sum1.Ran {
		t.Errorf("first run: %d unfinished listed, want %d", len(sum1.Unfinished), len(jobs)-sum1.Ran)
	}

	eng2 := newBashEngine(tmp, marker)
	sum2, err := New(eng2, out, WithConcurrency(4)).Run(context.Background(), jobs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum2.Skipped != sum1.Ran || sum2.Ran != len(jobs)-sum1.Ran || !sum2.OK() {
		t.Errorf("second run: skipped %d ran %d ok=%v; want skipped %d, ran %d, all passed", sum2.Skipped, sum2.Ran, sum2.OK(), sum1.Ran, len(jobs)-sum1.Ran)
	}
	for _, r := range sum1.Results {
		if eng2.starts[r.ID] != 0 {
			t.Errorf("job %s finished in the first run but started again", r.ID)
		}
	}
	fin, _ := ReadResultsFile(filepath.Join(out, ResultsFile))
	if len(fin.Results) != len(jobs) {
		t.Errorf("results.jsonl has %d lines, want %d (one per job)", len(fin.Results), len(jobs))
	}
	checkRunCounts(t, countDir, specs, nil)
	if pids := leftoverProcesses(marker); len(pids) != 0 {
		t.Errorf("leftover processes %v", pids)
	}
}

func TestFarmResumesAfterKill(t *testing.T) {
	tmp := t.TempDir()
	countDir := filepath.Join(tmp, "count")
	os.Mkdir(countDir, 0o755)
	specs, text := quickJobs(50, countDir)
	jobsPath := filepath.Join(tmp, "jobs.jsonl")
	os.WriteFile(jobsPath, []byte(text), 0o644)
	marker := fmt.Sprint("kill-", time.Now().UnixNano())
	out := filepath.Join(tmp, "out")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+out, "FARM_TEST_HELPER_JOBS="+jobsPath,
		"FARM_TEST_HELPER_ROOT="+tmp, "FARM_TEST_HELPER_MARKER="+marker)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		fin, err := ReadResultsFile(filepath.Join(out, ResultsFile))
		if err == nil && len(fin.Results) >= 12 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("helper farm made no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	before, err := ReadResultsFile(filepath.Join(out, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Results) >= 50 {
		t.Fatal("helper finished before it was killed; the test proves nothing")
	}
	// The killed farm's in-flight commands were orphaned; they end by
	// themselves within their 0.2 s sleep.
	waitNoProcesses(t, marker)

	eng := newBashEngine(tmp, marker)
	jobs := parseOrFail(t, text)
	sum, err := New(eng, out, WithConcurrency(4)).Run(context.Background(), jobs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK() || sum.Skipped != len(before.Results) {
		t.Errorf("resume: ok=%v skipped=%d, want ok and %d skipped", sum.OK(), sum.Skipped, len(before.Results))
	}
	finishedBefore := map[string]bool{}
	for _, r := range before.Results {
		finishedBefore[r.ID] = true
		if eng.starts[r.ID] != 0 {
			t.Errorf("job %s finished before the kill but ran again", r.ID)
		}
	}
	// Jobs in flight at the kill had no result and legitimately ran again.
	mayRepeat := map[string]bool{}
	for _, j := range jobs {
		if !finishedBefore[j.ID] {
			mayRepeat[j.ID] = true
		}
	}
	checkRunCounts(t, countDir, specs, mayRepeat)
	fin, _ := ReadResultsFile(filepath.Join(out, ResultsFile))
	seen := map[string]int{}
	for _, r := range fin.Results {
		seen[r.ID]++
	}
	for _, j := range jobs {
		if seen[j.ID] != 1 {
			t.Errorf("job %s has %d results, want 1", j.ID, seen[j.ID])
		}
	}
	for _, j := range jobs {
		if n, _ := countEvents(t, filepath.Join(out, EventsDir, j.ID+".jsonl")); n != 2 {
			t.Errorf("job %s event log has %d actions, want 2 (the resumed run's only)", j.ID, n)
		}
	}
	if pids := leftoverProcesses(marker); len(pids) != 0 {
		t.Errorf("leftover processes %v", pids)
	}
}

func waitNoProcesses(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(leftoverProcesses(marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes of the killed farm still running: %v", leftoverProcesses(marker))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFarmIgnoresAndReportsTornLastResultLine(t *testing.T) {
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	os.MkdirAll(out, 0o755)
	jobs := parseOrFail(t, `{"id":"a","check":"true"}
{"id":"b","check":"true"}
`)
	done := `{"id":"a","status":"passed","attempts":1,"queued_at":"2026-01-01T00:00:00Z","start_at":"2026-01-01T00:00:00Z","end_at":"2026-01-01T00:00:01Z","total_s":1}` + "\n"
	os.WriteFile(filepath.Join(out, ResultsFile), []byte(done+`{"id":"b","status":"pas`), 0o644)
	eng := newBashEngine(tmp, "torn")
	sum, err := New(eng, out).Run(context.Background(), jobs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resumed.TornLine != 2 {
		t.Errorf("torn line reported as %d, want 2", sum.Resumed.TornLine)
	}
	if sum.Skipped != 1 || sum.Ran != 1 || eng.starts["a"] != 0 || eng.starts["b"] != 1 {
		t.Errorf("skipped %d ran %d starts %v; want a skipped and b run", sum.Skipped, sum.Ran, eng.starts)
	}
	fin, err := ReadResultsFile(filepath.Join(out, ResultsFile))
	if err != nil || len(fin.Results) != 2 || fin.TornLine != 0 || len(fin.Bad) != 0 {
		t.Errorf("results after resume: %+v, %v; want two clean lines", fin, err)
	}
}

func TestFarmFailsAtOnceWhenOutputFolderIsNotWritable(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	os.WriteFile(file, nil, 0o644)
	eng := newBashEngine(tmp, "nowrite")
	_, err := New(eng, filepath.Join(file, "out")).Run(context.Background(), parseOrFail(t, `{"id":"a","check":"true"}`), nil)
	if err == nil || !strings.Contains(err.Error(), "output folder") || !strings.Contains(err.Error(), "--out") {
		t.Fatalf("err = %v; want a clear output-folder error", err)
	}
	if len(eng.starts) != 0 {
		t.Errorf("jobs started despite an unusable output folder: %v", eng.starts)
	}
}

func TestFarmCancelsRunningJobsAfterGraceAndDestroysSandboxes(t *testing.T) {
	tmp := t.TempDir()
	marker := fmt.Sprint("grace-", time.Now().UnixNano())
	var b strings.Builder
	for i := range 6 {
		fmt.Fprintf(&b, `{"id":"s%d","actions":[{"action":"run","args":{"command":"sleep 60"}}]}`+"\n", i)
	}
	jobs := parseOrFail(t, b.String())
	eng := newBashEngine(tmp, marker)
	out := filepath.Join(tmp, "out")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(leftoverProcesses(marker)) < 3 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	sum, err := New(eng, out, WithConcurrency(3), WithGrace(100*time.Millisecond)).Run(ctx, jobs, nil)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Ran != 0 || len(sum.Unfinished) != 6 || !sum.Interrupted {
		t.Errorf("ran %d, unfinished %v, interrupted %v; want 0 ran and all 6 unfinished", sum.Ran, sum.Unfinished, sum.Interrupted)
	}
	if n := eng.live.Load(); n != 0 {
		t.Errorf("%d sandboxes left after the grace period", n)
	}
	if pids := leftoverProcesses(marker); len(pids) != 0 {
		t.Errorf("leftover processes %v", pids)
	}
	fin, _ := ReadResultsFile(filepath.Join(out, ResultsFile))
	if len(fin.Results) != 0 {
		t.Errorf("interrupted jobs were recorded as finished: %+v", fin.Results)
	}
}

func TestFarmDoesNotRetryPermanentStartErrors(t *testing.T) {
	tmp := t.TempDir()
	eng := newBashEngine(tmp, "perm")
	jobs := parseOrFail(t, `{"id":"limits","runtime":{"pids_limit":10},"check":"true"}`)
	sum, err := New(eng, filepath.Join(tmp, "out"), WithRetries(3)).Run(context.Background(), jobs, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := sum.Results[0]
	if r.Status != StatusError || r.Attempt != 1 || eng.starts["limits"] != 1 || !strings.Contains(r.Error, "pids_limit is not supported") {
		t.Errorf("result %+v after %d starts; want one attempt ending in error", r, eng.starts["limits"])
	}
}

func TestActorsEngineRefusesResourceLimitsTheRuntimeCannotEnforce(t *testing.T) {
	reg, err := runtimes.NewRegistry(local.NewInProcess(local.InProcessTempDir(t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	cfg := actors.DefaultConfig()
	cfg.DefaultRuntime = "cli"
	eng, err := actors.NewEngine(cfg, reg, actors.WithHostEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown(context.Background())
	_, err = NewActorsEngine(eng).StartSession(context.Background(), SessionSpec{JobID: "j", Runtime: Runtime{Backend: "cli", MemoryMB: 512}})
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "resource limits") {
		t.Errorf("err = %v; want a permanent error saying the runtime cannot enforce the limits", err)
	}
}

func TestFarmDrawsAProgressBarOnATerminal(t *testing.T) {
	tmp := t.TempDir()
	var b strings.Builder
	for i := range 3 {
		fmt.Fprintf(&b, `{"id":"p%d","actions":[{"action":"run","args":{"command":"sleep 0.3"}}]}`+"\n", i)
	}
	var out syncBuffer
	_, err := New(newBashEngine(tmp, "bar"), filepath.Join(tmp, "out"), WithProgress(&out, true)).Run(context.Background(), parseOrFail(t, b.String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "\r[") || !strings.Contains(s, "3/3 done  0 failed  0 running") || !strings.Contains(s, "jobs/s  ETA") {
		t.Errorf("progress output %q lacks the redrawn bar", s)
	}
}

// syncBuffer is a strings.Builder safe for the progress goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
