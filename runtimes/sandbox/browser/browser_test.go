package browser

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves goroutines behind (chromedp's
// readers and process watchers end only when Close stopped Chromium).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// requireChromium skips when no Chromium is installed, except under
// CORRAL_REQUIRE_DOCKER=1 (CI with the full toolchain), where it fails.
func requireChromium(t testing.TB) {
	t.Helper()
	if _, err := FindChromium(""); err != nil {
		if os.Getenv("CORRAL_REQUIRE_DOCKER") == "1" {
			t.Fatalf("CORRAL_REQUIRE_DOCKER=1 but no Chromium: %v", err)
		}
		t.Skipf("no Chromium on this host (install Debian's chromium): %v", err)
	}
}

// chromiumProcs counts live processes whose command line mentions dir
// (a browser's user data directory: Chromium and all its children).
func chromiumProcs(t testing.TB, dir string) int {
	t.Helper()
	if dir == "" {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) {
			n++
		}
	}
	return n
}

// assertNoChromium waits (bounded) until no process of dir is left.
func assertNoChromium(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for chromiumProcs(t, dir) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d chromium process(es) of %s still run after Close", chromiumProcs(t, dir), dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("user data dir %s not removed after Close: %v", dir, err)
	}
}

// testBrowser is a Browser for one test, closed (and checked for leaked
// processes) at its end. Its work dir is returned too.
func testBrowser(t *testing.T, opts ...Option) (*Browser, string) {
	t.Helper()
	requireChromium(t)
	work := t.TempDir()
	b := New(append([]Option{WithWorkDir(work)}, opts...)...)
	t.Cleanup(func() {
		b.mu.Lock()
		dir := b.dataDir
		b.mu.Unlock()
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		assertNoChromium(t, dir)
	})
	return b, work
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// do runs an action string and fails the test on an infrastructure error.
func do(t *testing.T, b *Browser, actions string) *Result {
	t.Helper()
	r, err := b.Interactive(ctxFor(t, 90*time.Second), actions, false)
	if err != nil {
		t.Fatalf("Interactive(%q): %v", actions, err)
	}
	return r
}

// mustOK runs actions and fails if the browser reports an action error.
func mustOK(t *testing.T, b *Browser, actions string) *Result {
	t.Helper()
	r := do(t, b, actions)
	if r.Obs.Error || r.Obs.LastBrowserActionError != "" {
		t.Fatalf("%s: unexpected error %q", actions, r.Obs.LastBrowserActionError)
	}
	return r
}

// bid reads the bid the page gave to the first element matching css.
func bid(t *testing.T, b *Browser, css string) string {
	t.Helper()
	v := evalActive[string](t, b, fmt.Sprintf(`(document.querySelector(%q) || {getAttribute: () => ""}).getAttribute("bid") || ""`, css))
	if v == "" {
		t.Fatalf("no bid on %s", css)
	}
	return v
}

// evalActive evaluates expr in the active tab.
func evalActive[T any](t *testing.T, b *Browser, expr string) T {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	ctx, cancel := b.actionCtx(ctxFor(t, 30*time.Second), b.activeTab())
	defer cancel()
	v, err := evalJS[T](ctx, expr)
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// site is the fixture web site.
type site struct {
	*httptest.Server
	stop    chan struct{} // releases the slow page's handlers
	slowHit chan struct{} // gets a value when the slow page is requested
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{stop: make(chan struct{}), slowHit: make(chan struct{}, 16)}
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, body)
		}
	}
	mux.HandleFunc("/{$}", page(`<html><head><title>Home</title></head><body>
<h1>Welcome home</h1>
<a id="next" href="/page2">Go to page two</a>
<a id="popup" href="/page2" target="_blank">Open in a new tab</a>
<a id="dl" href="/download">Get the report</a>
<p>Some <b>bold</b> text.</p></body></html>`))
	mux.HandleFunc("/page2", page(`<html><head><title>Two</title></head><body><h1>Page two</h1><a href="/">Back home</a></body></html>`))
	mux.HandleFunc("/form", page(formHTML))
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body><h1>Submitted</h1><ul>")
		for _, k := range []string{"text", "password", "agree", "color", "size", "notes", "day", "level"} {
			fmt.Fprintf(w, "<li>%s=%s</li>", k, strings.Join(r.MultipartForm.Value[k], ","))
		}
		for _, fh := range r.MultipartForm.File["doc"] {
			f, _ := fh.Open()
			data, _ := io.ReadAll(f)
			f.Close()
			fmt.Fprintf(w, "<li>doc=%s:%s</li>", fh.Filename, data)
		}
		fmt.Fprint(w, "</ul></body></html>")
	})
	mux.HandleFunc("/500", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "<html><body><h1>Internal failure</h1><p>The server broke.</p></body></html>")
	})
	mux.HandleFunc("/jserror", page(`<html><body><h1>Script page</h1><script>undefinedFunction();</script><p>After the script.</p></body></html>`))
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body><h1>Slow start</h1>")
		w.(http.Flusher).Flush()
		select {
		case s.slowHit <- struct{}{}:
		default:
		}
		select { // never finishes the page
		case <-r.Context().Done():
		case <-s.stop:
		}
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Disposition", `attachment; filename="report.csv"`)
		io.WriteString(w, "a,b\n1,2\n")
	})
	mux.HandleFunc("/events", page(eventsHTML))
	mux.HandleFunc("/framed", page(`<html><body><h1>Outer</h1><iframe id="f" src="/inner"></iframe></body></html>`))
	mux.HandleFunc("/inner", page(`<html><body><button id="ib" onclick="parent.document.title = 'inner clicked'">Inner button</button></body></html>`))
	mux.HandleFunc("/dynamic", page(`<html><body><button id="add" onclick="const p=document.createElement('p');p.id='new';p.textContent='added';document.body.appendChild(p)">Add</button><p id="old">old</p></body></html>`))
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(s.stop)
		s.Server.Close()
	})
	return s
}

