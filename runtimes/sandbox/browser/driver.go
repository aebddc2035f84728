package browser

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"corral/eventbus"
)

// Trigger names: the action type an observation answers
// (trigger_by_action).
const (
	TriggerBrowse            = "browse"
	TriggerBrowseInteractive = "browse_interactive"
)

// actionFailure is an error of one browser action as BrowserGym reports
// it: "<Python exception type>: <message>".
type actionFailure struct {
	kind string // e.g. ValueError, TimeoutError; "" when msg has it
	msg  string
}

func (e *actionFailure) Error() string {
	if e.kind == "" {
		return e.msg
	}
	return e.kind + ": " + e.msg
}

// Browse opens url in the active tab and observes the page (OpenHands'
// `browse`). A URL without a scheme is a file path relative to the work
// directory. The error is not nil only when the browser cannot run at all
// (ErrNoChromium, ErrClosed, a failed start); a page that fails to load is
// an observation with its error set.
func (b *Browser) Browse(ctx context.Context, rawURL string, returnAXTree bool) (*Result, error) {
	u := b.resolveURL(rawURL)
	calls := []Call{{Name: "goto", Args: []any{u}, Src: fmt.Sprintf("goto(%q)", u)}}
	return b.step(ctx, TriggerBrowse, calls[0].Src, calls, nil, returnAXTree)
}

// Interactive runs a browse_interactive action string: BrowserGym calls
// run in order and the first failing one stops the rest and is reported
// as last_browser_action_error, as BrowserGym does. A malformed string
// runs nothing and is reported the same way. Errors are as for Browse.
func (b *Browser) Interactive(ctx context.Context, actions string, returnAXTree bool) (*Result, error) {
	calls, perr := ParseActions(actions)
	return b.step(ctx, TriggerBrowseInteractive, actions, calls, perr, returnAXTree)
}

// resolveURL keeps URLs with a scheme and turns anything else into a
// file:// URL under the work directory.
func (b *Browser) resolveURL(raw string) string {
	raw = strings.TrimSpace(raw)
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		return raw
	}
	p := raw
	if !filepath.IsAbs(p) {
		p = filepath.Join(b.cfg.workDir, p)
	}
	return (&url.URL{Scheme: "file", Path: p}).String()
}

// step runs calls (unless perr is set) then observes the page.
func (b *Browser) step(ctx context.Context, trigger, src string, calls []Call, perr error, axt bool) (*Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.startLocked(ctx); err != nil {
		return nil, err
	}
	actErr := ""
	if perr != nil {
		actErr = parseErrorText(perr)
	} else if err := b.runCallsLocked(ctx, calls); err != nil {
		actErr = b.failureText(ctx, err)
	}
	octx, cancel := b.observeCtx(ctx)
	defer cancel()
	if b.life.Err() != nil {
		return nil, ErrClosed
	}
	res, err := b.observeLocked(octx, trigger, axt)
	if err != nil {
		if b.life.Err() != nil {
			return nil, ErrClosed
		}
		if actErr == "" {
			actErr = "Error: " + err.Error()
		} else {
			actErr += "\n(and the page could not be read afterwards: " + err.Error() + ")"
		}
	}
	res.Obs.LastBrowserAction = src
	res.Obs.LastBrowserActionError = actErr
	res.Obs.Error = actErr != ""
	b.saveScreenshot(res.Obs)
	res.Content = agentText(res, trigger)
	return res, nil
}

// observeCtx is the context to read the page with: a grace period of its
// own after the action, so that an action that ran out of time (or used
// almost all of it) still shows where the browser is. Close ends it.
func (b *Browser) observeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), observeGrace)
	stop := context.AfterFunc(b.life, cancel)
	return c, func() { stop(); cancel() }
}

// parseErrorText is the error text of a malformed action string.
func parseErrorText(err error) string {
	var ae *ActionError
	if errors.As(err, &ae) {
		return "SyntaxError: " + ae.Error()
	}
	return "SyntaxError: " + err.Error()
}

