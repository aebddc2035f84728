package sandbox

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"time"

	"corral/eventbus"
	"corral/runtimes/sandbox/browser"
)

// browserState is the executor's Chromium: started on the first browse
// action, closed with the executor.
type browserState struct {
	mu     sync.Mutex
	b      *browser.Browser
	closed bool
	// interrupt cancels the browse action in flight (nil when none runs).
	interrupt context.CancelFunc
}

// getBrowser returns the session's browser, creating it (not starting
// Chromium yet) on first use.
func (x *Executor) getBrowser() (*browser.Browser, error) {
	s := &x.browser
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, browser.ErrClosed
	}
	if s.b == nil {
		s.b = browser.New(
			browser.WithWorkDir(x.cfg.workDir),
			browser.WithDownloadDir(filepath.Join(x.cfg.workDir, ".downloads")),
			browser.WithScreenshotDir(filepath.Join(x.cfg.workDir, ".browser_screenshots")),
			browser.WithLogger(x.cfg.logger),
		)
	}
	return s.b, nil
}

// closeBrowser stops Chromium, if it runs, and ends a browse action in
// flight. Called by Close.
func (x *Executor) closeBrowser() {
	s := &x.browser
	s.mu.Lock()
	b := s.b
	s.closed = true
	s.mu.Unlock()
	if b != nil {
		if err := b.Close(); err != nil {
			x.cfg.logger.Warn("close the browser", "err", err)
		}
	}
}

// browse runs a `browse` (interactive false: goto url) or
// `browse_interactive` (BrowserGym action string) action within timeout
// seconds and returns OpenHands' BrowserOutputObservation. A host without
// Chromium gets an error observation saying how to get one.
func (x *Executor) browse(ctx context.Context, interactive bool, arg string, axtree bool, timeout float64) *eventbus.Event {
	b, err := x.getBrowser()
	if err != nil {
		return errorEvent("The browser is not available: " + err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(timeout*float64(time.Second)))
	defer cancel()
	ctx, stop := x.browseInterruptible(ctx)
	defer stop()
	var res *browser.Result
	if interactive {
		res, err = b.Interactive(ctx, arg, axtree)
	} else {
		res, err = b.Browse(ctx, arg, axtree)
	}
	switch {
	case errors.Is(err, browser.ErrNoChromium):
		return errorEvent("Browser functionality is not available: " + err.Error())
	case err != nil:
		return errorEvent("The browser failed: " + err.Error())
	}
	return eventbus.NewObservation(eventbus.InvalidID, res.Content, res.Obs)
}

// browseInterruptible makes ctx end on Interrupt, the way Ctrl-C ends a
// command: the action then reports what the cancelled call left (its
// error names the call), and the browser stays usable. stop must be
// called when the action ends.
func (x *Executor) browseInterruptible(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	s := &x.browser
	s.mu.Lock()
	s.interrupt = cancel
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		s.interrupt = nil
		s.mu.Unlock()
		cancel()
	}
}

// interruptBrowser ends the browse action in flight; it reports whether
// one was running.
func (x *Executor) interruptBrowser() bool {
	s := &x.browser
	s.mu.Lock()
	cancel := s.interrupt
	s.mu.Unlock()
	if cancel == nil {
		return false
	}
	cancel()
	return true
}
