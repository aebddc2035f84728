package browser

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/cdp/jsonv2"
)

func loadDOMFixture(t *testing.T, name string) *cdp.Node {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "axtree", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		DOM struct {
			Root *cdp.Node `json:"root"`
		} `json:"dom"`
	}
	if err := jsonv2.Unmarshal(raw, &fx); err != nil || fx.DOM.Root == nil {
		t.Fatalf("decode the DOM of %s.json: %v", name, err)
	}
	return fx.DOM.Root
}

// diffLines fails with the first differing line, which is readable where
// a whole-page dump is not.
func diffLines(t *testing.T, got, want string) {
	t.Helper()
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		g, w := "<none>", "<none>"
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("line %d differs\n got %q\nwant %q\nwhole text:\n%s", i+1, g, w, got)
		}
	}
}

// TestHTMLTextMatchesHTML2Text compares with what the real html2text,
// set as OpenHands sets it, printed for the same DOM recorded from
// Chromium (testdata/axtree/h2t_oracle.py). text.html covers headings,
// emphasis, code, entities, escapes, nested lists, pre, blockquote, hr,
// every kind of link, dl, abbr, q, sup, shadow DOM, template, noscript
// and a table.
func TestHTMLTextMatchesHTML2Text(t *testing.T) {
	for _, name := range []string{"links", "form", "text"} {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "axtree", name+".page.txt"))
			if err != nil {
				t.Fatal(err)
			}
			diffLines(t, HTMLText(loadDOMFixture(t, name)), string(want))
		})
	}
}

// The expected texts were checked against the real html2text fed the
// same tree pretty-printed.
func TestHTMLTextSmallTrees(t *testing.T) {
	text := func(s string) *cdp.Node { return &cdp.Node{NodeType: 3, NodeName: "#text", NodeValue: s} }
	el := func(tag string, attrs []string, kids ...*cdp.Node) *cdp.Node {
		return &cdp.Node{NodeType: 1, NodeName: strings.ToUpper(tag), LocalName: tag, Attributes: attrs, Children: kids}
	}
	doc := func(kids ...*cdp.Node) *cdp.Node {
		return &cdp.Node{NodeType: 9, Children: []*cdp.Node{el("html", nil, el("body", nil, kids...))}}
	}
	tests := []struct {
		name string
		root *cdp.Node
		want string
	}{
		{"nil document", nil, "\n"},
		{"empty body", doc(), "\n"},
		{"paragraphs are separated by a blank line", doc(el("p", nil, text("a")), el("p", nil, text("b"))), "a \n\nb \n"},
		{"whitespace collapses, nbsp included", doc(el("p", nil, text("  a \u00a0\t b\n c  "))), "a b c \n"},
		{"link keeps its text and href", doc(el("a", []string{"href", "/x (1)"}, text("go"))), "[ go ](/x \\(1\\))\n"},
		{"image is ignored (the space after a and the one before b both stay)", doc(el("p", nil, text("a"), el("img", []string{"src", "i.png", "alt", "pic"}), text("b"))), "a  b \n"},
		{"heading", doc(el("h2", nil, text("Title"))), "##  Title \n"},
		{"comment and doctype nodes print nothing", doc(&cdp.Node{NodeType: 8, NodeValue: "c"}, &cdp.Node{NodeType: 10}, text("t")), "t \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HTMLText(tt.root); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzHTMLText builds a DOM from the input: "<name" opens an element,
// "/" closes one, "@" adds an attribute pair from the next two words,
// everything else is text. HTMLText must not panic, must end with a
// newline and must keep valid UTF-8 valid.
func FuzzHTMLText(f *testing.F) {
	for _, s := range []string{
		"<p hello /<b bold / world", "<ul <li one / <li two <ol <li x", "<pre  a\n  b </<blockquote q",
		"<a @href x.html link /<a @href #top in", "<table <tr <th a /<th b //<tr <td 1", "<h1 <a @href h t",
		"<q <abbr @title T A //- x\n1. y\n+ z", "<i <b <em deep", "<script x /<style y /<head z / text",
		"<dl <dt t /<dd d", "<hr <br <code c` /<kbd k", "<a @href https://a.test https://a.test",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		root := fuzzDOM(src)
		got := HTMLText(root)
		if !strings.HasSuffix(got, "\n") {
			t.Fatalf("text does not end with a newline: %q", got)
		}
		if utf8.ValidString(src) && !utf8.ValidString(got) {
			t.Fatalf("valid input gave invalid UTF-8: %q", got)
		}
	})
}

// fuzzDOM is the tiny tree language of FuzzHTMLText, bounded in depth.
func fuzzDOM(src string) *cdp.Node {
	body := &cdp.Node{NodeType: 1, LocalName: "body"}
	stack := []*cdp.Node{body}
	words := strings.Fields(src)
	for i := 0; i < len(words); i++ {
		top := stack[len(stack)-1]
		w := words[i]
		switch {
		case strings.HasPrefix(w, "<") && len(w) > 1 && len(stack) < 64:
			n := &cdp.Node{NodeType: 1, LocalName: strings.ToLower(w[1:])}
			top.Children = append(top.Children, n)
			stack = append(stack, n)
		case strings.HasPrefix(w, "/") && len(stack) > 1:
			stack = stack[:len(stack)-1]
		case w == "@" && i+2 < len(words):
			top.Attributes = append(top.Attributes, words[i+1], words[i+2])
			i += 2
		default:
			top.Children = append(top.Children, &cdp.Node{NodeType: 3, NodeValue: w + " "})
		}
	}
	html := &cdp.Node{NodeType: 1, LocalName: "html", Children: []*cdp.Node{body}}
	return &cdp.Node{NodeType: 9, Children: []*cdp.Node{html}}
}
