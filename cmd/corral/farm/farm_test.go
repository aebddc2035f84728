package farm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Helper mode: the test binary re-executes itself as a farm process that a
// test can SIGKILL midway (see TestFarmResumesAfterKill).
const helperEnv = "FARM_TEST_HELPER_OUT"

func TestMain(m *testing.M) {
	if out := os.Getenv(helperEnv); out != "" {
		os.Exit(helperMain(out))
	}
	goleak.VerifyTestMain(m)
}

func helperMain(out string) int {
	data, err := os.ReadFile(os.Getenv("FARM_TEST_HELPER_JOBS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	jobs, bad, err := ParseJobs(bytes.NewReader(data), "jobs.jsonl", "testdata")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	eng := newBashEngine(os.Getenv("FARM_TEST_HELPER_ROOT"), os.Getenv("FARM_TEST_HELPER_MARKER"))
	if _, err := New(eng, out, WithConcurrency(4)).Run(context.Background(), jobs, bad); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// jobSpec is what a generated job is expected to do.
type jobSpec struct {
	line    string
	status  Status
	actions int // runnable actions expected in its event log (check included)
	errHas  string
}

// mixedJobs builds n jobs: mostly passing, some failing checks, some
// timing out, one flaky start (retried), one missing image, one bad and one
// real trajectory. countDir receives one line per run of a job's first action.
func mixedJobs(n int, countDir string) []jobSpec {
	env := fmt.Sprintf(`"runtime":{"env":{"COUNTDIR":%q}}`, countDir)
	var js []jobSpec
	for i := range n {
		id := fmt.Sprintf("job-%02d", i)
		switch {
		case i == 0:
			js = append(js, jobSpec{line: fmt.Sprintf(`{"id":"flaky",%s,"actions":[{"action":"run","args":{"command":"echo run >> $COUNTDIR/$JOB"}}],"check":"true"}`, env), status: StatusPassed, actions: 2})
		case i == 1:
			js = append(js, jobSpec{line: `{"id":"noimage","runtime":{"image":"missing:latest"},"actions":[{"action":"run","args":{"command":"true"}}]}`, status: StatusError, errHas: "No such image: missing:latest"})
		case i == 2:
			js = append(js, jobSpec{line: `{"id":"badtraj","trajectory":"not-openhands.json"}`, status: StatusError, errHas: "is not OpenHands JSON"})
		case i == 3:
			js = append(js, jobSpec{line: `{"id":"traj","trajectory":"fix-bug.trajectory.json","check":"grep -qx hello hello.txt"}`, status: StatusPassed, actions: 3})
		case i%10 == 4:
			js = append(js, jobSpec{line: fmt.Sprintf(`{"id":%q,%s,"timeout":1.5,"actions":[{"action":"run","args":{"command":"echo run >> $COUNTDIR/$JOB; sleep 30"}}],"check":"true"}`, id, env), status: StatusTimeout, actions: 1, errHas: "timed out"})
		case i%10 == 7:
			js = append(js, jobSpec{line: fmt.Sprintf(`{"id":%q,%s,"actions":[{"action":"run","args":{"command":"echo run >> $COUNTDIR/$JOB"}}],"check":"echo wrong answer; exit 3"}`, id, env), status: StatusFailed, actions: 2})
		default:
			js = append(js, jobSpec{line: fmt.Sprintf(`{"id":%q,%s,"actions":[{"action":"run","args":{"command":"echo run >> $COUNTDIR/$JOB; echo $JOB > out.txt; sleep 0.1"}},{"action":"write","args":{"path":"note.txt","content":"hi"}}],"check":"grep -qx $JOB out.txt && test -f note.txt"}`, id, env), status: StatusPassed, actions: 3})
		}
	}
	return js
}

func idOf(t *testing.T, line string) string {
	var v struct{ ID string }
	if err := json.Unmarshal([]byte(line), &v); err != nil {
		t.Fatalf("bad generated line %s: %v", line, err)
	}
	return v.ID
}

func TestFarmRuns50MixedJobs(t *testing.T) {
	tmp := t.TempDir()
	countDir := filepath.Join(tmp, "count")
	os.Mkdir(countDir, 0o755)
	specs := mixedJobs(50, countDir)
	var lines []string
	for _, s := range specs {
		lines = append(lines, s.line)
	}
	// Two malformed lines in the middle: lines 11 and 21 of the file.
	lines = append(lines[:10], append([]string{`{"id": "broken", "actions": [`}, lines[10:]...)...)
	lines = append(lines[:20], append([]string{`{"id": "typo", "chek": "true"}`}, lines[20:]...)...)
	jobs, bad, err := ParseJobs(strings.NewReader(strings.Join(lines, "\n")+"\n"), "jobs.jsonl", "testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 50 || len(bad) != 2 || bad[0].Line != 11 || bad[1].Line != 21 {
		t.Fatalf("parsed %d jobs, bad lines %v; want 50 jobs and lines 11, 21 reported", len(jobs), bad)
	}
	if !strings.Contains(bad[1].Error(), "jobs.jsonl:21:") || !strings.Contains(bad[1].Error(), "chek") {
		t.Errorf("bad line error %q should name the file, line and unknown field", bad[1])
	}

	marker := fmt.Sprint("m50-", time.Now().UnixNano())
	eng := newBashEngine(tmp, marker)
	eng.failStarts["flaky"] = 1
	out := filepath.Join(tmp, "out")
	var prog bytes.Buffer
	sum, err := New(eng, out, WithConcurrency(8), WithRetries(2), WithRetryBackoff(time.Millisecond), WithProgress(&prog, false)).Run(context.Background(), jobs, bad)
	if err != nil {
		t.Fatal(err)
	}

	if n := eng.live.Load(); n != 0 {
		t.Errorf("%d sandboxes not closed", n)
	}
	if pids := leftoverProcesses(marker); len(pids) != 0 {
		t.Errorf("leftover processes %v", pids)
	}
	fin, err := ReadResultsFile(filepath.Join(out, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(fin.Results) != 50 || fin.TornLine != 0 || len(fin.Bad) != 0 {
		t.Fatalf("results.jsonl: %d results, torn %d, bad %v; want 50 clean lines", len(fin.Results), fin.TornLine, fin.Bad)
	}
	byID := map[string]Result{}
	for _, r := range fin.Results {
		byID[r.ID] = r
	}
	for _, s := range specs {
		id := idOf(t, s.line)
		r, ok := byID[id]
		if !ok {
			t.Errorf("job %s has no result", id)
			continue
		}
		if r.Status != s.status {
			t.Errorf("job %s: status %s (error %q), want %s", id, r.Status, r.Error, s.status)
		}
		if s.errHas != "" && !strings.Contains(r.Error, s.errHas) {
			t.Errorf("job %s: error %q should contain %q", id, r.Error, s.errHas)
		}
		if r.EndAt.Before(r.StartAt) || r.StartAt.Before(r.QueuedAt) || r.TotalSeconds <= 0 {
			t.Errorf("job %s: inconsistent timings %+v", id, r)
		}
		if s.actions > 0 {
			n, obs := countEvents(t, filepath.Join(out, r.EventsFile))
			if n != s.actions || (s.status != StatusTimeout && obs != n) {
				t.Errorf("job %s: event log has %d actions, %d observations; want %d actions each answered", id, n, obs, s.actions)
			}
		}
		if s.status == StatusFailed && (r.CheckExitCode == nil || *r.CheckExitCode != 3) {
			t.Errorf("job %s: check exit code %v, want 3", id, r.CheckExitCode)
		}
		if s.status == StatusPassed && r.CheckExitCode != nil && *r.CheckExitCode != 0 {
			t.Errorf("job %s: passed with check exit %d", id, *r.CheckExitCode)
		}
	}
	if r := byID["flaky"]; r.Attempt != 2 {
		t.Errorf("flaky job used %d attempts, want 2 (one retry after the injected start failure)", r.Attempt)
	}
	if r := byID["traj"]; fmt.Sprint(r.ExitCodes) != "[0 0]" {
		t.Errorf("trajectory job exit codes %v, want [0 0] (its two run actions)", r.ExitCodes)
	}
	if eng.starts["job-07"] != 1 || eng.starts["job-04"] != 1 {
		t.Errorf("failed or timed-out jobs must not be retried: starts %d, %d", eng.starts["job-07"], eng.starts["job-04"])
	}
	checkRunCounts(t, countDir, specs, nil)
	checkReport(t, out, fin.Results, sum)
	if !strings.Contains(prog.String(), "[50/50]") {
		t.Errorf("plain progress lacks the last line:\n%s", prog.String())
	}
}

// countEvents counts actions and observations in an event log, decoding
// every line as OpenHands JSON.
func countEvents(t *testing.T, path string) (actions, observations int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: not JSON: %v", path, err)
		}
		if _, ok := m["action"]; ok {
			actions++
		} else if _, ok := m["observation"]; ok {
			observations++
		}
	}
	return actions, observations
}

// checkRunCounts asserts every job whose first action records runs ran it
// exactly once; jobs in mayRepeat (interrupted by SIGKILL) at most twice.
func checkRunCounts(t *testing.T, countDir string, specs []jobSpec, mayRepeat map[string]bool) {
	t.Helper()
	for _, s := range specs {
		if !strings.Contains(s.line, "COUNTDIR/$JOB") {
			continue
		}
		id := idOf(t, s.line)
		data, _ := os.ReadFile(filepath.Join(countDir, id))
		n := bytes.Count(data, []byte("run\n"))
		if n != 1 && !(mayRepeat[id] && n == 2) {
			t.Errorf("job %s ran %d times, want exactly once", id, n)
		}
	}
}

// checkReport parses report.html as XML and compares its numbers with
// results.jsonl.
func checkReport(t *testing.T, out string, results []Result, sum *Summary) {
	t.Helper()
	f, err := os.Open(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	dec.Strict = true
	ids := map[string]string{}
	rows := map[string][2]string{}
	var cur string
	var text strings.Builder
	svgs := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("report.html is not well-formed: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range el.Attr {
				attr[a.Name.Local] = a.Value
			}
			if el.Name.Local == "svg" {
				svgs++
			}
			if el.Name.Local == "script" || el.Name.Local == "link" || attr["src"] != "" {
				t.Errorf("report must be self-contained; found <%s %v>", el.Name.Local, attr)
			}
			if el.Name.Local == "tr" && attr["class"] == "job" {
				rows[attr["data-id"]] = [2]string{attr["data-status"], attr["data-total"]}
			}
			if id := attr["id"]; strings.HasPrefix(id, "count-") {
				cur = id
				text.Reset()
			}
		case xml.CharData:
			if cur != "" {
				text.Write(el)
			}
		case xml.EndElement:
			if cur != "" {
				ids[cur] = text.String()
				cur = ""
			}
		}
	}
	if svgs < 3 {
		t.Errorf("report has %d SVG charts, want two histograms and a timeline", svgs)
	}
	want := map[Status]int{}
	for _, r := range results {
		want[r.Status]++
		row, ok := rows[r.ID]
		if !ok {
			t.Errorf("report lacks job %s", r.ID)
			continue
		}
		if row[0] != string(r.Status) {
			t.Errorf("report says job %s %s, results.jsonl says %s", r.ID, row[0], r.Status)
		}
		if d, _ := strconv.ParseFloat(row[1], 64); math.Abs(d-r.TotalSeconds) > 1e-6 {
			t.Errorf("report says job %s took %s s, results.jsonl says %v", r.ID, row[1], r.TotalSeconds)
		}
	}
	if len(rows) != len(results) {
		t.Errorf("report has %d job rows, results.jsonl %d", len(rows), len(results))
	}
	for _, st := range allStatuses {
		if got := ids["count-"+string(st)]; got != strconv.Itoa(want[st]) {
			t.Errorf("report count of %s = %q, results.jsonl has %d", st, got, want[st])
		}
	}
	if got := ids["count-total"]; got != strconv.Itoa(len(results)) {
		t.Errorf("report total %q, want %d", got, len(results))
	}
	if got := ids["count-badlines"]; got != strconv.Itoa(len(sum.BadLines)) {
		t.Errorf("report malformed lines %q, want %d", got, len(sum.BadLines))
	}
}
