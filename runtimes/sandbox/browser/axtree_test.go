package browser

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/cdp/jsonv2"
)

// axFixture is one page recorded from a real Chromium by
// testdata/axtree/capture.go: the raw getFullAXTree answer, the bids
// given to its elements and the bids Chromium calls clickable.
type axFixture struct {
	AXTree    accessibility.GetFullAXTreeResult `json:"axtree"`
	Bids      map[cdp.BackendNodeID]string      `json:"bids"`
	Clickable []string                          `json:"clickable"`
}

func loadAXFixture(t *testing.T, name string) axFixture {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "axtree", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx axFixture
	if err := jsonv2.Unmarshal(raw, &fx); err != nil {
		t.Fatalf("decode %s.json: %v", name, err)
	}
	if len(fx.AXTree.Nodes) == 0 || len(fx.Bids) == 0 {
		t.Fatalf("%s.json has no nodes or no bids", name)
	}
	return fx
}

// TestAXTreeTextMatchesBrowserGym compares with the text BrowserGym's own
// flatten_axtree_to_str printed for the same recorded tree (the .txt files
// come from testdata/axtree/bg_flatten.py, which runs BrowserGym's code
// with OpenHands' options; they were also read through by hand: bids
// first, redundant StaticText dropped, Python quoting of ' " \n and \xa0,
// ints and floats as Python prints them, clickable before properties).
func TestAXTreeTextMatchesBrowserGym(t *testing.T) {
	for _, name := range []string{"links", "form", "text"} {
		t.Run(name, func(t *testing.T) {
			fx := loadAXFixture(t, name)
			want, err := os.ReadFile(filepath.Join("testdata", "axtree", name+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			clickable := map[string]bool{}
			for _, b := range fx.Clickable {
				clickable[b] = true
			}
			diffLines(t, AXTreeText(fx.AXTree.Nodes, fx.Bids, clickable), string(want))
		})
	}
}

func TestAXTreeTextSpotChecks(t *testing.T) {
	fx := loadAXFixture(t, "links")
	got := AXTreeText(fx.AXTree.Nodes, fx.Bids, map[string]bool{})
	for _, line := range []string{
		"\t\t\t\t[12] link 'Go two', url='file://",
		"\t[5] heading 'Page two'",
		"\t[15] generic\n",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("tree lacks %q:\n%s", line, got)
		}
	}
	for _, absent := range []string{"hidden text", "aria hidden", ", clickable", "LineBreak"} {
		if strings.Contains(got, absent) {
			t.Errorf("tree has %q, which BrowserGym leaves out:\n%s", absent, got)
		}
	}
}

func axNode(id string, role, name string, children ...string) *accessibility.Node {
	n := &accessibility.Node{NodeID: accessibility.NodeID(id), Role: &accessibility.Value{Type: "role", Value: jsonv2.Value(`"` + role + `"`)}}
	if name != "-" {
		n.Name = &accessibility.Value{Type: "computedString", Value: jsonv2.Value(name)}
	}
	for _, c := range children {
		n.ChildIDs = append(n.ChildIDs, accessibility.NodeID(c))
	}
	return n
}

func TestAXTreeTextMalformedTrees(t *testing.T) {
	tests := []struct {
		name  string
		nodes []*accessibility.Node
		want  string
	}{
		{"no nodes", nil, ""},
		{"nil root", []*accessibility.Node{nil}, ""},
		{"cycle is cut", []*accessibility.Node{axNode("1", "RootWebArea", `"r"`, "2"), axNode("2", "group", `"g"`, "1", "2")},
			"RootWebArea 'r'\n\tgroup 'g'"},
		{"unknown and nil children are skipped", []*accessibility.Node{axNode("1", "RootWebArea", `"r"`, "9", "3"), nil, axNode("3", "button", `"b"`)},
			"RootWebArea 'r'\n\tbutton 'b'"},
		{"unnamed node is skipped and its children move up", []*accessibility.Node{axNode("1", "RootWebArea", `"r"`, "2"), axNode("2", "none", "-", "3"), axNode("3", "link", `"l"`)},
			"RootWebArea 'r'\n\tlink 'l'"},
		{"non-string name is printed raw", []*accessibility.Node{axNode("1", "heading", `42`)}, "heading '42'"},
		{"static text inside its parent's name is dropped", []*accessibility.Node{axNode("1", "link", `"Go home"`, "2", "3"), axNode("2", "StaticText", `"home"`), axNode("3", "StaticText", `"away"`)},
			"link 'Go home'\n\tStaticText 'away'"},
		{"name is stripped for printing", []*accessibility.Node{axNode("1", "button", `"  OK\u00a0\n"`)}, "button 'OK'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AXTreeText(tt.nodes, nil, nil); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPyRepr(t *testing.T) {
	tests := []struct{ json, want string }{
		{`"plain"`, `'plain'`},
		{`"it's"`, `"it's"`},
		{`"both ' and \""`, `'both \' and "'`},
		{`"back\\slash"`, `'back\\slash'`},
		{`"tab\tnl\ncr\r"`, `'tab\tnl\ncr\r'`},
		{`"\u0001\u007f\u00a0\u00ad\u2028\u200b"`, `'\x01\x7f\xa0\xad\u2028\u200b'`},
		{`"é 😀 東京 \ufffd"`, "'é 😀 東京 \ufffd'"},
		{`"\udb80\udc00"`, `'\U000f0000'`},
		{`true`, `True`}, {`false`, `False`}, {`null`, `None`},
		{`3`, `3`}, {`-0`, `0`}, {`2.5`, `2.5`}, {`10.0`, `10.0`}, {`1e2`, `100.0`},
		{`0.0001`, `0.0001`}, {`0.00001`, `1e-05`}, {`1e16`, `1e+16`}, {`123456789012345.6`, `123456789012345.6`},
		{`1e999`, `1e999`},
		{`["a", 1, [true]]`, `['a', 1, [True]]`},
		{`{"k": "v", "n": null}`, `{'k': 'v', 'n': None}`},
		{`{broken`, `{broken`},
	}
	for _, tt := range tests {
		if got := pyRepr([]byte(tt.json)); got != tt.want {
			t.Errorf("pyRepr(%s) = %s, want %s", tt.json, got, tt.want)
		}
	}
}

func TestPyTruthy(t *testing.T) {
	for raw, want := range map[string]bool{
		`true`: true, `false`: false, `null`: false, `""`: false, `"false"`: true, `0`: false,
		`0.0`: false, `1`: true, `-2.5`: true, `[]`: false, `[0]`: true, `{}`: false,
	} {
		if got := pyTruthy([]byte(raw)); got != want {
			t.Errorf("pyTruthy(%s) = %v, want %v", raw, got, want)
		}
	}
}
