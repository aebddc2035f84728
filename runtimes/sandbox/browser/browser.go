package browser

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// ErrNoChromium means no Chromium binary was found. The message says how to
// get one; callers show it to the agent as it is.
var ErrNoChromium = errors.New("there is no Chromium browser in this image/host, so browse actions cannot run. " +
	"Use the full Docker image (build it with `corral image build`) or install Debian's chromium " +
	"(`apt-get install chromium`), or point CORRAL_CHROMIUM at a Chromium/Chrome binary")

// ErrClosed is returned by actions on a closed Browser.
var ErrClosed = errors.New("the browser is closed")

// chromiumNames are the binaries looked up on PATH, in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome"}

const (
	defaultWidth, defaultHeight = 1280, 720
	// startTimeout bounds the start of Chromium; a loaded CI machine can
	// need several seconds.
	startTimeout = 60 * time.Second
	// observeGrace is the time left to read the page after an action ran
	// out of its own time, so that the agent still sees where it is.
	observeGrace = 15 * time.Second
)

type config struct {
	chromium    string
	downloadDir string
	workDir     string
	shotDir     string
	logger      *slog.Logger
	width       int
	height      int
}

// Option configures a Browser.
type Option func(*config)

// WithChromium sets the Chromium binary; the default is $CORRAL_CHROMIUM,
// else the first of chromium, chromium-browser, google-chrome on PATH.
func WithChromium(path string) Option { return func(c *config) { c.chromium = path } }

// WithDownloadDir sets where downloads land (created on first use); the
// default is <work dir>/.downloads, as OpenHands' /workspace/.downloads.
func WithDownloadDir(dir string) Option { return func(c *config) { c.downloadDir = dir } }

// WithWorkDir sets the directory relative upload_file paths resolve
// against (the agent's working directory); the default is the process's.
func WithWorkDir(dir string) Option { return func(c *config) { c.workDir = dir } }

// WithScreenshotDir makes every observation's screenshot be saved there
// too (screenshot_path), as OpenHands' runtime does in
// <workspace>/.browser_screenshots; off by default.
func WithScreenshotDir(dir string) Option { return func(c *config) { c.shotDir = dir } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithWindowSize sets the viewport size in CSS pixels (default 1280x720).
func WithWindowSize(width, height int) Option {
	return func(c *config) { c.width, c.height = width, height }
}

// Browser is one headless Chromium for one session. It starts on first
// use and is safe for concurrent use: actions run one at a time.
type Browser struct {
	cfg config

	// life ends at Close, so that Close does not wait for a long action:
	// every action's context ends with it.
	life       context.Context
	lifeCancel context.CancelFunc

	mu          sync.Mutex // one action at a time; guards everything below
	closed      bool
	started     bool
	dataDir     string
	allocCancel context.CancelFunc
	root        context.Context // holds the browser connection, no tab
	rootCancel  context.CancelFunc
	tabs        []*tab
	active      int
}

// New returns a Browser that starts Chromium on its first action. It does
// not look for the binary yet, so building one is cheap.
func New(opts ...Option) *Browser {
	cfg := config{width: defaultWidth, height: defaultHeight}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.workDir == "" {
		if wd, err := os.Getwd(); err == nil {
			cfg.workDir = wd
		}
	}
	if cfg.downloadDir == "" && cfg.workDir != "" {
		cfg.downloadDir = filepath.Join(cfg.workDir, ".downloads")
	}
	b := &Browser{cfg: cfg}
	b.life, b.lifeCancel = context.WithCancel(context.Background())
	return b
}

// FindChromium returns the Chromium binary to run: explicit if not empty,
// else $CORRAL_CHROMIUM, else the first known name on PATH. It wraps
// ErrNoChromium when there is none.
func FindChromium(explicit string) (string, error) {
	if explicit == "" {
		explicit = os.Getenv("CORRAL_CHROMIUM")
	}
	if explicit != "" {
		p, err := exec.LookPath(explicit)
		if err != nil {
			return "", fmt.Errorf("chromium %q is not an executable (%v): %w", explicit, err, ErrNoChromium)
		}
		return p, nil
	}
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", ErrNoChromium
}

// startLocked starts Chromium and opens the first tab. b.mu is held.
func (b *Browser) startLocked(ctx context.Context) error {
	if b.closed {
		return ErrClosed
	}
	if b.started {
		return nil
	}
	bin, err := FindChromium(b.cfg.chromium)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "corral-chromium-")
	if err != nil {
		return fmt.Errorf("create the browser's user data directory: %w", err)
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), b.execOptions(bin, dir)...)
	root, rootCancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(b.logf), chromedp.WithErrorf(b.debugf))
	fail := func(err error) error {
		rootCancel()
		allocCancel()
		_ = os.RemoveAll(dir)
		return err
	}
	// The first command on root must run on root itself: chromedp keeps
	// the browser for as long as that command's context lives. A slow
	// start or an ended ctx cancels root, which stops the browser.
	timer := time.AfterFunc(startTimeout, rootCancel)
	stop := context.AfterFunc(ctx, rootCancel)
	stopLife := context.AfterFunc(b.life, rootCancel)
	// Targets starts the browser without attaching to a tab, so that every
	// tab, the first included, is one we own and may close.
	infos, err := chromedp.Targets(root)
	timer.Stop()
	stop()
	stopLife()
	if err == nil && root.Err() != nil {
		err = root.Err()
	}
	if err != nil {
		return fail(fmt.Errorf("start chromium %s (within %s): %w", bin, startTimeout, err))
	}
	b.root, b.rootCancel, b.allocCancel, b.dataDir, b.started = root, rootCancel, allocCancel, dir, true
	if err := b.setDownloads(); err != nil {
		b.shutdownLocked()
		return err
	}
	for _, ti := range infos {
		if ti.Type == "page" {
			if err := b.adoptLocked(ti.TargetID); err != nil {
				b.shutdownLocked()
				return fmt.Errorf("attach to the first tab: %w", err)
			}
			return nil
		}
	}
	if _, err := b.newTabLocked(); err != nil {
		b.shutdownLocked()
		return fmt.Errorf("open the first tab: %w", err)
	}
	return nil
}

