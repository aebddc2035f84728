package docker

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
)

// browse sends one browse action through the agent and returns its
// observation, failing unless it is a browse observation.
func browse(t *testing.T, c runtimes.AgentConn, act eventbus.Action) (*eventbus.Event, *eventbus.BrowserOutputObservation) {
	t.Helper()
	obs, err := c.Execute(testCtx(t, 3*time.Minute), "", eventbus.NewAction(eventbus.SourceAgent, act), nil)
	if err != nil {
		t.Fatalf("%s: %v", act.ActionType(), err)
	}
	o, ok := obs.Observation.(*eventbus.BrowserOutputObservation)
	if !ok {
		t.Fatalf("%s: observation %s %q, want browse", act.ActionType(), obs.Type(), obs.Content)
	}
	return obs, o
}

// TestFullImageBrowses runs browse and browse_interactive in the Chromium
// of the full image, against a site served inside the same container (the
// sandbox's own loopback: nothing outside the test's container is reached).
func TestFullImageBrowses(t *testing.T) {
	b := newBackend(t)
	requireFullImage(t, b)
	ws := t.TempDir()
	site := filepath.Join(ws, "site")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"index.html": `<html><head><title>Docker site</title></head><body><h1>Hello from Docker</h1><a href="two.html">Go two</a></body></html>`,
		"two.html":   `<html><body><p>Page two in the container</p></body></html>`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(site, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := start(t, b, runtimes.Spec{Image: DefaultImage, Workspace: ws})
	c := dial(t, h)
	if out, code := run(t, c, "command -v chromium"); code != 0 {
		t.Fatalf("%s has no chromium (%q): it was built before the browser was added; rebuild it with `corral image build`", DefaultImage, out)
	}
	run(t, c, "cd /workspace/site && (python3 -m http.server 8000 --bind 127.0.0.1 >/tmp/http.log 2>&1 &)")
	// Poll for the server inside the container (a condition, not a delay).
	if out, code := run(t, c, `for i in $(seq 300); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/')" 2>/dev/null && echo up && break; sleep 0.1; done`); out != "up" || code != 0 {
		t.Fatalf("the site in the container did not come up: %q (exit %d)", out, code)
	}

	obs, o := browse(t, c, &eventbus.BrowseURLAction{URL: "http://127.0.0.1:8000/"})
	if o.Error || !strings.Contains(obs.Content, "Hello from Docker") || !strings.Contains(obs.Content, "BEGIN webpage content") {
		t.Fatalf("browse: error=%v %q\n%s", o.Error, o.LastBrowserActionError, obs.Content)
	}
	if !strings.HasPrefix(o.Screenshot, "iVBOR") && !strings.Contains(o.Screenshot, "base64,iVBOR") {
		t.Errorf("screenshot is not a base64 PNG: %.40q", o.Screenshot)
	}

	obs, o = browse(t, c, &eventbus.BrowseInteractiveAction{BrowserActions: "noop()"})
	m := regexp.MustCompile(`\[(\w+)\] link 'Go two'`).FindStringSubmatch(obs.Content)
	if o.Error || m == nil {
		t.Fatalf("no bid for the link in the tree: error=%v\n%s", o.Error, obs.Content)
	}
	obs, o = browse(t, c, &eventbus.BrowseInteractiveAction{BrowserActions: "click('" + m[1] + "')"})
	if o.Error || !strings.HasSuffix(o.URL, "/two.html") || !strings.Contains(obs.Content, "Page two in the container") {
		t.Fatalf("click %s: url %q error=%v %q\n%s", m[1], o.URL, o.Error, o.LastBrowserActionError, obs.Content)
	}
	if !strings.Contains(obs.Content, "[Action executed successfully.]") {
		t.Errorf("click content lacks OpenHands' success line:\n%s", obs.Content)
	}
}

// TestMinimalImageSaysItHasNoBrowser: the minimal image has no Chromium, and
// a browse action there is an error observation that says so and how to
// get one, not a hang or a transport error.
func TestMinimalImageSaysItHasNoBrowser(t *testing.T) {
	b := newBackend(t)
	h := start(t, b, runtimes.Spec{})
	c := dial(t, h)
	obs, err := c.Execute(testCtx(t, time.Minute), "", eventbus.NewAction(eventbus.SourceAgent, &eventbus.BrowseURLAction{URL: "http://127.0.0.1:1/"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := obs.Observation.(*eventbus.ErrorObservation); !ok {
		t.Fatalf("observation %s %q, want an error", obs.Type(), obs.Content)
	}
	for _, want := range []string{"no Chromium", "corral image build"} {
		if !strings.Contains(obs.Content, want) {
			t.Errorf("error %q lacks %q", obs.Content, want)
		}
	}
}