const formHTML = `<html><body><h1>Every input</h1>
<form id="f" action="/submit" method="post" enctype="multipart/form-data">
<label>Text <input id="text" name="text" type="text"></label>
<label>Password <input id="password" name="password" type="password"></label>
<label><input id="agree" name="agree" type="checkbox" value="yes"> Agree</label>
<label><input id="red" name="color" type="radio" value="red"> Red</label>
<label><input id="green" name="color" type="radio" value="green"> Green</label>
<label>Size <select id="size" name="size"><option value="s">Small</option><option value="m">Medium</option><option value="l">Large</option></select></label>
<label>Notes <textarea id="notes" name="notes"></textarea></label>
<label>Day <input id="day" name="day" type="date"></label>
<label>Level <input id="level" name="level" type="range" min="0" max="100" value="10"></label>
<label>Document <input id="doc" name="doc" type="file"></label>
<input id="hidden" type="file" style="display: none"><button type="button" id="pick" onclick="document.getElementById('hidden').click()">Pick a file</button>
<button id="submit" type="submit">Send</button>
</form></body></html>`

const eventsHTML = `<html><head><style>
#drag, #drop { width: 120px; height: 60px; margin: 10px; border: 1px solid black; }
#tall { height: 3000px; }
</style></head><body>
<script>window.log = []; const L = (s) => window.log.push(s);</script>
<button id="dbl" ondblclick="L('dblclick')" onclick="L('click:' + event.button + ':' + event.ctrlKey + ':' + event.shiftKey)"
  oncontextmenu="L('contextmenu'); return false" onauxclick="L('auxclick:' + event.button)">Double me</button>
<div id="hov" onmouseover="L('hover')">Hover me</div>
<button id="alert" onclick="L(confirm('sure?') ? 'confirmed' : 'dismissed')">Ask</button>
<input id="keys" onkeydown="L('key:' + event.key + ':' + event.ctrlKey)" value="typed">
<input id="other" onfocus="L('focus-other')">
<div id="drag" draggable="true" ondragstart="event.dataTransfer.setData('text/plain', 'x'); L('dragstart')">Drag</div>
<div id="drop" ondragover="event.preventDefault()" ondrop="event.preventDefault(); L('drop')">Drop here</div>
<div id="tall">tall</div><p id="bottom">Bottom of the page</p>
</body></html>`

