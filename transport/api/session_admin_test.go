package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestDeleteWithPurgeRemovesTheSessionAndItsEvents: DELETE without purge
// stops a session and keeps it listed; with purge=true it is gone from
// the list, its events are gone (404) and it cannot be started again.
func TestDeleteWithPurgeRemovesTheSessionAndItsEvents(t *testing.T) {
	f := newRealFixture(t, nil)
	id := f.readySession()
	f.mustJSON("POST", "/api/sessions/"+id+"/actions?wait=true", map[string]any{"action": "run", "args": map[string]any{"command": "echo x"}}, 200, nil)

	var s Session
	f.mustJSON("DELETE", "/api/sessions/"+id, nil, 200, &s)
	if s.Status != "STOPPED" {
		t.Fatalf("DELETE without purge: status %q, want STOPPED", s.Status)
	}
	var list struct{ Sessions []Session }
	f.mustJSON("GET", "/api/sessions", nil, 200, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].ID != id || list.Sessions[0].Node == "" {
		t.Fatalf("a stopped session stays listed with its node: %+v", list.Sessions)
	}

	f.mustJSON("DELETE", "/api/sessions/"+id+"?purge=true", nil, 200, &s)
	if s.ID != id {
		t.Fatalf("purge answered %+v", s)
	}
	f.mustJSON("GET", "/api/sessions", nil, 200, &list)
	if len(list.Sessions) != 0 {
		t.Fatalf("purged session still listed: %+v", list.Sessions)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/sessions/" + id},
		{"GET", "/api/sessions/" + id + "/events"},
		{"POST", "/api/sessions/" + id + "/start"},
		{"DELETE", "/api/sessions/" + id + "?purge=true"},
	} {
		if code, body, _ := f.do(c.method, c.path, nil); code != http.StatusNotFound {
			t.Errorf("%s %s after purge: %d %s, want 404", c.method, c.path, code, body)
		}
	}
}

// TestDeletePurgeParameterIsCheckedAndNeedsAnEngineThatCanPurge: a purge
// value that is not a boolean is a 400 naming it; an engine without purge
// support answers 501 and leaves the session alone.
func TestDeletePurgeParameterIsCheckedAndNeedsAnEngineThatCanPurge(t *testing.T) {
	f := newFixture(t, nil)
	var s Session
	f.mustJSON("POST", "/api/sessions", map[string]any{}, 201, &s)
	for _, c := range []struct {
		name, query string
		code        int
		want        string
	}{
		{"not a boolean", "?purge=yes-please", http.StatusBadRequest, `purge=\"yes-please\" is not a boolean`},
		{"engine without purge", "?purge=true", http.StatusNotImplemented, "cannot remove stored sessions"},
		{"purge=false only stops", "?purge=false", http.StatusOK, `"status":"STOPPED"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body, _ := f.do("DELETE", "/api/sessions/"+s.ID+c.query, nil)
			if code != c.code || !strings.Contains(string(body), c.want) {
				t.Fatalf("DELETE%s: %d %s, want %d with %q", c.query, code, body, c.code, c.want)
			}
		})
	}
}