// failureText turns an action error into BrowserGym's last_action_error.
func (b *Browser) failureText(ctx context.Context, err error) string {
	var af *actionFailure
	if errors.As(err, &af) {
		return af.Error()
	}
	var le *chromedp.LoadError
	if errors.As(err, &le) {
		return "Error: " + err.Error()
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		if b.life.Err() != nil {
			return "Error: the browser was closed while the action ran"
		}
		return "TimeoutError: " + err.Error()
	}
	return "Error: " + err.Error()
}

// runCallsLocked runs the calls in order on the browser, stopping at the
// first failure, then waits for a navigation they started.
func (b *Browser) runCallsLocked(ctx context.Context, calls []Call) error {
	for _, c := range calls {
		if err := b.runCallLocked(ctx, c); err != nil {
			if ctx.Err() != nil {
				return b.timeoutError(ctx, c)
			}
			return err
		}
	}
	t, err := b.currentTabLocked(ctx)
	if err != nil {
		return err
	}
	actx, cancel := b.actionCtx(ctx, t)
	defer cancel()
	t.settle(actx)
	if ctx.Err() != nil {
		return b.timeoutError(ctx, Call{Name: "settle", Src: "waiting for the page to load"})
	}
	return nil
}

// timeoutError reports a call cut short by the action's deadline (or by
// an interrupt), and stops the page's loading so the browser is usable.
func (b *Browser) timeoutError(ctx context.Context, c Call) error {
	what := "the action was interrupted"
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		what = "the action's timeout was reached"
	}
	if b.life.Err() == nil && len(b.tabs) > 0 {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		stop := context.AfterFunc(b.life, cancel)
		actx, acancel := b.actionCtx(sctx, b.activeTab())
		_ = chromedp.Do(actx, chromedp.Stop())
		acancel()
		stop()
		cancel()
	}
	return &actionFailure{kind: "TimeoutError", msg: fmt.Sprintf("%s: %s before it finished (the page may still be loading; it was stopped)", c.Src, what)}
}

// runCallLocked runs one call.
func (b *Browser) runCallLocked(ctx context.Context, c Call) error {
	switch c.Name {
	case "send_msg_to_user", "report_infeasible":
		// Messages for the user travel in the action itself
		// (browsergym_send_msg_to_user); the page is not touched.
		return nil
	case "noop":
		return sleepCtx(ctx, time.Duration(c.Float("wait_ms")*float64(time.Millisecond)))
	case "new_tab":
		if _, err := b.newTabLocked(); err != nil {
			return err
		}
		return b.bringToFront(ctx)
	case "tab_close":
		return b.closeTabLocked(ctx)
	case "tab_focus":
		return b.focusTabLocked(ctx, int(c.Float("index")))
	}
	t, err := b.currentTabLocked(ctx)
	if err != nil {
		return err
	}
	actx, cancel := b.actionCtx(ctx, t)
	defer cancel()
	switch c.Name {
	case "goto":
		return t.gotoURL(actx, c.Str("url"))
	case "go_back", "go_forward":
		return t.history(actx, c.Name)
	}
	return b.runElementCall(actx, t, c)
}

// gotoURL navigates and waits for the load event, with Playwright's error
// text for a page that cannot be reached.
func (t *tab) gotoURL(ctx context.Context, u string) error {
	err := chromedp.Do(ctx, chromedp.Navigate(u))
	var le *chromedp.LoadError
	if errors.As(err, &le) {
		return &actionFailure{kind: "Error", msg: fmt.Sprintf("Page.goto: %s at %s", le.ErrorText, u)}
	}
	if err != nil && ctx.Err() == nil {
		return &actionFailure{kind: "Error", msg: fmt.Sprintf("Page.goto: %v (url %s)", err, u)}
	}
	return err
}

// history goes back or forward; with no entry that way it does nothing,
// as Playwright's go_back does.
func (t *tab) history(ctx context.Context, name string) error {
	h, err := chromedp.Run(ctx, chromedp.NavigationEntries())
	if err != nil {
		return err
	}
	i := h.CurrentIndex - 1
	if name == "go_forward" {
		i = h.CurrentIndex + 1
	}
	if i < 0 || i >= int64(len(h.Entries)) {
		return nil
	}
	err = chromedp.Do(ctx, chromedp.NavigateToHistoryEntry(h.Entries[i].ID))
	if err != nil && ctx.Err() == nil {
		var le *chromedp.LoadError
		if errors.As(err, &le) {
			return &actionFailure{kind: "Error", msg: fmt.Sprintf("Page.%s: %s", strings.ReplaceAll(name, "_", ""), le.ErrorText)}
		}
	}
	return err
}

