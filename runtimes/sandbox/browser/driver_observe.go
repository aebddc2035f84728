package browser

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"corral/eventbus"
)

// Result is one browser step's outcome: the observation and the text the
// agent reads (the observation event's content).
type Result struct {
	Obs     *eventbus.BrowserOutputObservation
	Content string
	// AXTree is the page's accessibility tree as BrowserGym's text, with
	// bids; the agent text of browse_interactive embeds it.
	AXTree string
	// PageText is the page's HTML as text (OpenHands' html2text), the
	// content of `browse`.
	PageText string

	axtreeErr string // why the tree could not be flattened, if so
}

// readTries and readRetryDelay bound the re-reads of a page that changed
// under the read.
const (
	readTries      = 3
	readRetryDelay = 300 * time.Millisecond
)

// snapshot is what is read from the active page.
type snapshot struct {
	props   map[string]elemProps
	bids    map[cdp.BackendNodeID]string
	dom     *cdp.Node
	nodes   []*accessibility.Node
	focused string
	shot    []byte
	som     []byte
}

// observeLocked reads the active page. It always returns a Result; the
// error says what could not be read.
func (b *Browser) observeLocked(ctx context.Context, trigger string, axt bool) (*Result, error) {
	obs := &eventbus.BrowserOutputObservation{
		TriggerByAction: trigger, ActivePageIndex: -1,
		GoalImageURLs: json.RawMessage("[]"), OpenPagesURLs: json.RawMessage("[]"),
		DomObject: json.RawMessage("{}"), AxtreeObject: json.RawMessage("{}"),
		ExtraElementProperties: json.RawMessage("{}"),
	}
	res := &Result{Obs: obs}
	if err := b.syncTabsLocked(ctx); err != nil {
		return res, err
	}
	urls, err := b.tabURLsLocked()
	if err != nil {
		return res, err
	}
	obs.OpenPagesURLs, _ = json.Marshal(urls)
	obs.ActivePageIndex = b.active
	obs.URL = urls[b.active]
	t := b.activeTab() // syncTabsLocked left at least one
	actx, cancel := b.actionCtx(ctx, t)
	defer cancel()
	if loc, err := evalJS[string](actx, `document.location.href`); err == nil {
		obs.URL = loc
	}
	snap, err := readPage(actx)
	// A page that navigates while it is read loses its JavaScript context
	// half-way; BrowserGym retries the extraction for the same reason.
	for try := 1; err != nil && try < readTries && actx.Err() == nil; try++ {
		t.settle(actx)
		_ = sleepCtx(actx, readRetryDelay)
		snap, err = readPage(actx)
	}
	obs.FocusedElementBid = snap.focused
	if len(snap.shot) > 0 {
		obs.Screenshot = pngDataURL(snap.shot)
	}
	if len(snap.som) > 0 {
		obs.SetOfMarks = pngDataURL(snap.som)
	}
	res.AXTree = AXTreeText(snap.nodes, snap.bids, clickableBids(snap.props))
	if snap.dom != nil {
		res.PageText = HTMLText(snap.dom)
	}
	if axt {
		obs.AxtreeObject, _ = json.Marshal(map[string]any{"nodes": snap.nodes})
		obs.ExtraElementProperties, _ = json.Marshal(snap.props)
	}
	return res, err
}

// readPage marks bids and reads the accessibility tree, focus, HTML and
// the screenshot, then draws the set-of-marks image onto a copy of that
// screenshot. It keeps going after a failure so that as much as possible
// is shown, and returns the errors joined.
//
// The reads run at once: the screenshot waits for Chromium to produce a
// new frame, which is most of the time of an observation, and the DOM and
// accessibility reads fit in that wait. The screenshot still shows the
// page after the action: the action's input events were handled (their
// handlers ran) before Input.dispatchMouseEvent/dispatchKeyEvent
// answered, and the action settled before this runs, so the frame the
// capture forces is drawn from the DOM as the action left it. Marking
// bids only sets attributes, which changes nothing drawn.
func readPage(ctx context.Context) (snapshot, error) {
	var s snapshot
	var shotErr, markErr, domErr, axErr, focusErr, somErr error
	shotDone := make(chan struct{})
	go func() {
		defer close(shotDone)
		s.shot, shotErr = screenshot(ctx)
	}()
	s.props, markErr = markBids(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		// The marks' boxes are CSS pixels; the screenshot has device
		// pixels. A failed read draws them 1:1.
		viewportW, _ := evalJS[float64](ctx, `window.innerWidth`)
		<-shotDone
		if shotErr == nil && markErr == nil && len(s.props) > 0 {
			s.som, somErr = drawSetOfMarks(s.shot, s.props, viewportW)
		}
	})
	// The bids' map needs the DOM as marked, so these wait for markBids.
	wg.Go(func() { s.dom, s.bids, domErr = readDOM(ctx) })
	wg.Go(func() { s.nodes, axErr = mergedAXTree(ctx) })
	s.focused, focusErr = focusedBid(ctx)
	wg.Wait()
	errs := []error{
		wrapIf("mark elements with bids", markErr), wrapIf("map bids to the DOM", domErr),
		wrapIf("read the accessibility tree", axErr), wrapIf("read the focused element", focusErr),
		wrapIf("take a screenshot", shotErr), wrapIf("draw the set-of-marks screenshot", somErr),
	}
	return s, errors.Join(errs...)
}

// wrapIf wraps err with what was being done, or is nil.
func wrapIf(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// screenshot is a PNG of the viewport. Chromium draws a new frame for
// it; optimizeForSpeed only makes the PNG encoding cheaper (zlib's
// fastest level: much quicker, a bit larger).
func screenshot(ctx context.Context) ([]byte, error) {
	fast := true
	r, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng, OptimizeForSpeed: &fast})
	return r.Data, err
}

// pngDataURL is OpenHands' image_to_png_base64_url(add_data_prefix=True).
func pngDataURL(png []byte) string {
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
}

// clickableBids is the clickable flag of each bid, for AXTreeText.
func clickableBids(props map[string]elemProps) map[string]bool {
	m := make(map[string]bool, len(props))
	for bid, p := range props {
		if p.Clickable {
			m[bid] = true
		}
	}
	return m
}

// agentText is the observation's content (OpenHands' get_agent_obs_text).
func agentText(r *Result, trigger string) string {
	o := r.Obs
	st := State{URL: o.URL, FocusedBid: o.FocusedElementBid, ActionError: o.LastBrowserActionError,
		PageText: r.PageText, AXTree: r.AXTree, AXTreeError: r.axtreeErr}
	if o.ScreenshotPath != nil {
		st.ScreenshotPath = *o.ScreenshotPath
	}
	return AgentText(trigger, st)
}
