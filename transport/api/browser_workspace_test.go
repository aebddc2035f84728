package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The web UI as a workspace, driven in headless Chromium over DevTools
// against the real engine with the local runtime: the terminal under a
// large live stream, Ctrl-C, timed-out observations, the file browser, a
// Python cell, delete, and a 400 px wide window.

// workspacePage is an open session page in Chromium.
type workspacePage struct {
	t    *testing.T
	ctx  context.Context
	c    *cdp
	f    *realFixture
	id   string
	work string // the session's workspace on this host
}

func openWorkspace(t *testing.T, timeout time.Duration) *workspacePage {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	c := startChromium(t, ctx)
	f := newRealFixture(t, nil)
	id := f.readySession()
	var s Session
	f.mustJSON("GET", "/api/sessions/"+id, nil, 200, &s)
	p := &workspacePage{t: t, ctx: ctx, c: c, f: f, id: id, work: s.Workspace}
	c.navigate(ctx, f.ts.URL+"/#/sessions/"+id)
	p.wait("the session page to go live", `document.readyState === "complete" && typeof state === "object" && !!state.session && document.getElementById("sv-conn").textContent === "live"`)
	return p
}

func (p *workspacePage) eval(expr string) json.RawMessage { return p.c.eval(p.ctx, expr) }

func (p *workspacePage) wait(what, expr string) { p.t.Helper(); waitTrue(p.ctx, p.t, p.c, what, expr) }

// run types a command into the terminal's command line and runs it; it
// returns the id of its action once the terminal shows it.
func (p *workspacePage) run(command string) int64 {
	p.t.Helper()
	p.eval(fmt.Sprintf(`document.getElementById("cmd-input").checked = false; document.getElementById("cmd").value = %q; document.getElementById("run-btn").click(); true`, command))
	find := fmt.Sprintf(`(() => { for (const b of state.term.blocks.values()) if (b.el.querySelector(".tb-cmd").textContent === %q) return b.id; return null; })()`, "$ "+command)
	p.wait("the command "+command+" in the terminal", find+` !== null`)
	id, err := strconv.ParseInt(string(p.eval(find)), 10, 64)
	if err != nil {
		p.t.Fatalf("action id of %q: %v", command, err)
	}
	return id
}

// ended waits for the observation of action id in the terminal and returns
// its end line and exit code.
func (p *workspacePage) ended(id int64) (end string, exit int) {
	p.t.Helper()
	p.wait(fmt.Sprintf("the observation of action %d", id), fmt.Sprintf(`!!state.term.blocks.get(%d) && state.term.blocks.get(%d).done`, id, id))
	var r struct {
		End  string
		Exit string
	}
	raw := p.eval(fmt.Sprintf(`(() => { const b = state.term.blocks.get(%d).el; return {End: b.querySelector(".tb-end").textContent, Exit: b.dataset.exit || ""}; })()`, id))
	if err := json.Unmarshal(raw, &r); err != nil {
		p.t.Fatalf("decode %s: %v", raw, err)
	}
	exit, err := strconv.Atoi(r.Exit)
	if err != nil {
		p.t.Fatalf("action %d ended without an exit code: %q", id, r.End)
	}
	return r.End, exit
}

func (p *workspacePage) termText() string {
	var s string
	_ = json.Unmarshal(p.eval(`document.getElementById("term").innerText`), &s)
	return s
}

