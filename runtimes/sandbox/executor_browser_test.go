package sandbox

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"corral/eventbus"
	"corral/runtimes/sandbox/browser/browsertest"
)

// linkBid finds the bid of the link named name in an accessibility tree
// text ("[12] link 'Go two'").
func linkBid(t *testing.T, content, name string) string {
	t.Helper()
	m := regexp.MustCompile(`\[(\w+)\] link '` + regexp.QuoteMeta(name) + `'`).FindStringSubmatch(content)
	if m == nil {
		t.Fatalf("no link %q in:\n%s", name, content)
	}
	return m[1]
}

func browseObs(t *testing.T, obs *eventbus.Event) *eventbus.BrowserOutputObservation {
	t.Helper()
	o, ok := obs.Observation.(*eventbus.BrowserOutputObservation)
	if !ok {
		t.Fatalf("want a browse observation, got %s %q", obs.Type(), obs.Content)
	}
	return o
}

// noLeaks checks, after every other cleanup of the test (the executor's,
// the site's), that no goroutine it started is left.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

func TestExecutorBrowsesClicksAndClosesChromium(t *testing.T) {
	browsertest.RequireChromium(t)
	noLeaks(t)
	tag := browsertest.Tag(t)
	site := browsertest.NewSite(t)
	x, dir := newTestExecutor(t)

	obs := xExec(t, x, &eventbus.BrowseURLAction{URL: site.URL + "/"})
	o := browseObs(t, obs)
	if o.Error || o.URL != site.URL+"/" || !strings.Contains(obs.Content, "Welcome home") || !strings.Contains(obs.Content, "BEGIN webpage content") {
		t.Fatalf("browse: error=%v %q url %q content:\n%s", o.Error, o.LastBrowserActionError, o.URL, obs.Content)
	}
	if o.ScreenshotPath == nil || filepath.Dir(*o.ScreenshotPath) != filepath.Join(dir, ".browser_screenshots") {
		t.Fatalf("screenshot_path %v, want a file in the workspace's .browser_screenshots", o.ScreenshotPath)
	}
	obs = xExec(t, x, &eventbus.BrowseInteractiveAction{BrowserActions: "noop(0)"})
	next := linkBid(t, obs.Content, "Go to page two")
	obs = xExec(t, x, &eventbus.BrowseInteractiveAction{BrowserActions: "click('" + next + "')"})
	if o = browseObs(t, obs); o.Error || o.URL != site.URL+"/page2" || !strings.Contains(obs.Content, "Page two") {
		t.Fatalf("click: error %q url %q content:\n%s", o.LastBrowserActionError, o.URL, obs.Content)
	}
	obs = xExec(t, x, &eventbus.BrowseInteractiveAction{BrowserActions: "click('4242')"})
	if o = browseObs(t, obs); !o.Error || o.LastBrowserActionError != `ValueError: Could not find element with bid "4242"` {
		t.Fatalf("bad bid: %q", o.LastBrowserActionError)
	}
	if browsertest.CountTagged(tag) == 0 {
		t.Fatal("no tagged chromium process while the browser runs; the leak check below would prove nothing")
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitNoneTagged(t, tag)
}

func TestExecutorBrowseJSONAsOpenHandsSendsIt(t *testing.T) {
	browsertest.RequireChromium(t)
	site := browsertest.NewSite(t)
	x, _ := newTestExecutor(t)
	ev, err := eventbus.Unmarshal([]byte(`{"id":8,"source":"agent","action":"browse_interactive","args":{"browser_actions":"goto('` + site.URL + `/page2')","thought":"","browsergym_send_msg_to_user":"","return_axtree":false},"timeout":120}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := eventbus.Marshal(x.Execute(context.Background(), ev, nil))
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		Observation string         `json:"observation"`
		Cause       int64          `json:"cause"`
		Content     string         `json:"content"`
		Extras      map[string]any `json:"extras"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	ex := o.Extras
	if o.Observation != "browse" || o.Cause != 8 || ex["url"] != site.URL+"/page2" || ex["trigger_by_action"] != "browse_interactive" ||
		ex["error"] != false || ex["active_page_index"] != float64(0) || ex["last_browser_action"] != "goto('"+site.URL+"/page2')" {
		t.Fatalf("observation JSON: %.600s", raw)
	}
	pages, _ := ex["open_pages_urls"].([]any)
	if len(pages) != 1 || pages[0] != site.URL+"/page2" {
		t.Errorf("open_pages_urls %v", ex["open_pages_urls"])
	}
	for _, k := range []string{"screenshot", "set_of_marks"} {
		if s, _ := ex[k].(string); !strings.HasPrefix(s, "data:image/png;base64,") {
			t.Errorf("%s is not a PNG data URL: %.40q", k, s)
		}
	}
	if !strings.Contains(o.Content, "[Action executed successfully.]") || !strings.Contains(o.Content, "Page two") {
		t.Errorf("content:\n%s", o.Content)
	}
}

func TestExecutorBrowseTimeoutInterruptAndCloseDoNotHang(t *testing.T) {
	browsertest.RequireChromium(t)
	noLeaks(t)
	tag := browsertest.Tag(t)
	site := browsertest.NewSite(t)
	x, _ := newTestExecutor(t)
	xExec(t, x, &eventbus.BrowseInteractiveAction{BrowserActions: "noop(0)"}) // Chromium starts outside the short timeout

	ev := xAct(7, &eventbus.BrowseURLAction{URL: site.URL + "/slow"})
	secs := 3.0
	ev.Timeout = &secs
	o := browseObs(t, x.Execute(context.Background(), ev, nil))
	if !o.Error || !strings.Contains(o.LastBrowserActionError, "TimeoutError") {
		t.Fatalf("slow page: error=%v %q", o.Error, o.LastBrowserActionError)
	}
	obs := xExec(t, x, &eventbus.BrowseURLAction{URL: site.URL + "/page2"})
	if o = browseObs(t, obs); o.Error || !strings.Contains(obs.Content, "Page two") {
		t.Fatalf("after a timeout the browser must work: %q\n%s", o.LastBrowserActionError, obs.Content)
	}

	drain := func() { // /slow hits of earlier actions
		for {
			select {
			case <-site.SlowHit:
			default:
				return
			}
		}
	}
	drain()
	done := make(chan *eventbus.Event, 1)
	go func() {
		done <- x.Execute(context.Background(), xAct(9, &eventbus.BrowseURLAction{URL: site.URL + "/slow"}), nil)
	}()
	select {
	case <-site.SlowHit:
	case <-time.After(60 * time.Second):
		t.Fatal("the slow page was never requested")
	}
	interrupted := make(chan error, 1)
	go func() { _, err := x.Interrupt(); interrupted <- err }()
	select {
	case err := <-interrupted:
		if err != nil {
			t.Fatalf("Interrupt during a browse: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Interrupt hung on a browse action")
	}
	// The interrupted browse ends on its own (its timeout is the default
	// 120 s, far beyond the wait), like a command after Ctrl-C.
	select {
	case obs := <-done:
		if o, ok := obs.Observation.(*eventbus.BrowserOutputObservation); ok && !o.Error {
			t.Fatalf("the interrupted browse reports success: %q", obs.Content)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Interrupt did not end the running browse")
	}
	obs = xExec(t, x, &eventbus.BrowseURLAction{URL: site.URL + "/page2"})
	if o = browseObs(t, obs); o.Error || !strings.Contains(obs.Content, "Page two") {
		t.Fatalf("after an interrupt the browser must work: %q\n%s", o.LastBrowserActionError, obs.Content)
	}

	drain()
	go func() {
		done <- x.Execute(context.Background(), xAct(11, &eventbus.BrowseURLAction{URL: site.URL + "/slow"}), nil)
	}()
	select {
	case <-site.SlowHit:
	case <-time.After(60 * time.Second):
		t.Fatal("the slow page was never requested the second time")
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case obs := <-done:
		if _, ok := obs.Observation.(*eventbus.ErrorObservation); !ok || !strings.Contains(obs.Content, "closed") {
			t.Fatalf("the browse cut by Close: %s %q", obs.Type(), obs.Content)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Close did not end the running browse")
	}
	browsertest.WaitNoneTagged(t, tag)
}

func TestExecutorWithoutChromiumSaysHowToGetOne(t *testing.T) {
	t.Setenv("CORRAL_CHROMIUM", filepath.Join(t.TempDir(), "no-such-chromium"))
	x, _ := newTestExecutor(t)
	obs := xExec(t, x, &eventbus.BrowseURLAction{URL: "http://127.0.0.1/"})
	if _, ok := obs.Observation.(*eventbus.ErrorObservation); !ok {
		t.Fatalf("want an error observation, got %s %q", obs.Type(), obs.Content)
	}
	for _, want := range []string{"no Chromium browser in this image/host", "corral image build", "apt-get install chromium"} {
		if !strings.Contains(obs.Content, want) {
			t.Errorf("error %q lacks %q", obs.Content, want)
		}
	}
}
