package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// chromiumPath finds a Chromium binary: $CORRAL_CHROMIUM, then the usual
// names on PATH.
func chromiumPath() string {
	if p := os.Getenv("CORRAL_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// cdp is a minimal Chrome DevTools Protocol client over one target's
// WebSocket: send a command, wait for its answer, ignore events.
type cdp struct {
	t    *testing.T
	conn *websocket.Conn
	next int
}

func (c *cdp) call(ctx context.Context, method string, params any, result any) {
	c.t.Helper()
	c.next++
	id := c.next
	msg, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err := c.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		c.t.Fatalf("cdp %s: %v", method, err)
	}
	for {
		_, b, err := c.conn.Read(ctx)
		if err != nil {
			c.t.Fatalf("cdp %s: %v", method, err)
		}
		var res struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &res) != nil || res.ID != id {
			continue // an event
		}
		if res.Error != nil {
			c.t.Fatalf("cdp %s: %s", method, res.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(res.Result, result); err != nil {
				c.t.Fatalf("cdp %s: decode %s: %v", method, res.Result, err)
			}
		}
		return
	}
}

// eval runs a JavaScript expression in the page and returns its JSON value.
func (c *cdp) eval(ctx context.Context, expr string) json.RawMessage {
	c.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	c.call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if r.ExceptionDetails != nil {
		c.t.Fatalf("evaluate %q: %s %s", expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	return r.Result.Value
}

// browser is a page the UI test can drive.
type browser interface {
	navigate(ctx context.Context, url string)
	eval(ctx context.Context, expr string) json.RawMessage
	screenshot(ctx context.Context) []byte
}

// waitTrue polls expr until it evaluates to true.
func waitTrue(ctx context.Context, t *testing.T, b browser, what, expr string) {
	t.Helper()
	// Leave time to read the page when the condition never holds.
	dl, _ := ctx.Deadline()
	wctx, cancel := context.WithDeadline(ctx, dl.Add(-5*time.Second))
	defer cancel()
	for wctx.Err() == nil {
		if string(b.eval(ctx, expr)) == "true" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (%s); page text: %s", what, expr, b.eval(ctx, "document.body.innerText"))
}

func (c *cdp) navigate(ctx context.Context, url string) {
	c.call(ctx, "Page.enable", nil, nil)
	c.call(ctx, "Page.navigate", map[string]any{"url": url}, nil)
}

func (c *cdp) screenshot(ctx context.Context) []byte {
	var shot struct {
		Data string `json:"data"`
	}
	c.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		c.t.Fatalf("screenshot: %v", err)
	}
	return png
}

// startChromium runs headless Chromium in its own process group and
// returns a CDP client attached to its first page.
func startChromium(t *testing.T, ctx context.Context) *cdp {
	t.Helper()
	bin := chromiumPath()
	if bin == "" {
		if os.Getenv("CORRAL_REQUIRE_BROWSER") == "1" {
			t.Fatal("no Chromium found and CORRAL_REQUIRE_BROWSER=1: apt-get install -y chromium, or set CORRAL_CHROMIUM")
		}
		t.Skip("no Chromium on this machine (apt-get install -y chromium, or set CORRAL_CHROMIUM); set CORRAL_REQUIRE_BROWSER=1 to make this a failure")
	}
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-extensions", "--disable-dev-shm-usage",
		"--window-size=1280,800", "--remote-debugging-port=0", "--user-data-dir="+profile, "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the browser and its renderers
		_ = cmd.Wait()
	})
	var port string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort")); err == nil && strings.Contains(string(b), "\n") {
			port = strings.SplitN(string(b), "\n", 2)[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Chromium wrote no DevToolsActivePort in 30s; stderr:\n%s", stderr.String())
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:"+port+"/json/list", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("list DevTools targets: %v", err)
	}
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	err = json.NewDecoder(res.Body).Decode(&targets)
	res.Body.Close()
	if err != nil {
		t.Fatalf("decode DevTools targets: %v", err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			conn, _, err := websocket.Dial(ctx, tg.WS, nil)
			if err != nil {
				t.Fatalf("attach to page: %v", err)
			}
			conn.SetReadLimit(64 << 20) // screenshots are large
			t.Cleanup(func() { conn.CloseNow() })
			return &cdp{t: t, conn: conn}
		}
	}
	t.Fatalf("Chromium has no page target: %+v", targets)
	return nil
}

// TestBrowserCreatesASessionAndRunsACommand drives the embedded UI in
// headless Chromium (DevTools protocol) and Firefox (WebDriver BiDi):
// create a session, run `echo hello` from the command box, see the output
// in the event log, and take a screenshot.
func TestBrowserCreatesASessionAndRunsACommand(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chromium := func(t *testing.T, ctx context.Context) browser { return startChromium(t, ctx) }
	firefox := func(t *testing.T, ctx context.Context) browser { return startFirefox(t, ctx) }
	t.Run("chromium, test engine", func(t *testing.T) { driveUI(t, chromium, newFixture(t, nil).ts.URL, "ui.png") })
	t.Run("chromium, real engine with the local runtime", func(t *testing.T) {
		driveUI(t, chromium, newRealFixture(t, nil).ts.URL, "ui-real.png", stopAndStartAgain)
	})
	t.Run("firefox, test engine", func(t *testing.T) { driveUI(t, firefox, newFixture(t, nil).ts.URL, "ui-firefox.png") })
}

// stopAndStartAgain stops the open session in the UI, starts it again
// with the Start button and runs a command in it.
func stopAndStartAgain(ctx context.Context, t *testing.T, c browser) {
	c.eval(ctx, `document.getElementById("sv-stop").click(); true`)
	waitTrue(ctx, t, c, "the session stopped", `document.getElementById("sv-status").textContent.startsWith("STOPPED") && !document.getElementById("sv-start").disabled`)
	c.eval(ctx, `document.getElementById("sv-start").click(); true`)
	waitTrue(ctx, t, c, "the session running again and live", `document.getElementById("sv-status").textContent.startsWith("RUNNING") && document.getElementById("sv-conn").textContent === "live"`)
	c.eval(ctx, `document.getElementById("cmd").value = "echo hello again"; document.getElementById("run-btn").click(); true`)
	waitTrue(ctx, t, c, "the second command's output",
		`[...document.querySelectorAll("#log .ev.obs pre")].some(p => p.textContent === "hello again")`)
}

func driveUI(t *testing.T, start func(*testing.T, context.Context) browser, base, shotName string, more ...func(context.Context, *testing.T, browser)) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := start(t, ctx)

	c.navigate(ctx, base+"/")
	waitTrue(ctx, t, c, "the page to load", `document.readyState === "complete" && !!document.getElementById("new-session-btn")`)

	c.eval(ctx, `document.getElementById("new-runtime").value = "local"; document.getElementById("new-session-btn").click(); true`)
	waitTrue(ctx, t, c, "the session view to go live",
		`!document.getElementById("session-view").classList.contains("hidden") && document.getElementById("sv-conn").textContent === "live"`)
	waitTrue(ctx, t, c, "the session in the list", `document.querySelectorAll("#sessions li").length === 1 && document.querySelector("#sessions .badge").textContent === "RUNNING"`)

	c.eval(ctx, `document.getElementById("cmd").value = "echo hello"; document.getElementById("run-btn").click(); true`)
	waitTrue(ctx, t, c, "hello in the event log",
		`[...document.querySelectorAll("#log .ev.obs pre")].some(p => p.textContent === "hello")`)
	waitTrue(ctx, t, c, "the command in the event log",
		`[...document.querySelectorAll("#log .ev.action .cmdline")].some(d => d.textContent === "$ echo hello")`)
	waitTrue(ctx, t, c, "the metrics panel", `document.getElementById("m-sessions").textContent === "1"`)
	for _, step := range more {
		step(ctx, t, c)
	}
	if errText := string(c.eval(ctx, `document.getElementById("cmd-error").textContent + document.getElementById("new-error").textContent`)); errText != `""` {
		t.Fatalf("the UI shows an error: %s", errText)
	}

	png := c.screenshot(ctx)
	if len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %d bytes, not a PNG", len(png))
	}
	path := filepath.Join(t.TempDir(), shotName)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("CORRAL_UI_SCREENSHOT_DIR"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, shotName), png, 0o644)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