// closedAddr is a local address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// decodePNG checks a data URL holds a PNG and returns its bytes.
func decodePNG(t *testing.T, what, dataURL string) []byte {
	t.Helper()
	raw, ok := strings.CutPrefix(dataURL, "data:image/png;base64,")
	if !ok {
		t.Fatalf("%s is not a PNG data URL: %.40q", what, dataURL)
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("%s is not a PNG: %v", what, err)
	}
	return b
}

func TestBrowseShowsPageTextScreenshotsAndFollowsLinks(t *testing.T) {
	s := newSite(t)
	b, work := testBrowser(t, WithScreenshotDir(filepath.Join(t.TempDir(), "shots")))
	r, err := b.Browse(ctxFor(t, 90*time.Second), s.URL+"/", false)
	if err != nil {
		t.Fatal(err)
	}
	o := r.Obs
	if o.Error || o.URL != s.URL+"/" || o.TriggerByAction != "browse" || o.LastBrowserAction != fmt.Sprintf("goto(%q)", s.URL+"/") {
		t.Fatalf("observation: error=%v %q url=%q trigger=%q last=%q", o.Error, o.LastBrowserActionError, o.URL, o.TriggerByAction, o.LastBrowserAction)
	}
	for _, want := range []string{"[Current URL: " + s.URL + "/]", "BEGIN webpage content", "Welcome home", "Go to page two"} {
		if !strings.Contains(r.Content, want) {
			t.Errorf("content lacks %q:\n%s", want, r.Content)
		}
	}
	shot := decodePNG(t, "screenshot", o.Screenshot)
	som := decodePNG(t, "set_of_marks", o.SetOfMarks)
	if bytes.Equal(shot, som) {
		t.Error("set_of_marks is the plain screenshot; the bid marks were not drawn")
	}
	if o.ScreenshotPath == nil {
		t.Fatal("screenshot_path not set with a screenshot dir")
	}
	if saved, err := os.ReadFile(*o.ScreenshotPath); err != nil || !bytes.Equal(saved, shot) {
		t.Errorf("saved screenshot %s: %v (equal=%v)", *o.ScreenshotPath, err, bytes.Equal(saved, shot))
	}
	if string(o.OpenPagesURLs) != fmt.Sprintf("[%q]", s.URL+"/") || o.ActivePageIndex != 0 {
		t.Errorf("open pages %s active %d", o.OpenPagesURLs, o.ActivePageIndex)
	}
	if err := os.WriteFile(filepath.Join(work, "local.html"), []byte("<h1>A local file</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Browse(ctxFor(t, 90*time.Second), "local.html", false); err != nil || r.Obs.Error || !strings.Contains(r.Content, "A local file") {
		t.Fatalf("a path is browsed as a file of the work dir: %v %+v", err, r)
	}
	mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/"))
	next := bid(t, b, "#next")
	if !strings.Contains(r.AXTree, "["+next+"]") {
		t.Errorf("the accessibility tree lacks the link's bid %s:\n%s", next, r.AXTree)
	}
	r = mustOK(t, b, fmt.Sprintf("click(%q)", next))
	if r.Obs.URL != s.URL+"/page2" || !strings.Contains(r.Content, "Page two") || !strings.Contains(r.Content, "[Action executed successfully.]") {
		t.Fatalf("after click: url %q content:\n%s", r.Obs.URL, r.Content)
	}
	if r = mustOK(t, b, "go_back()"); r.Obs.URL != s.URL+"/" {
		t.Fatalf("go_back: url %q", r.Obs.URL)
	}
	if r = mustOK(t, b, "go_forward()"); r.Obs.URL != s.URL+"/page2" {
		t.Fatalf("go_forward: url %q", r.Obs.URL)
	}
}

func TestFormFillsEveryInputTypeAndSubmits(t *testing.T) {
	s := newSite(t)
	b, work := testBrowser(t)
	if err := os.WriteFile(filepath.Join(work, "upload.txt"), []byte("file body"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/form"))
	ids := map[string]string{}
	for _, id := range []string{"text", "password", "agree", "green", "size", "notes", "day", "level", "doc", "submit"} {
		ids[id] = bid(t, b, "#"+id)
	}
	actions := fmt.Sprintf(`fill(%q, "hello world")
fill(%q, 's3cret')
click(%q)
click(%q)
select_option(%q, "Large")
fill(%q, "line one\nline two")
fill(%q, "2024-05-06")
fill(%q, "70")
upload_file(%q, "upload.txt")`, ids["text"], ids["password"], ids["agree"], ids["green"], ids["size"], ids["notes"], ids["day"], ids["level"], ids["doc"])
	r := mustOK(t, b, actions)
	if r.Obs.FocusedElementBid == "" {
		t.Error("no focused element bid after filling")
	}
	mustOK(t, b, fmt.Sprintf(`upload_file(%q, "upload.txt")`, bid(t, b, "#pick")))
	if name := evalActive[string](t, b, `document.querySelector("#hidden").files[0]?.name || ""`); name != "upload.txt" {
		t.Errorf("upload through a button that opens the file chooser: hidden input has %q", name)
	}
	r = mustOK(t, b, fmt.Sprintf("click(%q)", ids["submit"]))
	for _, want := range []string{"text=hello world", "password=s3cret", "agree=yes", "color=green", "size=l",
		"notes=line one", "line two", "day=2024-05-06", "level=70", "doc=upload.txt:file body"} {
		if !strings.Contains(r.Content, want) {
			t.Errorf("submitted page lacks %q:\n%s", want, r.Content)
		}
	}
}

func TestKeyboardMouseAndDragActions(t *testing.T) {
	s := newSite(t)
	b, _ := testBrowser(t)
	mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/events"))
	dbl, hov, keys, other := bid(t, b, "#dbl"), bid(t, b, "#hov"), bid(t, b, "#keys"), bid(t, b, "#other")
	drag, drop := bid(t, b, "#drag"), bid(t, b, "#drop")
	mustOK(t, b, fmt.Sprintf(`dblclick(%q)
click(%q, button="right")
click(%q, modifiers=["Control", "Shift"])
hover(%q)
press(%q, "Control+a")
press(%q, "Backspace")
focus(%q)
drag_and_drop(%q, %q)`, dbl, dbl, dbl, hov, keys, keys, other, drag, drop))
	got := evalActive[[]string](t, b, "window.log")
	want := []string{"click:0:false:false", "click:0:false:false", "dblclick", "contextmenu", "auxclick:2", "click:0:true:true",
		"hover", "key:Control:true", "key:a:true", "key:Backspace:false", "focus-other", "dragstart", "drop"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
	if v := evalActive[string](t, b, "document.querySelector('#keys').value"); v != "" {
		t.Errorf("Control+a then Backspace left %q", v)
	}
	mustOK(t, b, fmt.Sprintf(`fill(%q, "abc", True)`, keys))
	if got := evalActive[[]string](t, b, "window.log"); got[len(got)-1] != "key:c:false" {
		t.Errorf("fill with the autocomplete menu must type its last character: log %q", got)
	}
	r := mustOK(t, b, fmt.Sprintf(`fill(%q, "abc") keyboard_type("de") clear(%q) keyboard_type("xy")`, keys, keys))
	if v := evalActive[string](t, b, "document.querySelector('#keys').value"); v != "xy" {
		t.Errorf("fill, type, clear, type gave %q", v)
	}
	if r.Obs.FocusedElementBid != keys {
		t.Errorf("focused bid %q, want %q", r.Obs.FocusedElementBid, keys)
	}
	mustOK(t, b, fmt.Sprintf("click(%q)", bid(t, b, "#alert")))
	if got := evalActive[[]string](t, b, "window.log"); got[len(got)-1] != "dismissed" {
		t.Errorf("a confirm() dialog must be dismissed, not block the page: log %q", got)
	}
	mustOK(t, b, "scroll(0, 2000)")
	if y := evalActive[float64](t, b, "window.scrollY"); y < 1000 {
		t.Errorf("scroll(0, 2000) left scrollY at %v", y)
	}
}

func TestTabsOpenFocusCloseAndPopups(t *testing.T) {
	s := newSite(t)
	b, _ := testBrowser(t)
	mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/"))
	r := mustOK(t, b, fmt.Sprintf("new_tab() goto(%q)", s.URL+"/page2"))
	if want := fmt.Sprintf("[%q,%q]", s.URL+"/", s.URL+"/page2"); string(r.Obs.OpenPagesURLs) != want || r.Obs.ActivePageIndex != 1 {
		t.Fatalf("two tabs: pages %s active %d, want %s active 1", r.Obs.OpenPagesURLs, r.Obs.ActivePageIndex, want)
	}
	if r = mustOK(t, b, "tab_focus(0)"); r.Obs.URL != s.URL+"/" || r.Obs.ActivePageIndex != 0 {
		t.Fatalf("tab_focus(0): url %q active %d", r.Obs.URL, r.Obs.ActivePageIndex)
	}
	r = mustOK(t, b, fmt.Sprintf("click(%q)", bid(t, b, "#popup")))
	if r.Obs.ActivePageIndex != 2 || r.Obs.URL != s.URL+"/page2" {
		t.Fatalf("target=_blank link: pages %s active %d url %q", r.Obs.OpenPagesURLs, r.Obs.ActivePageIndex, r.Obs.URL)
	}
	r = mustOK(t, b, "tab_close() tab_close()")
	if want := fmt.Sprintf("[%q]", s.URL+"/"); string(r.Obs.OpenPagesURLs) != want || r.Obs.ActivePageIndex != 0 {
		t.Fatalf("after closing two tabs: pages %s active %d", r.Obs.OpenPagesURLs, r.Obs.ActivePageIndex)
	}
	r = mustOK(t, b, "tab_close()")
	if string(r.Obs.OpenPagesURLs) != `["about:blank"]` {
		t.Fatalf("closing the last tab must leave a blank one: %s", r.Obs.OpenPagesURLs)
	}
	r = do(t, b, "tab_focus(3)")
	if !strings.HasPrefix(r.Obs.LastBrowserActionError, "IndexError: ") || !strings.Contains(r.Obs.LastBrowserActionError, "tab_focus(3)") {
		t.Errorf("bad tab index error: %q", r.Obs.LastBrowserActionError)
	}
}

func TestErrorPages(t *testing.T) {
	s := newSite(t)
	b, _ := testBrowser(t)
	tests := []struct {
		name, url   string
		wantErr     string // "" when the page must load without an action error
		wantContent string
	}{
		{"an HTTP 500 page is shown like any page", s.URL + "/500", "", "Internal failure"},
		{"a page whose script throws still shows its text", s.URL + "/jserror", "", "After the script."},
		{"a host that does not resolve gives the network error", "http://corral-no-such-host.invalid/", "net::ERR_NAME_NOT_RESOLVED", ""},
		{"a closed port gives the network error", "http://" + closedAddr(t) + "/", "net::ERR_CONNECTION_REFUSED", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := b.Browse(ctxFor(t, 90*time.Second), tc.url, false)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantErr == "" {
				if r.Obs.Error {
					t.Fatalf("unexpected error %q", r.Obs.LastBrowserActionError)
				}
			} else if !r.Obs.Error || !strings.Contains(r.Obs.LastBrowserActionError, tc.wantErr) ||
				!strings.Contains(r.Content, "The following error occurred when trying to visit the URL:") {
				t.Fatalf("want error %q, got error=%v %q; content:\n%s", tc.wantErr, r.Obs.Error, r.Obs.LastBrowserActionError, r.Content)
			}
			if !strings.Contains(r.Content, tc.wantContent) {
				t.Errorf("content lacks %q:\n%s", tc.wantContent, r.Content)
			}
		})
	}
}

func TestSlowPageHitsTimeoutAndBrowserStaysUsable(t *testing.T) {
	s := newSite(t)
	b, _ := testBrowser(t)
	mustOK(t, b, "noop(0)") // start Chromium outside the short deadline
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := b.Browse(ctx, s.URL+"/slow", false)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Obs.Error || !strings.Contains(r.Obs.LastBrowserActionError, "TimeoutError") || !strings.Contains(r.Obs.LastBrowserActionError, "/slow") {
		t.Fatalf("want a TimeoutError naming the page, got error=%v %q", r.Obs.Error, r.Obs.LastBrowserActionError)
	}
	r = mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/page2"))
	if !strings.Contains(r.Content, "Page two") {
		t.Fatalf("browser unusable after a timeout:\n%s", r.Content)
	}
}

func TestBadBidStopsAtFailingCall(t *testing.T) {
	s := newSite(t)
	b, work := testBrowser(t)
	mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/form"))
	if err := os.WriteFile(filepath.Join(work, "there.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	text, notes := bid(t, b, "#text"), bid(t, b, "#notes")
	src := fmt.Sprintf(`fill(%q, "first") click("9999") fill(%q, "never")`, text, notes)
	r := do(t, b, src)
	if want := `ValueError: Could not find element with bid "9999"`; r.Obs.LastBrowserActionError != want || !r.Obs.Error {
		t.Fatalf("error %q, want %q", r.Obs.LastBrowserActionError, want)
	}
	if r.Obs.LastBrowserAction != src || !strings.Contains(r.Content, "The following error occurred when executing the last action:") {
		t.Errorf("last action %q, content:\n%s", r.Obs.LastBrowserAction, r.Content)
	}
	if v := evalActive[string](t, b, "document.querySelector('#text').value"); v != "first" {
		t.Errorf("the call before the failure did not run: %q", v)
	}
	if v := evalActive[string](t, b, "document.querySelector('#notes').value"); v != "" {
		t.Errorf("a call after the failure ran: %q", v)
	}
	for _, tc := range []struct{ src, want string }{
		{fmt.Sprintf(`fill(%q, "x")`, bid(t, b, "#agree")), `Input of type "checkbox" cannot be filled`},
		{fmt.Sprintf(`select_option(%q, "purple")`, bid(t, b, "#size")), `Could not find option "purple"`},
		{fmt.Sprintf(`select_option(%q, "x")`, text), "not a <select>"},
		{fmt.Sprintf(`press(%q, "Control+Nope")`, text), `Unknown key: "Nope"`},
		{fmt.Sprintf(`upload_file(%q, "missing.txt")`, bid(t, b, "#doc")), "missing.txt"},
		{fmt.Sprintf(`upload_file(%q, "there.txt")`, text), "opened no file chooser"},
	} {
		if r := do(t, b, tc.src); !strings.Contains(r.Obs.LastBrowserActionError, tc.want) {
			t.Errorf("%s: error %q lacks %q", tc.src, r.Obs.LastBrowserActionError, tc.want)
		}
	}
}

func TestMalformedActionsNameTheCallAndKeepTheBrowser(t *testing.T) {
	s := newSite(t)
	b, _ := testBrowser(t)
	mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/"))
	src := fmt.Sprintf("goto(%q)\nclck('12')", s.URL+"/page2")
	r := do(t, b, src)
	e := r.Obs.LastBrowserActionError
	if !r.Obs.Error || !strings.Contains(e, "browser action 2") || !strings.Contains(e, "clck") {
		t.Fatalf("malformed actions: error %q should name the 2nd call and clck", e)
	}
	if r.Obs.URL != s.URL+"/" {
		t.Errorf("nothing may run from a malformed string, but the page moved to %q", r.Obs.URL)
	}
	r = mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/page2"))
	if !strings.Contains(r.Content, "Page two") {
		t.Fatalf("browser unusable after a malformed string:\n%s", r.Content)
	}
}

func TestBidsStayStableAndNewElementsGetNewOnes(t *testing.T) {
	s := newSite(t)
	b, _ := testBrowser(t)
	mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/dynamic"))
	add, old := bid(t, b, "#add"), bid(t, b, "#old")
	mustOK(t, b, fmt.Sprintf("click(%q)", add))
	if a2, o2 := bid(t, b, "#add"), bid(t, b, "#old"); a2 != add || o2 != old {
		t.Fatalf("bids changed on an unchanged element: add %s->%s old %s->%s", add, a2, old, o2)
	}
	nw := bid(t, b, "#new")
	if nw == add || nw == old {
		t.Fatalf("new element reused bid %s", nw)
	}
	n := evalActive[int](t, b, `new Set(Array.from(document.querySelectorAll("[bid]")).map(e => e.getAttribute("bid"))).size === document.querySelectorAll("[bid]").length ? 1 : 0`)
	if n != 1 {
		t.Fatal("duplicate bids on the page")
	}
}

func TestDownloadsLandInTheWorkspace(t *testing.T) {
	s := newSite(t)
	b, work := testBrowser(t)
	mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/"))
	mustOK(t, b, fmt.Sprintf("click(%q)", bid(t, b, "#dl")))
	want := filepath.Join(work, ".downloads", "report.csv")
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(want)
		if err == nil && string(data) == "a,b\n1,2\n" {
			break
		}
		if time.Now().After(deadline) {
			ents, _ := os.ReadDir(filepath.Dir(want))
			t.Fatalf("download not at %s (dir has %v): %v %q", want, ents, err, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReturnAXTreeFillsTheObjects(t *testing.T) {
	s := newSite(t)
	b, _ := testBrowser(t)
	r, err := b.Interactive(ctxFor(t, 90*time.Second), fmt.Sprintf("goto(%q)", s.URL+"/"), true)
	if err != nil {
		t.Fatal(err)
	}
	var ax struct {
		Nodes []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(r.Obs.AxtreeObject, &ax); err != nil || len(ax.Nodes) == 0 {
		t.Fatalf("axtree_object: %v %.200s", err, r.Obs.AxtreeObject)
	}
	var props map[string]map[string]any
	if err := json.Unmarshal(r.Obs.ExtraElementProperties, &props); err != nil {
		t.Fatal(err)
	}
	p, ok := props[bid(t, b, "#next")]
	if !ok || p["clickable"] != true || p["visibility"].(float64) <= 0 {
		t.Fatalf("extra properties of the link: %v", p)
	}
	r = mustOK(t, b, "noop(0)")
	if string(r.Obs.AxtreeObject) != "{}" {
		t.Errorf("axtree_object must be empty without return_axtree: %.100s", r.Obs.AxtreeObject)
	}
}

func TestNoChromiumSaysHowToGetOne(t *testing.T) {
	b := New(WithChromium(filepath.Join(t.TempDir(), "no-chromium")))
	defer b.Close()
	_, err := b.Browse(ctxFor(t, 10*time.Second), "http://127.0.0.1/", false)
	if !errors.Is(err, ErrNoChromium) {
		t.Fatalf("err %v, want ErrNoChromium", err)
	}
	for _, want := range []string{"no Chromium", "corral image build", "apt-get install chromium", "no-chromium"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestCloseEndsARunningActionAndChromium(t *testing.T) {
	s := newSite(t)
	b, _ := testBrowser(t)
	mustOK(t, b, "noop(0)")
	done := make(chan error, 1)
	go func() {
		_, err := b.Browse(context.Background(), s.URL+"/slow", false)
		done <- err
	}()
	// Wait until the slow page is being loaded, then close.
	select {
	case <-s.slowHit:
	case <-time.After(60 * time.Second):
		t.Fatal("the slow page was never requested")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("the running browse returned %v, want ErrClosed", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Close did not end the running action")
	}
	if _, err := b.Browse(ctxFor(t, 5*time.Second), s.URL, false); !errors.Is(err, ErrClosed) {
		t.Errorf("browse after Close: %v", err)
	}
}

func TestSameOriginFrameElementsHaveBidsAndTakeClicks(t *testing.T) {
	s := newSite(t)
	b, _ := testBrowser(t)
	r := mustOK(t, b, fmt.Sprintf("goto(%q)", s.URL+"/framed"))
	frame := bid(t, b, "#f")
	inner := evalActive[string](t, b, `document.querySelector("#f").contentDocument.querySelector("#ib").getAttribute("bid")`)
	if !strings.HasPrefix(inner, frame) || inner == frame {
		t.Fatalf("inner bid %q must extend the frame's bid %q (BrowserGym's frame prefix)", inner, frame)
	}
	if !strings.Contains(r.AXTree, "["+inner+"] button 'Inner button'") {
		t.Fatalf("the frame's tree is not merged under its iframe:\n%s", r.AXTree)
	}
	mustOK(t, b, fmt.Sprintf("click(%q)", inner))
	if title := evalActive[string](t, b, "document.title"); title != "inner clicked" {
		t.Fatalf("click in the frame did not reach the button: title %q", title)
	}
}