// uploadFiles sets the files of a file input (upload_file). A bid of an
// <input type=file> gets them at once; any other element is clicked and
// must open a file chooser, as BrowserGym's upload_file expects (a styled
// button or label in front of a hidden input). Relative paths resolve
// against the work directory.
func (b *Browser) uploadFiles(ctx context.Context, t *tab, bid string, files []string) error {
	bx, err := locateBid(ctx, bid)
	if err != nil {
		return err
	}
	abs, err := b.absFiles(files)
	if err != nil {
		return err
	}
	if bx.Tag == "input" && bx.Type == "file" {
		obj, err := elementObject(ctx, bid)
		if err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: abs, ObjectID: obj}); err != nil {
			return fmt.Errorf("set the files of bid %q: %w", bid, err)
		}
		return nil
	}
	what := fmt.Sprintf("element with bid %q (a <%s>)", bid, bx.Tag)
	return t.uploadViaChooser(ctx, what, abs, func() error { return t.clickAt(ctx, bx.X, bx.Y, "left", 1, 0) })
}

// absFiles resolves upload paths and checks the files exist.
func (b *Browser) absFiles(files []string) ([]string, error) {
	abs := make([]string, len(files))
	for i, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(b.cfg.workDir, f)
		}
		if _, err := os.Stat(f); err != nil {
			return nil, &actionFailure{kind: "Error", msg: fmt.Sprintf("upload_file: %v", err)}
		}
		abs[i] = f
	}
	return abs, nil
}

// chooserWait bounds the wait for the file chooser a click should open.
const chooserWait = 5 * time.Second

// uploadViaChooser runs click, which must open a file chooser, and gives
// the chooser's input the files.
func (t *tab) uploadViaChooser(ctx context.Context, what string, files []string, click func() error) error {
	if _, err := chromedp.Call(ctx, page.SetInterceptFileChooserDialog, page.SetInterceptFileChooserDialogParams{Enabled: true}); err != nil {
		return fmt.Errorf("intercept the file chooser: %w", err)
	}
	defer func() {
		off, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = chromedp.Call(off, page.SetInterceptFileChooserDialog, page.SetInterceptFileChooserDialogParams{Enabled: false})
	}()
	wctx, cancel := context.WithTimeout(ctx, chooserWait)
	defer cancel()
	opened := chromedp.Events(wctx, page.FileChooserOpened)
	if err := click(); err != nil {
		return err
	}
	for ev, err := range opened {
		if err != nil {
			break
		}
		if ev.BackendNodeID == 0 {
			return &actionFailure{kind: "Error", msg: "upload_file: the file chooser " + what + " opened belongs to no <input type=\"file\">"}
		}
		if _, err := chromedp.Call(ctx, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: files, BackendNodeID: ev.BackendNodeID}); err != nil {
			return fmt.Errorf("set the chosen files: %w", err)
		}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &actionFailure{kind: "TimeoutError", msg: fmt.Sprintf("upload_file: clicking %s opened no file chooser within %s; give the bid of the file input or of what opens it", what, chooserWait)}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// saveScreenshot writes the observation's screenshot to the screenshot
// directory and sets screenshot_path, as OpenHands' runtime does. A
// failure to save is logged: the observation still carries the image.
func (b *Browser) saveScreenshot(o *eventbus.BrowserOutputObservation) {
	if b.cfg.shotDir == "" || o.Screenshot == "" {
		return
	}
	data, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(o.Screenshot, "data:image/png;base64,"))
	if err == nil {
		err = os.MkdirAll(b.cfg.shotDir, 0o755)
	}
	p := filepath.Join(b.cfg.shotDir, "screenshot_"+time.Now().UTC().Format("20060102_150405_000000")+".png")
	if err == nil {
		err = os.WriteFile(p, data, 0o644)
	}
	if err != nil {
		b.cfg.logger.Warn("save the browser screenshot", "dir", b.cfg.shotDir, "err", err)
		return
	}
	o.ScreenshotPath = &p
}
