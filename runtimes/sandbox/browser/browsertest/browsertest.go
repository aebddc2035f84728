package browsertest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// tagVar is inherited by Chromium and every process it starts.
const tagVar = "CORRAL_BROWSER_TEST_TAG"

// RequireChromium skips the test when no Chromium is installed, or fails
// it under CORRAL_REQUIRE_DOCKER=1. It looks where browser.FindChromium
// does ($CORRAL_CHROMIUM, then PATH).
func RequireChromium(t testing.TB) {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome"}
	if v := os.Getenv("CORRAL_CHROMIUM"); v != "" {
		names = []string{v}
	}
	for _, n := range names {
		if _, err := exec.LookPath(n); err == nil {
			return
		}
	}
	if os.Getenv("CORRAL_REQUIRE_DOCKER") == "1" {
		t.Fatalf("CORRAL_REQUIRE_DOCKER=1 but no Chromium (looked for %v)", names)
	}
	t.Skipf("no Chromium on this host (looked for %v; install Debian's chromium)", names)
}

// Tag sets a unique environment tag that every process started after it
// by this test inherits, and returns it for CountTagged. It uses
// t.Setenv, so the test must not be parallel.
func Tag(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	tag := hex.EncodeToString(b)
	t.Setenv(tagVar, tag)
	return tag
}

// CountTagged counts live processes that carry tag (see Tag).
func CountTagged(tag string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	needle := []byte(tagVar + "=" + tag + "\x00")
	n := 0
	for _, e := range ents {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, needle) {
			n++
		}
	}
	return n
}

// WaitNoneTagged fails the test unless every tagged process is gone
// within a generous deadline (a loaded machine reaps slowly).
func WaitNoneTagged(t testing.TB, tag string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for CountTagged(tag) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d tagged (chromium) process(es) outlived Close", CountTagged(tag))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Site is a fixture web site: "/" (a heading "Welcome home" and a link
// #next to "/page2"), "/page2" ("Page two"), "/slow" (never finishes),
// "/download" (an attachment report.csv).
type Site struct {
	*httptest.Server
	// SlowHit gets a value each time /slow is requested.
	SlowHit chan struct{}
}

// NewSite serves the fixture site until the test ends.
func NewSite(t testing.TB) *Site {
	t.Helper()
	s := &Site{SlowHit: make(chan struct{}, 16)}
	stop := make(chan struct{})
	html := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, body)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", html(`<html><head><title>Home</title></head><body><h1>Welcome home</h1><a id="next" href="/page2">Go to page two</a> <a id="dl" href="/download">Get the report</a></body></html>`))
	mux.HandleFunc("/page2", html(`<html><head><title>Two</title></head><body><h1>Page two</h1></body></html>`))
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body><h1>Slow start</h1>")
		w.(http.Flusher).Flush()
		select {
		case s.SlowHit <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Disposition", `attachment; filename="report.csv"`)
		io.WriteString(w, "a,b\n1,2\n")
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(stop)
		s.Server.Close()
	})
	return s
}
