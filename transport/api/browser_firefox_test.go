package api

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// firefoxPath finds Firefox: $CORRAL_FIREFOX, then the usual names on PATH.
func firefoxPath() string {
	if p := os.Getenv("CORRAL_FIREFOX"); p != "" {
		return p
	}
	for _, n := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// bidi is a minimal WebDriver BiDi client (Firefox's remote protocol) for
// one browsing context.
type bidi struct {
	t       *testing.T
	conn    *websocket.Conn
	next    int
	context string
}

func (c *bidi) call(ctx context.Context, method string, params any, result any) {
	c.t.Helper()
	c.next++
	id := c.next
	if params == nil {
		params = map[string]any{}
	}
	msg, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err := c.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		c.t.Fatalf("bidi %s: %v", method, err)
	}
	for {
		_, b, err := c.conn.Read(ctx)
		if err != nil {
			c.t.Fatalf("bidi %s: %v", method, err)
		}
		var res struct {
			ID      int             `json:"id"`
			Type    string          `json:"type"`
			Result  json.RawMessage `json:"result"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
		}
		if json.Unmarshal(b, &res) != nil || res.Type == "event" || res.ID != id {
			continue
		}
		if res.Type == "error" {
			c.t.Fatalf("bidi %s: %s: %s", method, res.Error, res.Message)
		}
		if result != nil {
			if err := json.Unmarshal(res.Result, result); err != nil {
				c.t.Fatalf("bidi %s: decode %s: %v", method, res.Result, err)
			}
		}
		return
	}
}

func (c *bidi) navigate(ctx context.Context, url string) {
	c.call(ctx, "browsingContext.navigate", map[string]any{"context": c.context, "url": url, "wait": "complete"}, nil)
}

func (c *bidi) eval(ctx context.Context, expr string) json.RawMessage {
	c.t.Helper()
	var r struct {
		Type   string `json:"type"`
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	c.call(ctx, "script.evaluate", map[string]any{"expression": expr, "target": map[string]any{"context": c.context}, "awaitPromise": true}, &r)
	if r.Type == "exception" {
		c.t.Fatalf("evaluate %q: %s", expr, r.ExceptionDetails.Text)
	}
	switch r.Result.Type {
	case "undefined", "null":
		return json.RawMessage("null")
	}
	return r.Result.Value
}

func (c *bidi) screenshot(ctx context.Context) []byte {
	var r struct {
		Data string `json:"data"`
	}
	c.call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": c.context}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		c.t.Fatalf("screenshot: %v", err)
	}
	return png
}

// startFirefox runs headless Firefox in its own process group with
// WebDriver BiDi on a free port and opens a BiDi session on its first tab.
func startFirefox(t *testing.T, ctx context.Context) *bidi {
	t.Helper()
	bin := firefoxPath()
	if bin == "" {
		if os.Getenv("CORRAL_REQUIRE_BROWSER") == "1" {
			t.Fatal("no Firefox found and CORRAL_REQUIRE_BROWSER=1: apt-get install -y firefox-esr, or set CORRAL_FIREFOX")
		}
		t.Skip("no Firefox on this machine (apt-get install -y firefox-esr, or set CORRAL_FIREFOX); set CORRAL_REQUIRE_BROWSER=1 to make this a failure")
	}
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-remote", "--profile", profile, "--remote-debugging-port", "0",
		"--width", "1280", "--height", "800", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "HOME="+profile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	// Firefox prints "WebDriver BiDi listening on ws://127.0.0.1:PORT".
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-time.After(60 * time.Second):
		t.Fatalf("Firefox announced no WebDriver BiDi endpoint in 60s")
	}
	conn, _, err := websocket.Dial(ctx, wsURL+"/session", nil)
	if err != nil {
		t.Fatalf("connect to WebDriver BiDi at %s: %v", wsURL, err)
	}
	conn.SetReadLimit(64 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	c := &bidi{t: t, conn: conn}
	c.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}, nil)
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	c.call(ctx, "browsingContext.getTree", nil, &tree)
	if len(tree.Contexts) == 0 {
		t.Fatal("Firefox has no browsing context")
	}
	c.context = tree.Contexts[0].Context
	return c
}