// TestBrowserTerminalStreamsLargeOutputAndStaysResponsive: `seq 1 300000`
// streams live into the open page; DevTools round trips stay fast while it
// renders, the terminal ends showing 300000 at the bottom, the DOM stays
// bounded and no PS1 protocol block is ever shown.
func TestBrowserTerminalStreamsLargeOutputAndStaysResponsive(t *testing.T) {
	p := openWorkspace(t, 3*time.Minute)
	quiet := p.run("cd .") // prints nothing: its output is only the PS1 block
	if end, exit := p.ended(quiet); exit != 0 {
		t.Fatalf("cd .: exit %d (%s)", exit, end)
	}

	p.eval(`document.getElementById("cmd").value = "seq 1 300000"; document.getElementById("run-btn").click(); true`)
	// Probe the page while the output streams in and renders, until the
	// command's observation is shown.
	var probes []time.Duration
	done := `(() => { for (const b of state.term.blocks.values()) if (b.el.querySelector(".tb-cmd").textContent === "$ seq 1 300000") return b.done; return false; })()`
	for deadline := time.Now().Add(2 * time.Minute); ; {
		start := time.Now()
		fin := string(p.eval(done)) == "true"
		probes = append(probes, time.Since(start))
		if fin {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seq 1 300000 did not finish in the page in 2 minutes; probes %v", probes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(probes)
	worst, median := probes[len(probes)-1], probes[len(probes)/2]
	t.Logf("%d DevTools round trips while streaming: median %v, max %v", len(probes), median, worst)
	// The target is 500 ms (logged above, met on a quiet machine:
	// max 35-220 ms). The check only catches a frozen tab (the old UI took
	// minutes): on a loaded CI machine one probe took 559 ms, so a bound
	// near the target would fail on the machine, not on the page.
	if worst > 5*time.Second {
		t.Errorf("the page was unresponsive while streaming: slowest DevTools round trip %v (median %v, %d probes)", worst, median, len(probes))
	}

	var r struct {
		Live, Following bool
		LastLine        string
		Lines, Chunks   int
	}
	raw := p.eval(`(() => {
		const term = document.getElementById("term");
		let b; for (const x of state.term.blocks.values()) if (x.el.querySelector(".tb-cmd").textContent === "$ seq 1 300000") b = x;
		const chunks = b.el.querySelectorAll(".tb-chunk");
		if (chunks.length === 0) return {LastLine: "(no output shown)"};
		const last = chunks[chunks.length - 1];
		const lines = last.textContent.split("\n");
		const lr = last.getBoundingClientRect(), tr = term.getBoundingClientRect();
		return {Live: b.live, Following: lr.bottom <= tr.bottom + 1 && lr.bottom > tr.top,
			LastLine: lines[lines.length - 1], Lines: term.innerText.split("\n").length, Chunks: term.querySelectorAll(".tb-chunk").length};
	})()`)
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	t.Logf("terminal: %d lines in %d chunks in the DOM", r.Lines, r.Chunks)
	if !r.Live {
		t.Errorf("the output never streamed live into the terminal (only the observation was shown)")
	}
	if r.LastLine != "300000" || !r.Following {
		t.Errorf("the terminal ends with %q (in view: %v), want 300000 at the bottom of the view", r.LastLine, r.Following)
	}
	if r.Lines > 2*5000+100 {
		t.Errorf("the terminal holds %d lines in the DOM, want it capped near its 5000-line scrollback", r.Lines)
	}
	if text := p.termText(); strings.Contains(text, "PS1JSON") || strings.Contains(text, "PS1END") {
		t.Errorf("the terminal shows a PS1 protocol block")
	}
	if sel := string(p.eval(`(() => { const s = getSelection(); s.selectAllChildren(document.getElementById("term")); const t = s.toString(); s.removeAllRanges(); return t.includes("299999\n300000\n"); })()`)); sel != "true" {
		t.Errorf("the output is not selectable text in the page")
	}
}

// TestBrowserCtrlCInterruptsTheRunningCommand: the Ctrl-C button and Ctrl-C
// on the keyboard end a sleeping command, a loop that prints and one that
// only burns CPU; the command's own observation comes back with exit code
// 130 (it is waited for; the time it took is logged).
func TestBrowserCtrlCInterruptsTheRunningCommand(t *testing.T) {
	p := openWorkspace(t, 4*time.Minute)
	commands := []struct{ name, cmd, started string }{
		{"sleep", "echo started-sleep; sleep 100", "started-sleep"},
		{"busy loop", "while true; do echo tick; sleep 0.5; done", "tick"},
		{"CPU loop", "echo started-spin; while :; do :; done", "started-spin"},
	}
	how := []struct{ name, js string }{
		{"button", `document.getElementById("ctrlc-btn").click()`},
		{"keyboard", ""}, // a real key press through DevTools
	}
	for _, h := range how {
		for _, c := range commands {
			t.Run(h.name+" on "+c.name, func(t *testing.T) {
				p.t = t
				id := p.run(c.cmd)
				p.wait("the command to run", fmt.Sprintf(`state.term.blocks.get(%d).out.textContent.includes(%q)`, id, c.started))
				sent := time.Now()
				if h.js != "" {
					p.eval(h.js + "; true")
				} else {
					p.eval(`document.getElementById("cmd").focus(); true`)
					pressCtrl(p.ctx, p.c, "c")
				}
				end, exit := p.ended(id)
				t.Logf("observation after %v: %s", time.Since(sent), end)
				if exit != 130 {
					t.Fatalf("exit code %d after Ctrl-C (%s), want 130", exit, end)
				}
				if !strings.Contains(end, "130") {
					t.Errorf("the end line %q does not show the exit code", end)
				}
				if errText := string(p.eval(`document.getElementById("cmd-error").textContent`)); errText != `""` {
					t.Errorf("the UI shows an error: %s", errText)
				}
			})
		}
	}
}

// pressCtrl sends Ctrl+key to the focused element as real key events.
func pressCtrl(ctx context.Context, c *cdp, key string) {
	code := "Key" + strings.ToUpper(key)
	vk := int(strings.ToUpper(key)[0])
	c.call(ctx, "Input.dispatchKeyEvent", map[string]any{"type": "rawKeyDown", "modifiers": 2, "key": key, "code": code, "windowsVirtualKeyCode": vk}, nil)
	c.call(ctx, "Input.dispatchKeyEvent", map[string]any{"type": "keyUp", "modifiers": 2, "key": key, "code": code, "windowsVirtualKeyCode": vk}, nil)
}

// TestBrowserShowsTimeoutsHistoryAndInput: a timed-out observation shows
// OpenHands' suffix in the terminal and the event log and switches the
// command line to is_input; the next line goes to the waiting command;
// Up recalls earlier commands.
func TestBrowserShowsTimeoutsHistoryAndInput(t *testing.T) {
	p := openWorkspace(t, 2*time.Minute)
	var act struct{ ID int64 }
	p.f.mustJSON("POST", "/api/sessions/"+p.id+"/actions", map[string]any{"action": "run", "timeout": 1,
		"args": map[string]any{"command": `read -p "name? " n; echo "hello $n"`}}, 202, &act)
	end, exit := p.ended(act.ID)
	if exit != -1 || !strings.Contains(end, "[The command timed out after 1.0 seconds.") {
		t.Fatalf("timed-out command: exit %d, end line %q; want -1 and OpenHands' timeout suffix", exit, end)
	}
	p.wait("the event log shows the suffix", `[...document.querySelectorAll("#log .ev.obs .suffix")].some(s => s.textContent.startsWith("[The command timed out after 1.0 seconds."))`)
	p.wait("the command line in is_input mode", `document.getElementById("cmd-input").checked && document.getElementById("prompt").textContent === "⌨"`)

	p.eval(`document.getElementById("cmd").value = "corral"; document.getElementById("run-btn").click(); true`)
	p.wait("the input's output", `document.getElementById("term").innerText.includes("hello corral")`)
	p.wait("is_input mode off once the command ended", `!document.getElementById("cmd-input").checked`)

	// Ctrl-C on a command that timed out (no action in flight) sends
	// OpenHands' C-c input, whose observation ends it.
	p.f.mustJSON("POST", "/api/sessions/"+p.id+"/actions", map[string]any{"action": "run", "timeout": 1,
		"args": map[string]any{"command": "sleep 100"}}, 202, &act)
	if _, exit := p.ended(act.ID); exit != -1 {
		t.Fatalf("sleep 100 with timeout 1: exit %d, want -1", exit)
	}
	p.wait("is_input mode", `document.getElementById("cmd-input").checked`)
	p.eval(`document.getElementById("ctrlc-btn").click(); true`)
	p.wait("the C-c input's observation", `[...state.term.blocks.values()].some(b => b.el.querySelector(".tb-cmd").textContent === "⌨ C-c" && b.el.dataset.exit === "130")`)
	p.wait("is_input mode off", `!document.getElementById("cmd-input").checked && document.getElementById("prompt").textContent === "$"`)

	first := p.run("echo first")
	p.ended(first)
	p.eval(`document.getElementById("cmd").focus(); true`)
	for _, want := range []string{"echo first", ""} {
		key := "ArrowUp"
		if want == "" {
			key = "ArrowDown"
		}
		p.c.call(p.ctx, "Input.dispatchKeyEvent", map[string]any{"type": "rawKeyDown", "key": key, "code": key, "windowsVirtualKeyCode": map[string]int{"ArrowUp": 38, "ArrowDown": 40}[key]}, nil)
		p.c.call(p.ctx, "Input.dispatchKeyEvent", map[string]any{"type": "keyUp", "key": key, "code": key}, nil)
		if got := string(p.eval(`document.getElementById("cmd").value`)); got != strconv.Quote(want) {
			t.Fatalf("after %s the command line holds %s, want %q", key, got, want)
		}
	}
}

// TestBrowserFileBrowserOpensEditsSavesAndUploads: the Files tab lists the
// workspace, opens a file with line numbers (read action), saves an edit
// (write action) that lands on disk, enters a directory and uploads a file
// into it; the Python tab runs a cell.
func TestBrowserFileBrowserOpensEditsSavesAndUploads(t *testing.T) {
	p := openWorkspace(t, 2*time.Minute)
	if err := os.WriteFile(filepath.Join(p.work, "notes.txt"), []byte("one\ntwo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(p.work, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.eval(`document.querySelector('.tab[data-tab="files"]').click(); true`)
	p.wait("the listing", `[...document.querySelectorAll("#fb-list .fb-open")].some(b => b.dataset.name === "notes.txt")`)
	p.eval(`[...document.querySelectorAll("#fb-list .fb-open")].find(b => b.dataset.name === "notes.txt").click(); true`)
	p.wait("the file with line numbers", `document.querySelector("#fb-code .src") && document.querySelector("#fb-code .src").textContent === "one\ntwo" && document.querySelector("#fb-code .ln").textContent === "1\n2"`)

	p.eval(`document.getElementById("fb-edit").click(); document.getElementById("fb-editor").value = "one\nTWO\nthree\n"; document.getElementById("fb-save").click(); true`)
	p.wait("saved", `document.getElementById("fb-status").textContent.startsWith("saved")`)
	if b, err := os.ReadFile(filepath.Join(p.work, "notes.txt")); err != nil || string(b) != "one\nTWO\nthree\n" {
		t.Fatalf("notes.txt on disk after Save: %q, %v", b, err)
	}
	p.wait("the saved text shown", `document.querySelector("#fb-code .ln").textContent === "1\n2\n3"`)
	p.wait("the write action in the event log", `[...document.querySelectorAll("#log .ev.action .cmdline")].some(d => d.textContent.startsWith("write ") && d.textContent.endsWith("/notes.txt"))`)

	p.eval(`[...document.querySelectorAll("#fb-list .fb-open")].find(b => b.dataset.name === "sub/").click(); true`)
	p.wait("inside sub/", `[...document.querySelectorAll("#fb-crumbs .crumb")].map(b => b.textContent).join("/") === "workspace/sub"`)
	upload := filepath.Join(t.TempDir(), "up.txt")
	if err := os.WriteFile(upload, []byte("uploaded\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	setFileInput(p.ctx, p.c, "#fb-upload", upload)
	p.wait("the uploaded file listed", `[...document.querySelectorAll("#fb-list .fb-open")].some(b => b.dataset.name === "up.txt")`)
	if b, err := os.ReadFile(filepath.Join(p.work, "sub", "up.txt")); err != nil || string(b) != "uploaded\n" {
		t.Fatalf("sub/up.txt on disk after upload: %q, %v", b, err)
	}
	status := p.eval(`fetch(sessionPath("/files/download") + "?path=" + encodeURIComponent(absPath("sub/up.txt")), {headers: authHeaders()}).then(r => r.status)`)
	if string(status) != "200" {
		t.Errorf("download of sub/up.txt: status %s", status)
	}

	p.eval(`document.querySelector('.tab[data-tab="py"]').click(); document.getElementById("py-code").value = "print(6*7)"; document.getElementById("py-run").click(); true`)
	p.wait("the cell's output", `[...document.querySelectorAll("#py-cells .py-out")].some(o => o.textContent.startsWith("42\n"))`)
	if errText := string(p.eval(`document.getElementById("cmd-error").textContent`)); errText != `""` {
		t.Errorf("the UI shows an error: %s", errText)
	}
}

// setFileInput chooses a file in a file input, as a user would.
func setFileInput(ctx context.Context, c *cdp, selector, path string) {
	var doc struct {
		Root struct {
			NodeID int `json:"nodeId"`
		} `json:"root"`
	}
	c.call(ctx, "DOM.getDocument", map[string]any{}, &doc)
	var q struct {
		NodeID int `json:"nodeId"`
	}
	c.call(ctx, "DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": selector}, &q)
	c.call(ctx, "DOM.setFileInputFiles", map[string]any{"nodeId": q.NodeID, "files": []string{path}}, nil)
}

// TestBrowserDeleteRemovesTheSessionWithItsEvents: the session list names
// the node; Delete (confirmed, with its events) removes the session from
// the list and its events from the store.
func TestBrowserDeleteRemovesTheSessionWithItsEvents(t *testing.T) {
	p := openWorkspace(t, 2*time.Minute)
	p.ended(p.run("echo bye"))
	host, _ := os.Hostname()
	p.wait("the node in the session list", fmt.Sprintf(`document.querySelector("#sessions li .meta").textContent.startsWith(%q)`, host+" · local"))
	p.eval(`document.getElementById("sv-delete").click(); true`)
	p.wait("the confirmation", `!document.getElementById("delete-confirm").classList.contains("hidden")`)
	p.eval(`document.getElementById("delete-yes").click(); true`)
	p.wait("the session gone from the list", `document.querySelectorAll("#sessions li").length === 0 && document.getElementById("session-view").classList.contains("hidden")`)
	if code, body, _ := p.f.do("GET", "/api/sessions/"+p.id+"/events", nil); code != 404 {
		t.Fatalf("events of the deleted session: %d %s, want 404", code, body)
	}
}

// TestBrowserNarrowWindowHasNoHorizontalScroll: at 400 px wide, every tab
// with long unbroken output and a long file fits the width.
func TestBrowserNarrowWindowHasNoHorizontalScroll(t *testing.T) {
	p := openWorkspace(t, 2*time.Minute)
	p.c.call(p.ctx, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 400, "height": 800, "deviceScaleFactor": 1, "mobile": false}, nil)
	long := strings.Repeat("x", 600)
	if err := os.WriteFile(filepath.Join(p.work, strings.Repeat("long-name-", 8)+".txt"), []byte(long+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.ended(p.run("printf '" + long + "\\n'; echo a-very-long-word-" + long))
	noScroll := `document.documentElement.scrollWidth <= document.documentElement.clientWidth && document.body.scrollWidth <= document.documentElement.clientWidth`
	for _, tab := range []string{"term", "files", "py", "events"} {
		p.eval(fmt.Sprintf(`document.querySelector('.tab[data-tab="%s"]').click(); true`, tab))
		if tab == "files" {
			p.wait("the listing", `document.querySelectorAll("#fb-list .fb-open").length > 0`)
			p.eval(`[...document.querySelectorAll("#fb-list .fb-open")].find(b => b.dataset.name.startsWith("long-name")).click(); true`)
			p.wait("the long file open", `!!document.querySelector("#fb-code .src")`)
		}
		if got := string(p.eval(noScroll)); got != "true" {
			t.Errorf("tab %s at 400 px: scrollWidth %s > clientWidth %s", tab, p.eval(`document.documentElement.scrollWidth`), p.eval(`document.documentElement.clientWidth`))
		}
	}
	p.eval(`document.getElementById("nav-toggle").click(); true`)
	p.wait("the sessions drawer", `document.getElementById("sidebar").getBoundingClientRect().width > 0`)
	if got := string(p.eval(noScroll)); got != "true" {
		t.Errorf("sessions drawer at 400 px: scrollWidth %s", p.eval(`document.documentElement.scrollWidth`))
	}
	// Without a session open, the list is the page.
	p.c.navigate(p.ctx, "about:blank")
	p.wait("the page left", `location.href === "about:blank"`)
	p.c.navigate(p.ctx, p.f.ts.URL+"/")
	p.wait("the start page", `document.readyState === "complete" && !!document.getElementById("sessions") && document.querySelectorAll("#sessions li").length === 1 && !document.body.classList.contains("has-session")`)
	if got := string(p.eval(noScroll + ` && document.getElementById("new-session-btn").getBoundingClientRect().width > 0`)); got != "true" {
		t.Errorf("start page at 400 px: scrollWidth %s, or the new-session form is hidden", p.eval(`document.documentElement.scrollWidth`))
	}
}

// TestBrowserEventsShowTheBrowseScreenshot: a browse action's observation
// in the Events tab shows its content and the page's screenshot, decoded
// by the browser (the session's Chromium browses a page this test serves
// on loopback; the UI's Chromium shows the result).
func TestBrowserEventsShowTheBrowseScreenshot(t *testing.T) {
	p := openWorkspace(t, 3*time.Minute)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<html><body style="background:#e33"><h1>Shot page</h1></body></html>`)
	}))
	t.Cleanup(site.Close)
	// This test is about the page showing the observation; browse itself is
	// tested in runtimes/sandbox/browser. One retry keeps a slow first
	// Chromium start on a loaded machine from failing it (the first answer
	// is logged).
	var obs map[string]any
	for try := 1; ; try++ {
		obs = nil
		p.f.mustJSON("POST", "/api/sessions/"+p.id+"/actions?wait=true",
			map[string]any{"action": "browse", "args": map[string]any{"url": site.URL + "/"}}, 200, &obs)
		if obs["observation"] == "browse" && strings.Contains(fmt.Sprint(obs["content"]), "Shot page") {
			break
		}
		if try == 2 {
			t.Fatalf("browse observation: %v %v", obs["observation"], obs["content"])
		}
		t.Logf("browse attempt %d: %v %v", try, obs["observation"], obs["content"])
	}
	p.eval(`document.querySelector('[data-tab="events"]').click(); true`)
	p.wait("the screenshot decoded in the Events tab", `(() => { const i = document.querySelector("#tab-events img.shot"); return !!i && i.complete && i.naturalWidth > 100; })()`)
	p.wait("the page text beside it", `document.getElementById("tab-events").innerText.includes("Shot page")`)
}
