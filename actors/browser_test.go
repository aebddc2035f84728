package actors

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes/sandbox/browser/browsertest"
)

// TestEngineBrowsesOnTheLocalRuntime runs browse and browse_interactive
// through the engine on a local corral-agent subprocess with real
// Chromium: the observations come back from Run and land on the stream,
// and stopping the session leaves no Chromium behind.
func TestEngineBrowsesOnTheLocalRuntime(t *testing.T) {
	browsertest.RequireChromium(t)
	tag := browsertest.Tag(t) // inherited by corral-agent and its Chromium
	site := browsertest.NewSite(t)
	e, _ := newLocalEngine(t, testConfig())
	sid := startSession(t, e, SessionSpec{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	_, obs, err := e.Run(ctx, sid, runAction(eventbus.SourceAgent, &eventbus.BrowseURLAction{URL: site.URL + "/"}))
	if err != nil {
		t.Fatal(err)
	}
	o, ok := obs.Observation.(*eventbus.BrowserOutputObservation)
	if !ok || o.Error || o.URL != site.URL+"/" || !strings.Contains(obs.Content, "Welcome home") {
		t.Fatalf("browse: %s %q", obs.Type(), obs.Content)
	}
	_, obs, err = e.Run(ctx, sid, runAction(eventbus.SourceAgent, &eventbus.BrowseInteractiveAction{BrowserActions: "noop(0)"}))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`\[(\w+)\] link 'Go to page two'`).FindStringSubmatch(obs.Content)
	if m == nil {
		t.Fatalf("no link bid in:\n%s", obs.Content)
	}
	id, obs, err := e.Run(ctx, sid, runAction(eventbus.SourceAgent, &eventbus.BrowseInteractiveAction{BrowserActions: "click('" + m[1] + "')"}))
	if err != nil {
		t.Fatal(err)
	}
	if o, ok = obs.Observation.(*eventbus.BrowserOutputObservation); !ok || o.Error || o.URL != site.URL+"/page2" {
		t.Fatalf("click: %s %q", obs.Type(), obs.Content)
	}
	stored := false
	for _, ev := range history(t, e, sid) {
		if ev.Cause != nil && *ev.Cause == id && ev.Type() == "browse" && strings.Contains(ev.Content, "Page two") {
			stored = true
		}
	}
	if !stored {
		t.Fatalf("the click's browse observation is not on the session's stream: %s", describe(history(t, e, sid)))
	}
	if browsertest.CountTagged(tag) == 0 {
		t.Fatal("no tagged process runs; the leak check would prove nothing")
	}
	if _, err := e.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitNoneTagged(t, tag)
}
