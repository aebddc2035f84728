package api

import (
	"fmt"
	"io"
	"net/http"
	"testing"
)

// TestPortProxyClientLeavingMidDownloadKeepsTheServerUp: a client that
// drops a proxied 10 MiB download after its first bytes makes ReverseProxy
// abort the response (panic(http.ErrAbortHandler)) on the engine's
// goroutine; the server must turn that into an aborted response, not die
// (a panic there would end this test binary), and keep proxying.
func TestPortProxyClientLeavingMidDownloadKeepsTheServerUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real local sandbox; skipped in -short mode")
	}
	f := newRealFixture(t, nil)
	id := f.readySession()
	f.runIn(id, "cat > echo_server.py <<'PYEOF'\n"+echoServer+"PYEOF")
	port := f.startInSandbox(id, "http", "python3 -u echo_server.py")
	base := fmt.Sprintf("%s/api/sessions/%s/ports/%d", f.ts.URL, id, port)
	for i := range 3 {
		resp, err := http.Get(base + "/big")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil || resp.StatusCode != 200 {
			t.Fatalf("download %d: %d, %v", i, resp.StatusCode, err)
		}
		resp.Body.Close() // leave mid-body
	}
	code, body, _ := f.do("GET", fmt.Sprintf("/api/sessions/%s/ports/%d/after", id, port), nil)
	if code != 200 || string(body) != "GET /after" {
		t.Fatalf("after the aborted downloads: %d %q", code, body)
	}
}
