package browser_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"corral/eventbus"
	"corral/runtimes/sandbox"
	"corral/runtimes/sandbox/browser"
	"corral/runtimes/sandbox/browser/browsertest"
)

const benchPage = `<html><body><h1>Bench</h1><button id="b" onclick="this.textContent = 'n' + (++window.n || (window.n = 1))">n0</button></body></html>`

func benchSite(b *testing.B) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, benchPage)
	}))
	b.Cleanup(s.Close)
	return s
}

// rawBrowser starts Chromium through chromedp with the flags Corral uses.
func rawBrowser(b *testing.B) (context.Context, context.CancelFunc) {
	bin, err := browser.FindChromium("")
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "bench-chromium-")
	if err != nil {
		b.Fatal(err)
	}
	alloc, acancel := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(bin), chromedp.UserDataDir(dir),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1280, 720))
	ctx, cancel := chromedp.NewContext(alloc)
	return ctx, func() { cancel(); acancel(); os.RemoveAll(dir) }
}

func benchExecutor(b *testing.B) *sandbox.Executor {
	dir := b.TempDir()
	x, err := sandbox.New(context.Background(), sandbox.WithWorkDir(dir), sandbox.WithEnv([]string{"HOME=" + dir}))
	if err != nil {
		b.Fatal(err)
	}
	return x
}

func execBrowse(b *testing.B, x *sandbox.Executor, a eventbus.Action) *eventbus.Event {
	obs := x.Execute(context.Background(), eventbus.NewAction(eventbus.SourceAgent, a), nil)
	if o, ok := obs.Observation.(*eventbus.BrowserOutputObservation); !ok || o.Error {
		b.Fatalf("browse failed: %s %q", obs.Type(), obs.Content)
	}
	return obs
}

// BenchmarkFirstBrowse is the first `browse` of a fresh executor, Chromium's
// start included, against raw chromedp starting Chromium, navigating and
// taking a screenshot, interleaved in one run.
func BenchmarkFirstBrowse(b *testing.B) {
	browsertest.RequireChromium(b)
	site := benchSite(b)
	var corral, raw time.Duration
	for b.Loop() {
		x := benchExecutor(b)
		start := time.Now()
		execBrowse(b, x, &eventbus.BrowseURLAction{URL: site.URL})
		corral += time.Since(start)
		x.Close()

		start = time.Now()
		ctx, cancel := rawBrowser(b)
		if _, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
			if err := chromedp.Do(ctx, chromedp.Navigate(site.URL)); err != nil {
				return nil, err
			}
			return chromedp.Run(ctx, chromedp.CaptureScreenshot())
		}); err != nil {
			b.Fatal(err)
		}
		raw += time.Since(start)
		cancel()
	}
	reportRatio(b, corral, raw)
}

// BenchmarkWarmClick is a browse_interactive click on a warm browser (with
// its full observation: bids, AX tree, DOM, the screenshot and the
// set-of-marks image drawn on it) against raw chromedp's click on the same
// kind of page, interleaved in one run. Most of Corral's time is the
// screenshot, for which Chromium draws a new frame.
func BenchmarkWarmClick(b *testing.B) {
	browsertest.RequireChromium(b)
	site := benchSite(b)
	x := benchExecutor(b)
	b.Cleanup(func() { x.Close() })
	obs := execBrowse(b, x, &eventbus.BrowseInteractiveAction{BrowserActions: fmt.Sprintf("goto(%q)", site.URL)})
	m := regexp.MustCompile(`\[(\w+)\] button`).FindStringSubmatch(obs.Content)
	if m == nil {
		b.Fatalf("no button in:\n%s", obs.Content)
	}
	click := &eventbus.BrowseInteractiveAction{BrowserActions: fmt.Sprintf("click(%q)", m[1])}
	ctx, cancel := rawBrowser(b)
	b.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL)); err != nil {
		b.Fatal(err)
	}
	var corral, raw time.Duration
	for b.Loop() {
		start := time.Now()
		execBrowse(b, x, click)
		corral += time.Since(start)

		start = time.Now()
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#b"))); err != nil {
			b.Fatal(err)
		}
		raw += time.Since(start)
	}
	reportRatio(b, corral, raw)
}

func reportRatio(b *testing.B, corral, raw time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(corral.Milliseconds())/n, "corral-ms/op")
	b.ReportMetric(float64(raw.Milliseconds())/n, "chromedp-ms/op")
	if raw > 0 {
		b.ReportMetric(float64(corral)/float64(raw), "corral/chromedp")
	}
}
