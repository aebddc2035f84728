package agentwire_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"corral/runtimes/sandbox"
	"corral/runtimes/sandbox/browser/browsertest"
	"corral/transport/agentwire"
)

const browserToken = "browser-test-token"

// browseObservation is the part of OpenHands' BrowserOutputObservation
// JSON the tests read.
type browseObservation struct {
	Observation string `json:"observation"`
	Content     string `json:"content"`
	Extras      struct {
		URL                    string   `json:"url"`
		TriggerByAction        string   `json:"trigger_by_action"`
		Screenshot             string   `json:"screenshot"`
		Error                  bool     `json:"error"`
		OpenPagesURLs          []string `json:"open_pages_urls"`
		LastBrowserActionError string   `json:"last_browser_action_error"`
	} `json:"extras"`
}

// postAction posts one action to /execute_action as OpenHands'
// ActionExecutionClient does and decodes the observation.
func postAction(t *testing.T, url, action string) browseObservation {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/execute_action", strings.NewReader(`{"action": `+action+`}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Session-API-Key", browserToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var o browseObservation
	if err := json.Unmarshal(raw, &o); err != nil || resp.StatusCode != 200 {
		t.Fatalf("execute_action answered %d: %v %.300s", resp.StatusCode, err, raw)
	}
	return o
}

func TestExecuteActionBrowsesWithRealChromium(t *testing.T) {
	browsertest.RequireChromium(t)
	tag := browsertest.Tag(t)
	site := browsertest.NewSite(t)
	dir := t.TempDir()
	x, err := sandbox.New(context.Background(), sandbox.WithWorkDir(dir), sandbox.WithEnv([]string{"HOME=" + dir}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := agentwire.NewServer(x, browserToken)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		x.Close()
		hs.Close()
		srv.Close()
	})

	o := postAction(t, hs.URL, `{"action": "browse", "args": {"url": "`+site.URL+`/", "thought": ""}, "timeout": 120}`)
	if o.Observation != "browse" || o.Extras.Error || o.Extras.URL != site.URL+"/" || o.Extras.TriggerByAction != "browse" ||
		!strings.Contains(o.Content, "Welcome home") || !strings.HasPrefix(o.Extras.Screenshot, "data:image/png;base64,") {
		t.Fatalf("browse: %+v", o)
	}
	o = postAction(t, hs.URL, `{"action": "browse_interactive", "args": {"browser_actions": "noop(0)"}, "timeout": 120}`)
	m := regexp.MustCompile(`\[(\w+)\] link 'Get the report'`).FindStringSubmatch(o.Content)
	if m == nil {
		t.Fatalf("no download link in the accessibility tree:\n%s", o.Content)
	}
	o = postAction(t, hs.URL, `{"action": "browse_interactive", "args": {"browser_actions": "click('`+m[1]+`')\nclick('999999')"}, "timeout": 120}`)
	if !o.Extras.Error || o.Extras.LastBrowserActionError != `ValueError: Could not find element with bid "999999"` ||
		!strings.Contains(o.Content, "The following error occurred when executing the last action:") {
		t.Fatalf("second call's bad bid: %+v", o.Extras)
	}
	want := filepath.Join(dir, ".downloads", "report.csv")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if data, err := os.ReadFile(want); err == nil && string(data) == "a,b\n1,2\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first call's download never reached %s", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	o = postAction(t, hs.URL, `{"action": "browse_interactive", "args": {"browser_actions": "goto('`+site.URL+`/page2') tab_focus("}, "timeout": 120}`)
	if !o.Extras.Error || !strings.Contains(o.Extras.LastBrowserActionError, "browser action 2") || o.Extras.URL != site.URL+"/" {
		t.Fatalf("malformed actions must run nothing and name the call: %+v", o.Extras)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitNoneTagged(t, tag)
}
