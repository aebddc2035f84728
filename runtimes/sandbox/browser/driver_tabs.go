package browser

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// tab is one open page. Its chromedp context closes the page when
// cancelled.
type tab struct {
	id     target.ID
	ctx    context.Context
	cancel context.CancelFunc

	// mouseX, mouseY is where the mouse is (scroll wheels there, as
	// Playwright's mouse.wheel). Used under Browser.mu.
	mouseX, mouseY float64

	mu      sync.Mutex
	loading bool          // the main frame loads a document not yet parsed
	changed chan struct{} // closed and replaced when loading changes
}

// newTab wraps a chromedp tab context and starts following its loading.
func newTab(id target.ID, ctx context.Context, cancel context.CancelFunc) (*tab, error) {
	t := &tab{id: id, ctx: ctx, cancel: cancel, changed: make(chan struct{})}
	var mu sync.Mutex // t.id is set after Listen attached, events may come first
	mainFrame := func() string { mu.Lock(); defer mu.Unlock(); return string(t.id) }
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *page.EventFrameStartedLoading:
			if string(e.FrameID) == mainFrame() {
				t.setLoading(true)
			}
		case *page.EventFrameStoppedLoading:
			if string(e.FrameID) == mainFrame() {
				t.setLoading(false)
			}
		case *page.EventDomContentEventFired:
			t.setLoading(false)
		case *page.EventJavascriptDialogOpening:
			// An open alert/confirm/prompt blocks the page's scripts, so
			// every later action would hang. Dismiss it, as Playwright
			// does by default. Not here: a listener must not send
			// commands.
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: e.Type == page.DialogTypeBeforeunload})
			}()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("follow the tab's page loads: %w", err)
	}
	mu.Lock()
	t.id = chromedp.FromContext(ctx).Target.TargetID
	mu.Unlock()
	return t, nil
}

func (t *tab) setLoading(v bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.loading != v {
		t.loading = v
		close(t.changed)
		t.changed = make(chan struct{})
	}
}

// settleMax bounds the wait for a navigation an action started, as
// BrowserGym's wait for "domcontentloaded" (3 s there; longer here for
// loaded CI machines). goto waits for the full load on its own.
const settleMax = 10 * time.Second

