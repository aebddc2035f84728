package eventbus

import (
	"context"
	"fmt"
	"testing"
)

func TestSearchAppliesOpenHandsFilterSemantics(t *testing.T) {
	checkLeaks(t)
	s := openTestStream(t, nil)
	// ids: 0 user message, 1 run action, 2 run obs, 3 hidden run action,
	// 4 hidden run obs, 5 read action, 6 read obs, 7 env error obs.
	add := func(e *Event, ts string) {
		e.Timestamp = ts
		mustAppend(t, s, e)
	}
	add(NewAction(SourceUser, &MessageAction{Content: "Please LIST the files"}), "2025-01-01T10:00:00.000000")
	add(runAction("ls"), "2025-01-01T10:00:01.000000")
	add(runObs(1, 0), "2025-01-01T10:00:02.000000")
	hidden := runAction("cat /etc/hostname")
	hidden.Action.(*CmdRunAction).Hidden = true
	add(hidden, "2025-01-01T10:00:03.000000")
	ho := runObs(3, 1)
	ho.Observation.(*CmdOutputObservation).Hidden = true
	add(ho, "2025-01-01T10:00:04.000000")
	add(NewAction(SourceAgent, &FileReadAction{Path: "/workspace/a.txt", End: -1, SecurityRisk: RiskUnknown, ImplSource: "default"}), "2025-01-02T09:00:00.000000")
	ro := NewObservation(5, "hello", &FileReadObservation{Path: "/workspace/a.txt", ImplSource: "default"})
	ro.Source = SourceEnvironment
	add(ro, "2025-01-02T09:00:01.000000")
	eo := NewError(5, "", "boom")
	eo.Source = SourceEnvironment
	add(eo, "2025-01-03T00:00:00.000000")

	i64 := func(v int64) *int64 { return &v }
	cases := []struct {
		name string
		f    Filter
		want []int64
	}{
		{"zero filter matches all", Filter{}, []int64{0, 1, 2, 3, 4, 5, 6, 7}},
		{"exclude_hidden drops hidden run action and observation", Filter{ExcludeHidden: true}, []int64{0, 1, 2, 5, 6, 7}},
		{"query is a case-insensitive substring of the JSON", Filter{Query: "list THE"}, []int64{0}},
		{"query matches keys and values", Filter{Query: `"path":"/workspace/a.txt"`}, []int64{5, 6}},
		{"include_types by type name matches both kinds", Filter{IncludeTypes: []string{"run"}}, []int64{1, 2, 3, 4}},
		{"include_types qualified by kind", Filter{IncludeTypes: []string{"observation:run"}}, []int64{2, 4}},
		{"include_types whole kind", Filter{IncludeTypes: []string{"action"}}, []int64{0, 1, 3, 5}},
		{"exclude_types", Filter{ExcludeTypes: []string{"run", "error"}}, []int64{0, 5, 6}},
		{"source", Filter{Source: SourceEnvironment}, []int64{6, 7}},
		{"start_date inclusive string comparison", Filter{StartDate: "2025-01-02"}, []int64{5, 6, 7}},
		{"end_date inclusive string comparison", Filter{EndDate: "2025-01-01T10:00:02.000000"}, []int64{0, 1, 2}},
		{"id range inclusive", Filter{StartID: 2, EndID: i64(4)}, []int64{2, 3, 4}},
		{"limit", Filter{Limit: 3}, []int64{0, 1, 2}},
		{"reverse with limit", Filter{Reverse: true, Limit: 2}, []int64{7, 6}},
		{"reverse within range and filter", Filter{Reverse: true, StartID: 1, EndID: i64(6), IncludeTypes: []string{"run"}, ExcludeHidden: true}, []int64{2, 1}},
		{"combined predicates are ANDed", Filter{Source: SourceAgent, IncludeTypes: []string{"run"}, Query: "exit code 0"}, []int64{2, 4}},
		{"empty range", Filter{StartID: 9}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, err := s.Search(context.Background(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, it := range items {
				got = append(got, it.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("ids %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := s.Search(context.Background(), Filter{Limit: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
	if _, err := s.Get(context.Background(), 42); err == nil {
		t.Fatal("Get of a missing id succeeded")
	}
}
