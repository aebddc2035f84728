package api

import (
	"strconv"
	"strings"
	"testing"

	"corral/eventbus"
)

// TestForkThroughTheAPI: POST /api/sessions/{id}/fork on the real engine
// and local runtime gives a session that sees the parent's files, holds its
// events (same ids) up to the fork point and names it; bad input is
// refused with the documented status.
func TestForkThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real local sandboxes; skipped in -short mode")
	}
	f := newRealFixture(t, nil)
	parent := f.readySession()
	code, b, _ := f.do("POST", "/api/sessions/"+parent+"/actions?wait=true", map[string]any{"action": "run", "args": map[string]any{"command": "echo from-parent > shared.txt"}})
	if code != 200 {
		t.Fatalf("write in parent: %d %s", code, b)
	}
	before, err := f.eng.History(t.Context(), parent, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := before[len(before)-1].ID

	var fs Session
	f.mustJSON("POST", "/api/sessions/"+parent+"/fork?id=api-fork", nil, 201, &fs)
	if fs.ID != "api-fork" || fs.ForkedFrom == nil || *fs.ForkedFrom != (ForkPoint{Session: parent, EventID: last}) {
		t.Fatalf("fork answer %+v, want api-fork forked from %s@%d", fs, parent, last)
	}
	var got Session
	f.mustJSON("GET", "/api/sessions/api-fork", nil, 200, &got)
	if got.ForkedFrom == nil || *got.ForkedFrom != *fs.ForkedFrom {
		t.Fatalf("GET of the fork: forked_from %+v, want %+v", got.ForkedFrom, fs.ForkedFrom)
	}
	var list struct{ Sessions []Session }
	f.mustJSON("GET", "/api/sessions", nil, 200, &list)
	for _, s := range list.Sessions {
		if want := map[string]*ForkPoint{parent: nil, "api-fork": fs.ForkedFrom}[s.ID]; (s.ForkedFrom == nil) != (want == nil) || want != nil && *s.ForkedFrom != *want {
			t.Fatalf("session list: %s has forked_from %+v, want %+v", s.ID, s.ForkedFrom, want)
		}
	}
	if len(list.Sessions) != 2 {
		t.Fatalf("session list has %d sessions, want the parent and the fork", len(list.Sessions))
	}
	var ps Session // a fresh value: decoding leaves absent fields as they were
	f.mustJSON("GET", "/api/sessions/"+parent, nil, 200, &ps)
	if ps.ForkedFrom != nil {
		t.Fatalf("GET of the parent names a fork point %+v", ps.ForkedFrom)
	}
	if err := f.eng.WaitReady(t.Context(), fs.ID); err != nil {
		t.Fatalf("child WaitReady: %v", err)
	}
	code, b, _ = f.do("POST", "/api/sessions/"+fs.ID+"/actions?wait=true", map[string]any{"action": "run", "args": map[string]any{"command": "cat shared.txt"}})
	if ev, err := eventbus.Unmarshal(b); code != 200 || err != nil || !strings.Contains(ev.Content, "from-parent") {
		t.Fatalf("child reads the parent's file: %d %s", code, b)
	}
	child, err := f.eng.History(t.Context(), fs.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range before {
		if child[i].ID != ev.ID {
			t.Fatalf("child event %d has id %d, want the parent's %d", i, child[i].ID, ev.ID)
		}
	}
	if child[len(before)].ID != last+1 {
		t.Fatalf("the child's own events start at %d, want %d", child[len(before)].ID, last+1)
	}

	cases := []struct {
		name, path string
		status     int
		want       string
	}{
		{"at beyond the stream is 400 naming the last id", "/api/sessions/" + parent + "/fork?at=" + strconv.FormatInt(last+100, 10), 400, "last event id is"},
		{"at that is not an id is 400", "/api/sessions/" + parent + "/fork?at=x", 400, "not an event id"},
		{"unknown session is 404", "/api/sessions/no-such-session/fork", 404, "not_found"},
		{"taken child id is 409", "/api/sessions/" + parent + "/fork?id=api-fork", 409, "conflict"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, b, _ := f.do("POST", tc.path, nil)
			if code != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%s: %d %s, want %d with %q", tc.path, code, b, tc.status, tc.want)
			}
		})
	}
	t.Run("a running action is 409 naming it", func(t *testing.T) {
		var running actionAccepted
		f.mustJSON("POST", "/api/sessions/"+parent+"/actions", map[string]any{"action": "run", "args": map[string]any{"command": "sleep 300"}}, 202, &running)
		code, b, _ := f.do("POST", "/api/sessions/"+parent+"/fork", nil)
		if code != 409 || !strings.Contains(string(b), "action "+strconv.FormatInt(running.ID, 10)) {
			t.Fatalf("fork while action %d runs: %d %s, want 409 naming it", running.ID, code, b)
		}
		f.mustJSON("POST", "/api/sessions/"+parent+"/interrupt", nil, 202, nil)
	})
}
