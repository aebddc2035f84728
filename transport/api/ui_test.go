package api

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUIAssetsAndFaviconAreServed: every file the page loads, and the icon
// browsers ask for, is served from the binary with its type and the CSP;
// the page names no other origin.
func TestUIAssetsAndFaviconAreServed(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct{ path, ctype string }{
		{"/", "text/html"},
		{"/ui/app.js", "text/javascript"},
		{"/ui/term.js", "text/javascript"},
		{"/ui/style.css", "text/css"},
		{"/ui/favicon.svg", "image/svg+xml"},
		{"/favicon.ico", "image/svg+xml"},
	} {
		code, body, hdr := f.do("GET", c.path, nil)
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), c.ctype) || len(body) < 100 || !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: %d %q csp %q (%d bytes), want 200 %s with the CSP", c.path, code, hdr.Get("Content-Type"), hdr.Get("Content-Security-Policy"), len(body), c.ctype)
		}
	}
	_, page, _ := f.do("GET", "/", nil)
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(string(page), -1) {
		if !strings.HasPrefix(m[1], "/") || strings.HasPrefix(m[1], "//") {
			t.Errorf("the page loads %q, which is not from this server", m[1])
		}
		if code, _, _ := f.do("GET", m[1], nil); code != 200 {
			t.Errorf("the page loads %s: %d", m[1], code)
		}
	}
}

