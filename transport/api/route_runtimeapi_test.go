package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRuntimeAPICallsReachTheOwner mounts a stand-in Runtime API (it
// answers which member served the call, with what path and body) behind
// RouteRuntimeAPI on two members and sends every kind of call to member a.
func TestRuntimeAPICallsReachTheOwner(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	c.sessionOn(t, "b", "sb")
	urls := map[string]string{}
	for id, f := range c.members {
		rh := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			writeJSON(w, http.StatusOK, map[string]string{"served_by": id, "path": r.URL.Path, "body": string(body), "host": r.Host})
		})
		mux := http.NewServeMux()
		mux.Handle("/runtime-api/", f.srv.RouteRuntimeAPI("/runtime-api", http.StripPrefix("/runtime-api", rh)))
		mux.Handle("/", f.srv)
		ts := httptest.NewServer(mux)
		t.Cleanup(ts.Close)
		urls[id] = ts.URL
	}
	c.dir.mu.Lock()
	for i := range c.dir.members {
		c.dir.members[i].API = urls[c.dir.members[i].ID]
	}
	c.dir.placeOn = "b"
	c.dir.mu.Unlock()

	tests := []struct {
		name, method, path, body, servedBy string
	}{
		{"GET /sessions/{sid} of b's session", "GET", "/sessions/sb", "", "b"},
		{"GET /runtime/{rid} of b's session", "GET", "/runtime/sb", "", "b"},
		{"the sandbox proxy of b's session", "POST", "/sandbox/sb/execute_action", `{"action":{}}`, "b"},
		{"/stop names b's session in its body", "POST", "/stop", `{"runtime_id":"sb"}`, "b"},
		{"/start of an existing session goes to its owner", "POST", "/start", `{"session_id":"sb","image":"local"}`, "b"},
		{"/start of a new session goes where Place puts it", "POST", "/start", `{"session_id":"fresh","image":"local"}`, "b"},
		{"calls about no session are served here", "GET", "/registry_prefix", "", "a"},
		{"an unknown runtime is answered here", "GET", "/runtime/nobody", "", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, urls["a"]+"/runtime-api"+tt.path, strings.NewReader(tt.body))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var got map[string]string
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 {
				t.Fatalf("= %d %v (%v)", res.StatusCode, got, err)
			}
			wantHost := strings.TrimPrefix(urls["a"], "http://")
			if got["served_by"] != tt.servedBy || got["path"] != tt.path || got["body"] != tt.body || got["host"] != wantHost {
				t.Fatalf("served %v, want by %s with path %s, body %q and the client's Host %s", got, tt.servedBy, tt.path, tt.body, wantHost)
			}
		})
	}
}