// settle waits until a document the last action started loading is
// parsed (DOMContentLoaded), at most settleMax or until ctx ends.
func (t *tab) settle(ctx context.Context) {
	// A round trip through the renderer lets a navigation started by the
	// action announce itself before we look.
	_, _ = evalJS[bool](ctx, `new Promise(r => setTimeout(() => r(true), 0))`)
	timer := time.NewTimer(settleMax)
	defer timer.Stop()
	for {
		t.mu.Lock()
		loading, ch := t.loading, t.changed
		t.mu.Unlock()
		if !loading {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// adoptLocked attaches to an existing page target and appends it.
func (b *Browser) adoptLocked(id target.ID) error {
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithTargetID(id))
	t, err := newTab(id, ctx, cancel)
	if err != nil {
		cancel()
		return err
	}
	b.tabs = append(b.tabs, t)
	b.active = len(b.tabs) - 1
	return nil
}

// newTabLocked opens a blank page in a window of its own (a hidden tab
// gets no animation frames) and makes it the active one. The page is
// created here and then attached by id: chromedp learns an attached
// page's main frame at once, which it needs to follow DOM events (a tab
// chromedp creates itself has none until its first navigation).
func (b *Browser) newTabLocked() (*tab, error) {
	newWindow := true
	res, err := chromedp.CallBrowser(b.root, target.CreateTarget, target.CreateTargetParams{URL: "about:blank", NewWindow: &newWindow})
	if err != nil {
		return nil, fmt.Errorf("open a new tab: %w", err)
	}
	if err := b.adoptLocked(res.TargetID); err != nil {
		return nil, fmt.Errorf("attach to the new tab: %w", err)
	}
	return b.activeTab(), nil
}

// activeTab is the page actions run on; there must be one (see
// currentTabLocked).
func (b *Browser) activeTab() *tab { return b.tabs[b.active] }

// currentTabLocked is the active tab, opening a blank one when a failed
// tab operation left none.
func (b *Browser) currentTabLocked(ctx context.Context) (*tab, error) {
	if len(b.tabs) == 0 {
		if err := b.syncTabsLocked(ctx); err != nil {
			return nil, err
		}
	}
	return b.activeTab(), nil
}

// actionCtx is a context for commands on tab t that ends with ctx, with
// the browser's life, or when cancel is called; the tab itself lives on.
func (b *Browser) actionCtx(ctx context.Context, t *tab) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(t.ctx)
	stop1 := context.AfterFunc(ctx, cancel)
	stop2 := context.AfterFunc(b.life, cancel)
	return c, func() { stop1(); stop2(); cancel() }
}

// syncTabsLocked brings the tab list in line with the browser: pages that
// closed themselves are dropped, pages opened by a page (target=_blank,
// window.open) are adopted and become active, as BrowserGym's context
// does. There is always at least one page.
func (b *Browser) syncTabsLocked(ctx context.Context) error {
	infos, err := chromedp.Targets(b.root)
	if err != nil {
		return fmt.Errorf("list the browser's tabs: %w", err)
	}
	live := map[target.ID]bool{}
	for _, ti := range infos {
		if ti.Type == "page" {
			live[ti.TargetID] = true
		}
	}
	activeID := target.ID("")
	if b.active < len(b.tabs) {
		activeID = b.tabs[b.active].id
	}
	kept := b.tabs[:0]
	for _, t := range b.tabs {
		if live[t.id] {
			kept = append(kept, t)
		} else {
			t.cancel()
		}
	}
	b.tabs = kept
	b.active = max(0, len(b.tabs)-1)
	for i, t := range b.tabs {
		if t.id == activeID {
			b.active = i
		}
	}
	for _, ti := range infos {
		if ti.Type == "page" && !slices.ContainsFunc(b.tabs, func(t *tab) bool { return t.id == ti.TargetID }) {
			if err := b.adoptLocked(ti.TargetID); err != nil {
				return err
			}
		}
	}
	if len(b.tabs) == 0 {
		if _, err := b.newTabLocked(); err != nil {
			return err
		}
	}
	return nil
}

// closeTabLocked closes the active tab; the last remaining one becomes
// active, and a new blank one opens when none is left (BrowserGym).
func (b *Browser) closeTabLocked(ctx context.Context) error {
	t, err := b.currentTabLocked(ctx)
	if err != nil {
		return err
	}
	b.tabs = slices.Delete(b.tabs, b.active, b.active+1)
	t.cancel()
	b.active = len(b.tabs) - 1
	if len(b.tabs) == 0 {
		if _, err := b.newTabLocked(); err != nil {
			return err
		}
	}
	return b.bringToFront(ctx)
}

// focusTabLocked makes tab i active (tab_focus).
func (b *Browser) focusTabLocked(ctx context.Context, i int) error {
	if i < 0 || i >= len(b.tabs) {
		return &actionFailure{kind: "IndexError", msg: fmt.Sprintf("list index out of range (tab_focus(%d) with %d open tab(s); indices start at 0)", i, len(b.tabs))}
	}
	b.active = i
	return b.bringToFront(ctx)
}

// bringToFront activates the active tab in Chromium and fires pageshow,
// as BrowserGym does, so pages that track visibility see it.
func (b *Browser) bringToFront(ctx context.Context) error {
	t, err := b.currentTabLocked(ctx)
	if err != nil {
		return err
	}
	actx, cancel := b.actionCtx(ctx, t)
	defer cancel()
	if _, err := chromedp.Call(actx, page.BringToFront, cdp.Empty{}); err != nil {
		return fmt.Errorf("bring the tab to the front: %w", err)
	}
	_, err = evalJS[bool](actx, `(() => { window.dispatchEvent(new Event('pageshow', {bubbles: true})); return true; })()`)
	return err
}

// tabURLs returns each tab's URL (open_pages_urls) from the browser's
// target list.
func (b *Browser) tabURLsLocked() ([]string, error) {
	infos, err := chromedp.Targets(b.root)
	if err != nil {
		return nil, fmt.Errorf("list the browser's tabs: %w", err)
	}
	urls := make([]string, len(b.tabs))
	for i, t := range b.tabs {
		for _, ti := range infos {
			if ti.TargetID == t.id {
				urls[i] = ti.URL
			}
		}
	}
	return urls, nil
}
