package farm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"corral/eventbus"
)

func TestParseJobsReportsEachBadLineWithItsNumber(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		wantErr string // "" = valid
	}{
		{"inline actions are decoded as OpenHands actions", `{"id":"a","actions":[{"action":"run","args":{"command":"ls"}}]}`, ""},
		{"trajectory path with runtime and timeout", `{"id":"b","trajectory":"t.json","runtime":{"backend":"docker","image":"img:1","memory_mb":512,"cpus":1.5,"env":{"A":"1"}},"timeout":60,"check":"true"}`, ""},
		{"check alone is a job", `{"id":"c","check":"true"}`, ""},
		{"truncated JSON", `{"id":"d","actions":[`, "not a job object"},
		{"unknown key is named", `{"id":"e","chek":"true"}`, `unknown field "chek"`},
		{"missing id", `{"check":"true"}`, `missing "id"`},
		{"id unusable as a file name", `{"id":"../x","check":"true"}`, "not usable as a file name"},
		{"both trajectory and actions", `{"id":"f","trajectory":"t.json","actions":[]}`, "has both"},
		{"nothing to do", `{"id":"g"}`, "nothing to do"},
		{"observation given as action", `{"id":"h","actions":[{"observation":"run","content":"","extras":{}}]}`, "not an action"},
		{"unknown action type", `{"id":"i","actions":[{"action":"fly","args":{}}]}`, "actions[0]"},
		{"negative timeout", `{"id":"j","timeout":-1,"check":"true"}`, "negative"},
		{"two objects on a line", `{"id":"k","check":"true"} {"id":"l"}`, "more than one JSON value"},
		{"not an object", `[1,2]`, "not a job object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "# comment\n\n" + tt.line + "\n"
			jobs, bad, err := ParseJobs(strings.NewReader(text), "jobs.jsonl", "/base")
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantErr == "" {
				if len(bad) != 0 || len(jobs) != 1 || jobs[0].Line != 3 {
					t.Fatalf("jobs %+v bad %v; want one job on line 3", jobs, bad)
				}
				return
			}
			if len(bad) != 1 || len(jobs) != 0 {
				t.Fatalf("jobs %+v bad %v; want one bad line", jobs, bad)
			}
			if bad[0].Line != 3 || !strings.HasPrefix(bad[0].Error(), "jobs.jsonl:3: ") || !strings.Contains(bad[0].Error(), tt.wantErr) {
				t.Errorf("error %q; want it at jobs.jsonl:3 containing %q", bad[0], tt.wantErr)
			}
		})
	}
}

func TestParseJobsResolvesTrajectoryAndRejectsDuplicateIDs(t *testing.T) {
	jobs, bad, err := ParseJobs(strings.NewReader(`{"id":"a","trajectory":"sub/t.json"}
{"id":"a","check":"true"}
{"id":"b","trajectory":"/abs/t.json"}
`), "j", "/base")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].Trajectory != "/base/sub/t.json" || jobs[1].Trajectory != "/abs/t.json" {
		t.Errorf("jobs %+v", jobs)
	}
	if len(bad) != 1 || bad[0].Line != 2 || !strings.Contains(bad[0].Error(), "first used on line 1") {
		t.Errorf("bad %v; want the duplicate on line 2 pointing at line 1", bad)
	}
}

func TestLoadTrajectoryKeepsRunnableActionsInOrder(t *testing.T) {
	acts, err := LoadTrajectory("testdata/fix-bug.trajectory.json")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, a := range acts {
		cmds = append(cmds, a.Action.(*eventbus.CmdRunAction).Command)
		if a.ID != eventbus.InvalidID || a.Timeout == nil || *a.Timeout != 120 {
			t.Errorf("action %+v: want id reset and timeout kept", a)
		}
	}
	if strings.Join(cmds, "|") != "echo hello > hello.txt|cat hello.txt" {
		t.Errorf("replayed %q", cmds)
	}
	// OpenHands' own sample trajectories decode too.
	for _, f := range []string{"basic.json", "basic_gui_mode.json", "basic_interactions.json"} {
		if _, err := LoadTrajectory(filepath.Join("..", "..", "..", "eventbus", "testdata", "openhands-trajs", f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseTrajectoryRejectsNonOpenHandsInput(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"object instead of array", `{"not":"a trajectory"}`, "want a JSON array of events"},
		{"empty file", ``, "file is empty"},
		{"array of non-events", `[{"foo":1}]`, "event #0 is not an OpenHands event"},
		{"broken JSON", `[{"action":"run",`, "is not OpenHands JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTrajectory([]byte(tt.data), "x.json")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "x.json") {
				t.Errorf("err %v; want it to name x.json and say %q", err, tt.want)
			}
		})
	}
	if _, err := LoadTrajectory(filepath.Join(t.TempDir(), "missing.json")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzParseJobs(f *testing.F) {
	f.Add(`{"id":"a","actions":[{"action":"run","args":{"command":"ls"}}],"check":"true"}`)
	f.Add(`{"id":"b","trajectory":"t.json","runtime":{"backend":"local","env":{"X":"1"}},"timeout":3}`)
	f.Add("{\"id\":\"c\"\n# x\n\n[1]")
	f.Fuzz(func(t *testing.T, text string) {
		jobs, bad, _ := ParseJobs(strings.NewReader(text), "f", "/b")
		for _, j := range jobs {
			if !validID.MatchString(j.ID) || j.Line < 1 {
				t.Fatalf("accepted job %+v", j)
			}
		}
		for _, b := range bad {
			if b.Line < 1 || b.Err == nil {
				t.Fatalf("bad line without number or error: %+v", b)
			}
		}
	})
}

func FuzzParseTrajectory(f *testing.F) {
	data, _ := os.ReadFile("testdata/fix-bug.trajectory.json")
	f.Add(string(data))
	f.Add(`[]`)
	f.Add(`[{"action":"run","args":{"command":"x"}},{"observation":"run","content":"","extras":{}}]`)
	f.Fuzz(func(t *testing.T, text string) {
		acts, err := ParseTrajectory([]byte(text), "f")
		if err != nil {
			return
		}
		for _, a := range acts {
			if a.Action == nil || !a.Action.Runnable() {
				t.Fatalf("non-runnable action returned: %+v", a)
			}
		}
	})
}
