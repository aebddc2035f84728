package farm

import (
	"strings"
	"testing"
)

// TestForkFromIsParsedAndPlanned: fork_from is read from the jobs file, a
// job naming itself is a bad line, and set-up jobs run first (added again
// when an earlier run finished them); unknown and nested parents are
// refused with the reason.
func TestForkFromIsParsedAndPlanned(t *testing.T) {
	src := `{"id":"a","fork_from":"s","check":"true"}
{"id":"s","check":"true"}
{"id":"self","fork_from":"self","check":"true"}
{"id":"n","fork_from":"a","check":"true"}
{"id":"o","fork_from":"nosuch","check":"true"}
`
	jobs, bad, err := ParseJobs(strings.NewReader(src), "jobs.jsonl", ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0].Line != 3 || !strings.Contains(bad[0].Error(), "fork_from names the job itself") {
		t.Fatalf("bad lines %v, want line 3 refused for naming itself", bad)
	}
	if jobs[0].ForkFrom != "s" {
		t.Fatalf("job a fork_from = %q, want s", jobs[0].ForkFrom)
	}
	// s finished in an earlier run: only a, n and o are to do.
	todo, p := planForks(jobs, []Job{jobs[0], jobs[2], jobs[3]})
	var order []string
	for _, j := range todo {
		order = append(order, j.ID)
	}
	if got := strings.Join(order, ","); got != "s,a,n,o" {
		t.Fatalf("planned order %s, want the set-up job s first, then a,n,o", got)
	}
	if p.done["s"] == nil || p.done["a"] != nil {
		t.Fatalf("set-up jobs %v, want only s", p.done)
	}
	if !strings.Contains(p.refuse["a"], "itself forked") || !strings.Contains(p.refuse["nosuch"], "names no job") {
		t.Fatalf("refusals %v, want a (nested) and nosuch (unknown)", p.refuse)
	}
}