// execOptions are Chromium's command line: headless, no sandbox (it runs
// as root in containers), no GPU, no first-run or background traffic.
func (b *Browser) execOptions(bin, dataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(dataDir),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// A page restored from the back-forward cache fires no load event,
		// so go_back would wait for one forever (Playwright disables it too).
		chromedp.Flag("disable-back-forward-cache", true),
		chromedp.Flag("disable-features", "BackForwardCache"),
		chromedp.WindowSize(b.cfg.width, b.cfg.height),
	}
}

// setDownloads makes downloads land in the download directory.
func (b *Browser) setDownloads() error {
	if b.cfg.downloadDir == "" {
		return nil
	}
	if err := os.MkdirAll(b.cfg.downloadDir, 0o755); err != nil {
		return fmt.Errorf("create the download directory: %w", err)
	}
	_, err := chromedp.CallBrowser(b.root, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: b.cfg.downloadDir,
	})
	if err != nil {
		return fmt.Errorf("set the download directory %s: %w", b.cfg.downloadDir, err)
	}
	return nil
}

func (b *Browser) logf(format string, args ...any) {
	b.cfg.logger.Debug("chromedp: " + fmt.Sprintf(format, args...))
}

func (b *Browser) debugf(format string, args ...any) {
	b.cfg.logger.Debug("chromedp error: " + fmt.Sprintf(format, args...))
}

// Close stops Chromium (and every process it started) and removes its
// user data directory. It waits for a running action to end; actions end
// early because their contexts are tied to the browser. Idempotent.
func (b *Browser) Close() error {
	b.lifeCancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.shutdownLocked()
}

// shutdownLocked stops the browser process and removes the data dir.
func (b *Browser) shutdownLocked() error {
	if !b.started {
		return nil
	}
	for _, t := range b.tabs {
		t.cancel()
	}
	b.tabs, b.active = nil, 0
	b.rootCancel()
	b.allocCancel()
	b.started = false
	if err := os.RemoveAll(b.dataDir); err != nil {
		return fmt.Errorf("remove the browser's user data directory: %w", err)
	}
	return nil
}
