package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"

	"corral/cmd/corral/farm"
)

// verifyNoLeaks fails t if goroutines outlive the test. Library timers
// (protoactor's dead-letter throttle) end one period after the engine shut
// down, so it retries for a few seconds first.
func verifyNoLeaks(t *testing.T, opts ...goleak.Option) {
	t.Helper()
	var err error
	for range 10 {
		if err = goleak.Find(opts...); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
	t.Error(err)
}

// buildAgent builds corral-agent into a fresh directory and puts it first
// on PATH, where the local backend looks for it.
func buildAgent(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "corral-agent"), "corral/cmd/corral-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build corral-agent: %v\n%s", err, out)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	// Sandbox shells source ~/.bashrc; the host's may be slow (pyenv init
	// takes a lock) and is no part of what these tests check.
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o755)
	t.Setenv("HOME", home)
	return filepath.Join(dir, "corral-agent")
}

// processesMatching lists pids whose environment holds marker or whose
// executable is exe.
func processesMatching(marker, exe string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		link, _ := os.Readlink(filepath.Join("/proc", d.Name(), "exe"))
		if (marker != "" && bytes.Contains(env, []byte("FARM_MARKER="+marker))) || (exe != "" && strings.TrimSuffix(link, " (deleted)") == exe) {
			out = append(out, d.Name())
		}
	}
	return out
}

