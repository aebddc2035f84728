package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRequestBodies sends arbitrary bodies to the JSON endpoints: the server
// must never panic and must answer with an expected status and, for
// errors, a JSON error body. Actions go to a stopped session, so nothing
// the fuzzer writes is ever executed.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{
		`{"runtime":"local"}`, `{"id":"x","env":{"A":"1"}}`, `{"resources":{"pids_limit":-1}}`, `{`, `[]`, `null`, `""`,
		`{"action":"run","args":{"command":"ls"}}`, `{"observation":"run","content":"","extras":{}}`,
		`{"action":"run","args":{"command":"ls"}} trailing`, `{"id":1,"action":"think","args":{}}`,
		`{"action":"edit","args":{"path":"/a","insert_line":"3"}}`, "\xff\xfe", `{"env":{"1":"x"}}`,
	} {
		f.Add(s)
	}
	eng := newTestEngine(f)
	srv, err := New(eng, Config{Listen: "127.0.0.1:0", MaxBodyBytes: 4096, MaxUploadBytes: 4096, WSBuffer: 1,
		WSPingInterval: DefaultWSPingInterval, WSWriteTimeout: DefaultWSWriteTimeout, MaxPageSize: 10})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	sess, err := eng.CreateSession(f.Context(), SessionRequest{ID: "stopped"})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := eng.DeleteSession(f.Context(), sess.ID); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, route := range []struct {
			path string
			ok   int
		}{
			{"/api/sessions", http.StatusCreated},
			{"/api/sessions/stopped/actions", http.StatusAccepted},
		} {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest("POST", route.path, bytes.NewReader([]byte(body))))
			switch rec.Code {
			case route.ok:
				// Accepted bodies are valid JSON objects.
			case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge:
				var e errorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
					t.Fatalf("POST %s %q: status %d with a body that is not a JSON error: %s", route.path, body, rec.Code, rec.Body)
				}
			default:
				t.Fatalf("POST %s %q: unexpected status %d: %s", route.path, body, rec.Code, rec.Body)
			}
		}
	})
}
