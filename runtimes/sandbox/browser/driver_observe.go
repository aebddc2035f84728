package browser

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
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
// the two screenshots. It keeps going after a failure so that as much as
// possible is shown, and returns the first error.
func readPage(ctx context.Context) (snapshot, error) {
	var s snapshot
	var errs []error
	keep := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	var err error
	s.props, err = markBids(ctx)
	keep("mark elements with bids", err)
	s.dom, s.bids, err = readDOM(ctx)
	keep("map bids to the DOM", err)
	s.nodes, err = mergedAXTree(ctx)
	keep("read the accessibility tree", err)
	s.focused, err = focusedBid(ctx)
	keep("read the focused element", err)
	s.shot, err = screenshot(ctx)
	keep("take a screenshot", err)
	if err == nil && len(s.props) > 0 {
		s.som, err = setOfMarks(ctx, s.props)
		keep("draw the set-of-marks screenshot", err)
	}
	return s, errors.Join(errs...)
}

// screenshot is a PNG of the viewport.
func screenshot(ctx context.Context) ([]byte, error) {
	fast := true // zlib's fastest level: much quicker, a bit larger
	r, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng, OptimizeForSpeed: &fast})
	return r.Data, err
}

// setOfMarks is a screenshot with a box and a bid label drawn on each
// element BrowserGym marks (set_of_marks), drawn by the page itself in an
// overlay that is removed right after.
func setOfMarks(ctx context.Context, props map[string]elemProps) ([]byte, error) {
	if _, err := helper[bool](ctx, "som", map[string]any{"props": props}); err != nil {
		return nil, err
	}
	shot, err := screenshot(ctx)
	if _, uerr := helper[bool](ctx, "unsom", struct{}{}); err == nil && uerr != nil {
		err = uerr
	}
	return shot, err
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