// writeFarmJobs writes n jobs for the local runtime: passing, failing and
// timing-out ones, one replayed trajectory, one bad trajectory, and a
// malformed line 7. It returns the jobs path and the expected statuses.
func writeFarmJobs(t *testing.T, dir, marker string, n int) (string, map[string]farm.Status) {
	t.Helper()
	traj, err := os.ReadFile("farm/testdata/fix-bug.trajectory.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "fix-bug.json"), traj, 0o644)
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte("not json at all"), 0o644)
	env := fmt.Sprintf(`"runtime":{"env":{"FARM_MARKER":%q}}`, marker)
	want := map[string]farm.Status{}
	var lines []string
	for i := range n {
		id := fmt.Sprintf("j%02d", i)
		var line string
		switch {
		case i == 0:
			line, want[id] = fmt.Sprintf(`{"id":%q,"trajectory":"fix-bug.json","check":"grep -qx hello hello.txt"}`, id), farm.StatusPassed
		case i == 1:
			line, want[id] = fmt.Sprintf(`{"id":%q,"trajectory":"bad.json"}`, id), farm.StatusError
		case i%10 == 3:
			line, want[id] = fmt.Sprintf(`{"id":%q,%s,"timeout":3,"actions":[{"action":"run","args":{"command":"sleep 60"}}]}`, id, env), farm.StatusTimeout
		case i%10 == 6:
			line, want[id] = fmt.Sprintf(`{"id":%q,%s,"actions":[{"action":"run","args":{"command":"echo $FARM_MARKER > m.txt"}}],"check":"test \"$(cat m.txt)\" = wrong"}`, id, env), farm.StatusFailed
		default:
			line, want[id] = fmt.Sprintf(`{"id":%q,%s,"actions":[{"action":"run","args":{"command":"echo %s > out.txt"}},{"action":"write","args":{"path":"note.txt","content":"hi"}}],"check":"grep -qx %s out.txt && test -f note.txt"}`, id, env, id, id), farm.StatusPassed
		}
		lines = append(lines, line)
	}
	lines = append(lines[:6], append([]string{`{"id":"oops","actions":[{"action":"run"`}, lines[6:]...)...)
	path := filepath.Join(dir, "jobs.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, want
}

func readResults(t *testing.T, out string) map[string]farm.Result {
	t.Helper()
	fin, err := farm.ReadResultsFile(filepath.Join(out, farm.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fin.TornLine != 0 || len(fin.Bad) != 0 {
		t.Fatalf("results.jsonl damaged: torn %d bad %v", fin.TornLine, fin.Bad)
	}
	m := map[string]farm.Result{}
	for _, r := range fin.Results {
		if _, dup := m[r.ID]; dup {
			t.Errorf("job %s has two results", r.ID)
		}
		m[r.ID] = r
	}
	return m
}

func TestFarmCLIRuns50JobsThroughTheRealEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 50 local sandboxes")
	}
	defer verifyNoLeaks(t, goleak.IgnoreCurrent())
	agent := buildAgent(t)
	dir := t.TempDir()
	marker := fmt.Sprint("cli50-", time.Now().UnixNano())
	jobsPath, want := writeFarmJobs(t, dir, marker, 50)
	out := filepath.Join(dir, "out")

	var stdout, stderr bytes.Buffer
	code := runFarm(context.Background(), []string{"--concurrency", "8", "--out", out, "--progress", "lines", jobsPath}, nil, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (some jobs fail by design)\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "jobs.jsonl:7: ") {
		t.Errorf("malformed line 7 not reported with its number:\n%s", stderr.String())
	}
	got := readResults(t, out)
	if len(got) != 50 {
		t.Errorf("%d results, want 50", len(got))
	}
	for id, st := range want {
		r := got[id]
		if r.Status != st {
			t.Errorf("job %s: %s (%s), want %s", id, r.Status, r.Error, st)
		}
		if st == farm.StatusPassed && (r.ReadyAt.IsZero() || r.StartupSeconds <= 0) {
			t.Errorf("job %s: no sandbox timing: %+v", id, r)
		}
	}
	if r := got["j01"]; !strings.Contains(r.Error, "not OpenHands JSON") {
		t.Errorf("bad trajectory error %q should say it is not OpenHands JSON", r.Error)
	}
	if r := got["j00"]; fmt.Sprint(r.ExitCodes) != "[0 0]" {
		t.Errorf("trajectory job exit codes %v, want [0 0]", r.ExitCodes)
	}
	// Event logs are OpenHands JSON with every run action answered.
	data, err := os.ReadFile(filepath.Join(out, "events", "j02.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("event log line %q: %v", l, err)
		}
		if a, ok := m["action"]; ok {
			kinds = append(kinds, "a:"+fmt.Sprint(a))
		} else {
			kinds = append(kinds, "o:"+fmt.Sprint(m["observation"]))
		}
	}
	// The session's whole stream: start-up statuses, then the actions, each
	// answered, then the check.
	logText := strings.Join(kinds, " ")
	if !strings.HasPrefix(logText, "o:runtime_status") || !strings.HasSuffix(logText, " a:run o:run a:write o:write a:run o:run") {
		t.Errorf("event log of j02: %v", kinds)
	}
	report, err := os.ReadFile(filepath.Join(out, farm.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[farm.Status]int{}
	for _, st := range want {
		counts[st]++
	}
	for st, n := range counts {
		if !regexp.MustCompile(fmt.Sprintf(`id="count-%s">%d<`, st, n)).Match(report) {
			t.Errorf("report lacks count-%s = %d", st, n)
		}
	}
	if left := processesMatching(marker, agent); len(left) > 0 {
		t.Errorf("leftover processes after the farm: %v", left)
	}

	// A rerun with --retry-errors=false finds everything finished and
	// starts nothing.
	stdout.Reset()
	stderr.Reset()
	code = runFarm(context.Background(), []string{"--out", out, "--progress", "lines", "--retry-errors=false", jobsPath}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "0 jobs to run (50 already finished)") {
		t.Errorf("rerun: exit %d, stderr:\n%s", code, stderr.String())
	}
	if len(readResults(t, out)) != 50 {
		t.Error("rerun changed results.jsonl")
	}
	// A plain rerun runs the error jobs again (and only them).
	nErr := counts[farm.StatusError]
	stdout.Reset()
	stderr.Reset()
	code = runFarm(context.Background(), []string{"--out", out, "--progress", "lines", jobsPath}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), fmt.Sprintf("%d jobs to run (%d already finished)", nErr, 50-nErr)) {
		t.Errorf("rerun retrying errors: exit %d, stderr:\n%s", code, stderr.String())
	}
	fin, err := farm.ReadResultsFile(filepath.Join(out, farm.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(fin.Results) != 50+nErr {
		t.Errorf("after retrying %d errors results.jsonl has %d lines, want %d", nErr, len(fin.Results), 50+nErr)
	}
}

func TestFarmCLIFailsAtOnceOnUnwritableOutput(t *testing.T) {
	dir := t.TempDir()
	jobs := filepath.Join(dir, "jobs.jsonl")
	os.WriteFile(jobs, []byte(`{"id":"a","check":"true"}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	var stdout, stderr bytes.Buffer
	code := runFarm(context.Background(), []string{"--out", filepath.Join(dir, "file", "out"), jobs}, nil, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "output folder") {
		t.Errorf("exit %d, stderr %q; want 2 and a clear output-folder message", code, stderr.String())
	}
}

// TestFarmCLIHelperProcess is not a test: TestFarmCLIResumesAfterCtrlC runs
// the test binary with FARM_CLI_HELPER set to run `corral farm` in a process
// it can signal.
func TestFarmCLIHelperProcess(t *testing.T) {
	args := os.Getenv("FARM_CLI_HELPER")
	if args == "" {
		return
	}
	os.Exit(runFarm(context.Background(), strings.Split(args, "\x1f"), nil, os.Stdout, os.Stderr))
}

func TestFarmCLIResumesAfterCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts local sandboxes")
	}
	agent := buildAgent(t)
	dir := t.TempDir()
	marker := fmt.Sprint("ctrlc-", time.Now().UnixNano())
	count := filepath.Join(dir, "count")
	os.Mkdir(count, 0o755)
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf(`{"id":"c%02d","runtime":{"env":{"FARM_MARKER":%q}},"actions":[{"action":"run","args":{"command":"echo run >> %s/c%02d; sleep 0.3"}}],"check":"true"}`, i, marker, count, i))
	}
	jobs := filepath.Join(dir, "jobs.jsonl")
	os.WriteFile(jobs, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	out := filepath.Join(dir, "out")

	cmd := exec.Command(os.Args[0], "-test.run=^TestFarmCLIHelperProcess$")
	cmd.Env = append(os.Environ(), "FARM_CLI_HELPER="+strings.Join([]string{"--concurrency", "4", "--out", out, "--progress", "lines", jobs}, "\x1f"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		fin, err := farm.ReadResultsFile(filepath.Join(out, farm.ResultsFile))
		if err == nil && len(fin.Results) >= 8 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("farm made no progress:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("interrupted farm: %v, want exit 1\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted: no new jobs") {
		t.Errorf("no interrupt message:\n%s", stderr.String())
	}
	before := readResults(t, out)
	if len(before) == 40 {
		t.Fatal("farm finished before the interrupt; the test proves nothing")
	}
	if left := processesMatching(marker, agent); len(left) > 0 {
		t.Errorf("leftover processes after Ctrl-C: %v", left)
	}

	var so, se bytes.Buffer
	if code := runFarm(context.Background(), []string{"--concurrency", "4", "--out", out, "--progress", "lines", jobs}, nil, &so, &se); code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, so.String(), se.String())
	}
	after := readResults(t, out)
	if len(after) != 40 {
		t.Errorf("%d results after resume, want 40", len(after))
	}
	for i := range 40 {
		data, _ := os.ReadFile(filepath.Join(count, fmt.Sprintf("c%02d", i)))
		if n := bytes.Count(data, []byte("run\n")); n != 1 {
			t.Errorf("job c%02d ran %d times, want once", i, n)
		}
	}
	if left := processesMatching(marker, agent); len(left) > 0 {
		t.Errorf("leftover processes after resume: %v", left)
	}
}

func TestIsTerminalTellsAPTYFromAPipe(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if !isTerminal(tty) || isTerminal(w) || isTerminal(&bytes.Buffer{}) {
		t.Errorf("isTerminal: pty %v, pipe %v, buffer %v", isTerminal(tty), isTerminal(w), isTerminal(&bytes.Buffer{}))
	}
}

func TestFarmCLIRejectsAConfigFileWithUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	jobs := filepath.Join(dir, "jobs.jsonl")
	os.WriteFile(jobs, []byte(`{"id":"a","check":"true"}`+"\n"), 0o644)
	conf := filepath.Join(dir, "corral.toml")
	os.WriteFile(conf, []byte("[engine]\nmax_sesions = 3\n"), 0o644)
	var stdout, stderr bytes.Buffer
	code := runFarm(context.Background(), []string{"--config", conf, "--out", filepath.Join(dir, "out"), jobs}, nil, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "engine.max_sesions") {
		t.Errorf("exit %d, stderr %q; want 2 naming the unknown key", code, stderr.String())
	}
}

func TestFarmCLIReportsAMissingDockerImageWithTheBackendsMessage(t *testing.T) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		if os.Getenv("CORRAL_REQUIRE_DOCKER") == "1" {
			t.Fatalf("no Docker Engine reachable: %v", err)
		}
		t.Skipf("no Docker Engine reachable (%v); set CORRAL_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	buildAgent(t)
	dir := t.TempDir()
	jobs := filepath.Join(dir, "jobs.jsonl")
	os.WriteFile(jobs, []byte(`{"id":"noimg","runtime":{"backend":"docker","image":"corral-no-such-image:never"},"check":"true"}`+"\n"), 0o644)
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if code := runFarm(context.Background(), []string{"--retries", "0", "--out", out, "--progress", "none", jobs}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout.String(), stderr.String())
	}
	r := readResults(t, out)["noimg"]
	if r.Status != farm.StatusError || !strings.Contains(r.Error, "corral-no-such-image:never") || !strings.Contains(r.Error, "No such image") {
		t.Errorf("result %+v; want error carrying the backend's message", r)
	}
}

// A rerun through the CLI and the real engine: a job whose last result is
// error runs again by default, a failed one is kept until --rerun names it,
// --retry-errors=false keeps the error, and a bad --rerun is a usage error.
func TestFarmCLIRerunRetriesErrorsByDefault(t *testing.T) {
	cliEnv(t)
	dir := t.TempDir()
	jobs := filepath.Join(dir, "jobs.jsonl")
	os.WriteFile(jobs, []byte(`{"id":"was-error","actions":[{"action":"run","args":{"command":"true"}}],"check":"true"}
{"id":"was-failed","actions":[{"action":"run","args":{"command":"true"}}],"check":"true"}
`), 0o644)
	earlier := `{"id":"was-error","status":"error","attempts":3,"queued_at":"2026-01-01T00:00:00Z","start_at":"2026-01-01T00:00:00Z","end_at":"2026-01-01T00:00:01Z","error":"sandbox did not start"}
{"id":"was-failed","status":"failed","attempts":1,"queued_at":"2026-01-01T00:00:00Z","start_at":"2026-01-01T00:00:00Z","end_at":"2026-01-01T00:00:01Z","check_exit_code":1}
`
	cases := []struct {
		name  string
		flags []string
		code  int
		want  map[string]string // last status per job afterwards
		err   string
	}{
		{"default", nil, 1, map[string]string{"was-error": "passed", "was-failed": "failed"}, ""},
		{"retry-errors=false", []string{"--retry-errors=false"}, 1, map[string]string{"was-error": "error", "was-failed": "failed"}, ""},
		{"rerun all", []string{"--rerun", "all"}, 0, map[string]string{"was-error": "passed", "was-failed": "passed"}, ""},
		{"rerun failed without errors", []string{"--rerun", "failed", "--retry-errors=false"}, 1, map[string]string{"was-error": "error", "was-failed": "passed"}, ""},
		{"bad rerun", []string{"--rerun", "flaky"}, 2, nil, `"flaky" is not a job status`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, fmt.Sprint("out-", i))
			os.MkdirAll(out, 0o755)
			os.WriteFile(filepath.Join(out, farm.ResultsFile), []byte(earlier), 0o644)
			args := append([]string{"--out", out, "--progress", "none", jobs}, tc.flags...)
			var stdout, stderr bytes.Buffer
			code := runFarm(context.Background(), args, nil, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.err) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)\nstdout:\n%s", code, tc.code, stderr.String(), tc.err, stdout.String())
			}
			if tc.want == nil {
				return
			}
			fin, err := farm.ReadResultsFile(filepath.Join(out, farm.ResultsFile))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, r := range fin.Results {
				got[r.ID] = string(r.Status)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("last statuses %v, want %v\nstdout:\n%s", got, tc.want, stdout.String())
			}
		})
	}
}