// TestBrowserTerminalRenderer runs the terminal renderer in Chromium on
// output cut at every possible place: PS1 protocol blocks never show,
// colours become styled spans, carriage returns and erase-line rewrite the
// line, and a flood is cut to the scrollback.
func TestBrowserTerminalRenderer(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := startChromium(t, ctx)
	c.navigate(ctx, newFixture(t, nil).ts.URL+"/")
	waitTrue(ctx, t, c, "the page to load", `document.readyState === "complete" && !!window.CorralTerm`)

	// feed renders pieces into a fresh block and returns its text.
	const feed = `(pieces, obs) => {
		const root = document.createElement("div");
		root.className = "term"; // pre-wrap, as in the page
		document.body.append(root); // innerText needs a rendered element
		const term = new CorralTerm.Term(root, 100);
		const b = term.block(1, "cmd", false);
		pieces.forEach((p, i) => b.output(i + 1, p));
		term.flush();
		if (obs) b.finish(obs);
		const r = {text: b.out.innerText, html: b.out.innerHTML, end: b.el.querySelector(".tb-end") ? b.el.querySelector(".tb-end").textContent : ""};
		root.remove();
		return r;
	}`
	type result struct{ Text, HTML, End string }
	run := func(t *testing.T, pieces []string, obs map[string]any) result {
		t.Helper()
		args, _ := json.Marshal([]any{pieces, obs})
		raw := c.eval(ctx, "(("+feed+").apply(null, "+string(args)+"))")
		var r result
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
		return r
	}

	block := "\n###PS1JSON###\n{\n  \"exit_code\": \"0\"\n}\n###PS1END###\n"
	out := "a\nb\n" + block
	t.Run("PS1 blocks never show, however the stream is cut", func(t *testing.T) {
		var cuts []string
		for i := 1; i < len(out); i++ {
			for j := i; j < len(out); j++ {
				cuts = append(cuts, out[:i]+"|"+out[i:j]+"|"+out[j:])
			}
		}
		// One page round trip for all cuts: the filter is pure.
		args, _ := json.Marshal(cuts)
		raw := c.eval(ctx, `(() => { const bad = []; for (const c of `+string(args)+`) { const f = new CorralTerm.PS1Filter(); let o = ""; for (const p of c.split("|")) o += f.push(p); o += f.end(); if (o !== "a\nb\n") bad.push([c, o]); } return bad.slice(0, 3); })()`)
		if string(raw) != "[]" {
			t.Fatalf("cut streams that showed something else than the output: %s", raw)
		}
		if r := run(t, []string{block[1:]}, nil); strings.TrimSpace(r.Text) != "" {
			t.Fatalf("a command without output shows %q", r.Text)
		}
	})
	cases := []struct {
		name   string
		pieces []string
		text   string
		html   string // a fragment the rendered HTML must contain
	}{
		{"colours become spans", []string{"\x1b[31mred\x1b[0m plain\n"}, "red plain", `<span style="color: rgb(205, 49, 49);">red</span> plain`},
		{"bold and 256 colours", []string{"\x1b[1;38;5;208mhot\x1b[m\n"}, "hot", `class="b" style="color: rgb(255, 135, 0);">hot</span>`},
		{"an escape cut between frames", []string{"x\x1b[3", "2mgreen\x1b[0m\n"}, "xgreen", `<span style="color: rgb(13, 188, 121);">green</span>`},
		{"carriage return rewrites the line", []string{"10%\r50%\r100%\n"}, "100%", ""},
		{"carriage return then shorter text", []string{"abcdef\rXY\n"}, "XYcdef", ""},
		{"erase line", []string{"progress 1\r\x1b[Kdone\n"}, "done", ""},
		{"backspace", []string{"ab\bC\n"}, "aC", ""},
		{"CRLF line ends", []string{"one\r\ntwo\r\n"}, "one\ntwo", ""},
		{"OSC title is not shown", []string{"\x1b]0;title\x07shown\n"}, "shown", ""},
		{"an OSC cut between frames", []string{"a\x1b]0;ti", "tle\x1b", "\\b\n"}, "ab", ""},
		{"charset designation (tput sgr0) is not shown", []string{"\x1b[1mx\x1b(B\x1b[my\n"}, "xy", ""},
		{"text before a frame that ends with ESC is shown at once", []string{"\x1b[0m hello \x1b"}, " hello ", ""},
		{"text is text, not HTML", []string{"<b>x</b>&amp;\n"}, "<b>x</b>&amp;", "&lt;b&gt;x&lt;/b&gt;&amp;amp;"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.pieces, nil)
			if strings.TrimRight(r.Text, "\n") != tc.text || !strings.Contains(r.HTML, tc.html) {
				t.Fatalf("text %q html %s; want text %q and html with %s", r.Text, r.HTML, tc.text, tc.html)
			}
		})
	}
	t.Run("a flood keeps the last lines within the scrollback", func(t *testing.T) {
		raw := c.eval(ctx, `(() => {
			const root = document.createElement("div");
		root.className = "term"; // pre-wrap, as in the page
			document.body.append(root);
			const term = new CorralTerm.Term(root, 100);
			const b = term.block(1, "seq", false);
			let s = ""; for (let i = 1; i <= 100000; i++) s += i + "\n";
			for (let i = 0; i < s.length; i += 4096) b.output(i / 4096 + 1, s.slice(i, i + 4096));
			term.flush();
			const lines = b.out.innerText.trim().split("\n");
			root.remove();
			return [lines.length, lines[lines.length - 1], term.lines];
		})()`)
		var got []any
		_ = json.Unmarshal(raw, &got)
		if len(got) != 3 || got[1] != "100000" || got[0].(float64) > 100 || got[2].(float64) > 101 {
			t.Fatalf("after 100000 lines into a 100-line terminal: %s; want at most 100 lines ending with 100000", raw)
		}
	})
	t.Run("a line without end is committed in pieces", func(t *testing.T) {
		raw := c.eval(ctx, `(() => {
			const root = document.createElement("div");
			const term = new CorralTerm.Term(root, 100);
			const b = term.block(1, "yes", false);
			const piece = "y".repeat(4096);
			for (let i = 1; i <= 256; i++) b.output(i, piece);
			term.flush();
			return [b.cur.textContent.length, b.out.textContent.length];
		})()`)
		var got []int
		_ = json.Unmarshal(raw, &got)
		if len(got) != 2 || got[0] > 16<<10 || got[1] != 256*4096 {
			t.Fatalf("1 MiB without a line end: [current line, all output] = %s; want the current line under 16 KiB and nothing lost", raw)
		}
	})
	t.Run("the observation replaces output whose end was lost", func(t *testing.T) {
		obs := map[string]any{"observation": "run", "content": "1\n2\n3", "extras": map[string]any{"metadata": map[string]any{"exit_code": 0, "suffix": "\n[The command completed with exit code 0.]"}}}
		r := run(t, []string{"1\n"}, obs)
		if r.Text != "1\n2\n3" || r.End != "[The command completed with exit code 0.]" {
			t.Fatalf("text %q end %q; want the observation's content and its suffix", r.Text, r.End)
		}
		r = run(t, []string{"1\n2\n3\n", block}, obs)
		if r.Text != "1\n2\n3" {
			t.Fatalf("complete live output: text %q, want it kept", r.Text)
		}
	})
}
