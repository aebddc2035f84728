package farm

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rerunJobs end in each status on a first run: "p" passes, "f" fails its
// check, "t" times out, "e" ends in an infrastructure error (its starts
// fail; see firstRun). On a later run every one of them would pass except
// f and t, whose jobs are the same.
const rerunJobs = `{"id":"p","actions":[{"action":"run","args":{"command":"true"}}],"check":"true"}
{"id":"f","actions":[{"action":"run","args":{"command":"true"}}],"check":"exit 3"}
{"id":"t","timeout":1,"actions":[{"action":"run","args":{"command":"sleep 60"}}],"check":"true"}
{"id":"e","actions":[{"action":"run","args":{"command":"true"}}],"check":"true"}
`

// firstRun runs rerunJobs once into a fresh output folder, with e's
// sandbox starts failing (an infrastructure error, no retries), and
// returns the folder.
func firstRun(t *testing.T, tmp string, jobs []Job) string {
	t.Helper()
	out := filepath.Join(tmp, "first")
	eng := newBashEngine(tmp, "rerun-first")
	eng.failStarts["e"] = 1
	sum, err := New(eng, out, WithRetries(0)).Run(context.Background(), jobs, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{"p": StatusPassed, "f": StatusFailed, "t": StatusTimeout, "e": StatusError}
	if got := statusesOf(sum.Results); !maps.Equal(got, want) {
		t.Fatalf("first run statuses %v, want %v", got, want)
	}
	return out
}

func statusesOf(rs []Result) map[string]Status {
	out := map[string]Status{}
	for _, r := range rs {
		out[r.ID] = r.Status
	}
	return out
}

// copyOut copies an output folder's results file, so each case reruns
// the same first run.
func copyOut(t *testing.T, from, to string) {
	t.Helper()
	if err := Prepare(to); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(from, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, ResultsFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFarmRerunRetriesErrorsAndKeepsOtherResultsUnlessAsked(t *testing.T) {
	tmp := t.TempDir()
	jobs := parseOrFail(t, rerunJobs)
	first := firstRun(t, tmp, jobs)
	cases := []struct {
		name       string
		opts       []Option // nil: New's default
		started    []string // jobs that run again, sorted
		statuses   map[string]Status
		kept, rrun int
	}{
		{"by default only the error job runs again", nil, []string{"e"},
			map[string]Status{"p": StatusPassed, "f": StatusFailed, "t": StatusTimeout, "e": StatusPassed}, 3, 1},
		{"retry-errors=false keeps every result", []Option{WithRerun()}, nil,
			map[string]Status{"p": StatusPassed, "f": StatusFailed, "t": StatusTimeout, "e": StatusError}, 4, 0},
		{"rerun all runs every job again", []Option{WithRerun(StatusPassed, StatusFailed, StatusTimeout, StatusError)}, []string{"e", "f", "p", "t"},
			map[string]Status{"p": StatusPassed, "f": StatusFailed, "t": StatusTimeout, "e": StatusPassed}, 0, 4},
		{"rerun failed (with errors) runs those two", []Option{WithRerun(StatusError, StatusFailed)}, []string{"e", "f"},
			map[string]Status{"p": StatusPassed, "f": StatusFailed, "t": StatusTimeout, "e": StatusPassed}, 2, 2},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(tmp, "case", string(rune('a'+i)))
			copyOut(t, first, out)
			eng := newBashEngine(tmp, "rerun-case")
			sum, err := New(eng, out, tc.opts...).Run(context.Background(), jobs, nil)
			if err != nil {
				t.Fatal(err)
			}
			started := slices.Sorted(maps.Keys(eng.starts))
			if !slices.Equal(started, tc.started) {
				t.Errorf("jobs started %v, want %v", started, tc.started)
			}
			if got := statusesOf(sum.Results); !maps.Equal(got, tc.statuses) {
				t.Errorf("statuses %v, want %v", got, tc.statuses)
			}
			if sum.Skipped != tc.kept || sum.Rerun != tc.rrun || sum.Ran != len(tc.started) {
				t.Errorf("kept %d rerun %d ran %d, want %d %d %d", sum.Skipped, sum.Rerun, sum.Ran, tc.kept, tc.rrun, len(tc.started))
			}
			// The results file's last line per job is what the summary says.
			fin, err := ReadResultsFile(filepath.Join(out, ResultsFile))
			if err != nil {
				t.Fatal(err)
			}
			if got := statusesOf(fin.Results); !maps.Equal(got, tc.statuses) {
				t.Errorf("results.jsonl says %v, want %v", got, tc.statuses)
			}
		})
	}
}

func TestRerunStatusesFromTheFlags(t *testing.T) {
	all := []Status{StatusPassed, StatusFailed, StatusTimeout, StatusError}
	cases := []struct {
		name        string
		spec        string
		retryErrors bool
		want        []Status
		err         string
	}{
		{"default retries errors", "", true, []Status{StatusError}, ""},
		{"retry-errors=false keeps everything", "", false, nil, ""},
		{"none is the same as empty", "none", true, []Status{StatusError}, ""},
		{"all", "all", true, []Status{StatusError, StatusPassed, StatusFailed, StatusTimeout}, ""},
		{"all wins over retry-errors=false", "all", false, all, ""},
		{"a list with spaces, errors kept out", "failed, timeout", false, []Status{StatusFailed, StatusTimeout}, ""},
		{"a list naming error once", "error,failed", true, []Status{StatusError, StatusFailed}, ""},
		{"an unknown status", "failed,flaky", true, nil, `"flaky" is not a job status`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RerunStatuses(tc.spec, tc.retryErrors)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("= %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
