package browser

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
)

// axIgnoredRoles and axIgnoredProperties are BrowserGym's
// IGNORED_AXTREE_ROLES and IGNORED_AXTREE_PROPERTIES (utils/obs.py).
var (
	axIgnoredRoles      = []string{"LineBreak"}
	axIgnoredProperties = []string{"editable", "readonly", "level", "settable", "multiline", "invalid", "focusable"}
	// axFlagProperties are printed by name alone, and only when truthy.
	axFlagProperties = []string{"required", "focused", "atomic"}
)

// AXTreeText flattens Chromium's accessibility tree (the nodes of CDP's
// Accessibility.getFullAXTree, root first) into the text BrowserGym's
// flatten_axtree_to_str prints with the options OpenHands passes
// (with_clickable=True, skip_generic=False, no visibility filter): one
// node a line, a tab per depth, "[bid] role 'name'" then value= and the
// properties, Python repr quoting. Nodes without a name, LineBreaks and
// StaticText that repeats its parent's name are left out (their children
// move up a level). bids maps DOM nodes to their bids; clickable holds
// the bids BrowserGym marks clickable (extra_element_properties).
func AXTreeText(nodes []*accessibility.Node, bids map[cdp.BackendNodeID]string, clickable map[string]bool) string {
	if len(nodes) == 0 || nodes[0] == nil {
		return ""
	}
	w := &axWriter{
		nodes: nodes, bids: bids, clickable: clickable,
		index:   make(map[accessibility.NodeID]int, len(nodes)),
		visited: make([]bool, len(nodes)),
	}
	for i, n := range nodes {
		if n == nil {
			continue
		}
		if _, dup := w.index[n.NodeID]; !dup { // Python's dict keeps the last; CDP ids are unique anyway
			w.index[n.NodeID] = i
		}
	}
	w.walk(0, 0, false, "")
	return strings.Join(w.lines, "\n")
}

type axWriter struct {
	nodes     []*accessibility.Node
	bids      map[cdp.BackendNodeID]string
	clickable map[string]bool
	index     map[accessibility.NodeID]int
	// visited guards against malformed trees with cycles, which would
	// make BrowserGym recurse forever.
	visited []bool
	lines   []string
}

// walk is BrowserGym's dfs: print the node unless skipped, then its
// children one level deeper (at the same level when the node is skipped).
func (w *axWriter) walk(i, depth int, parentFiltered bool, parentName string) {
	w.visited[i] = true
	n := w.nodes[i]
	role := axString(n.Role)
	skip, name := w.line(n, role, depth, parentFiltered, parentName)
	childDepth := depth + 1
	if skip {
		childDepth = depth
	}
	for _, id := range n.ChildIDs {
		c, ok := w.index[id]
		if !ok || id == n.NodeID || w.visited[c] {
			continue
		}
		// BrowserGym's filter flag is only set by filters OpenHands does
		// not use, so children never inherit a filtered parent here.
		w.walk(c, childDepth, false, name)
	}
}

// line appends the node's line unless it is skipped; it returns whether
// it was skipped and the node's name, which its children compare against.
func (w *axWriter) line(n *accessibility.Node, role string, depth int, parentFiltered bool, parentName string) (bool, string) {
	if slices.Contains(axIgnoredRoles, role) || n.Name == nil {
		return true, ""
	}
	name := axString(n.Name)
	if role == "StaticText" && (parentFiltered || strings.Contains(parentName, name)) {
		return true, name
	}
	bid := ""
	if n.BackendDOMNodeID != 0 {
		bid = w.bids[n.BackendDOMNodeID]
	}
	var attrs []string
	if role != "StaticText" && bid != "" && w.clickable[bid] {
		attrs = append(attrs, "clickable")
	}
	attrs = append(attrs, axProperties(n.Properties)...)

	var b strings.Builder
	b.WriteString(strings.Repeat("\t", depth))
	if bid != "" {
		b.WriteString("[" + bid + "] ")
	}
	b.WriteString(role)
	if role != "generic" || name != "" {
		b.WriteString(" " + pyReprString(pyStrip(name)))
	}
	if n.Value != nil && len(n.Value.Value) > 0 {
		b.WriteString(" value=" + pyRepr(n.Value.Value))
	}
	for _, a := range attrs {
		b.WriteString(", " + a)
	}
	w.lines = append(w.lines, b.String())
	return false, name
}

// axProperties renders the node's properties as BrowserGym does:
// ignored ones dropped, flags by name when truthy, others as name=repr.
func axProperties(props []*accessibility.Property) []string {
	var out []string
	for _, p := range props {
		if p == nil || p.Value == nil || len(p.Value.Value) == 0 {
			continue
		}
		name := string(p.Name)
		switch {
		case slices.Contains(axIgnoredProperties, name):
		case slices.Contains(axFlagProperties, name):
			if pyTruthy(p.Value.Value) {
				out = append(out, name)
			}
		default:
			out = append(out, name+"="+pyRepr(p.Value.Value))
		}
	}
	return out
}

// axString is a value's JSON string, or its raw JSON when it is not a
// string ("" when there is none).
func axString(v *accessibility.Value) string {
	if v == nil || len(v.Value) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(v.Value, &s); err != nil {
		return string(v.Value)
	}
	return s
}

// pyTruthy is Python's bool() of a decoded JSON value.
func pyTruthy(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0, string(raw) == "null", string(raw) == "false", string(raw) == `""`,
		string(raw) == "[]", string(raw) == "{}":
		return false
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		f, err := strconv.ParseFloat(string(raw), 64)
		return err != nil || f != 0
	}
	return true
}

// pyStrip is Python's str.strip(): Unicode whitespace plus the ASCII
// separators \x1c-\x1f, which Python also counts as whitespace.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) })
}

// pyRepr is Python's repr() of a JSON value as json.loads returns it:
// strings quoted, true/false/null as True/False/None, numbers as int or
// float, lists and dicts in order. Malformed JSON comes out raw.
func pyRepr(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var b strings.Builder
	if err := reprValue(dec, &b); err != nil {
		return string(raw)
	}
	return b.String()
}

func reprValue(dec *json.Decoder, b *strings.Builder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case string:
		b.WriteString(pyReprString(t))
	case bool:
		b.WriteString(map[bool]string{true: "True", false: "False"}[t])
	case nil:
		b.WriteString("None")
	case json.Number:
		b.WriteString(pyReprNumber(string(t)))
	case json.Delim:
		return reprContainer(dec, b, t)
	}
	return nil
}

func reprContainer(dec *json.Decoder, b *strings.Builder, open json.Delim) error {
	closer := map[json.Delim]string{'[': "]", '{': "}"}[open]
	b.WriteString(string(open))
	for i := 0; dec.More(); i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		if open == '{' {
			key, err := dec.Token()
			if err != nil {
				return err
			}
			ks, _ := key.(string)
			b.WriteString(pyReprString(ks) + ": ")
		}
		if err := reprValue(dec, b); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	b.WriteString(closer)
	return nil
}

// pyReprNumber renders a JSON number as Python prints what json.loads
// made of it: integers as they are, others as repr(float).
func pyReprNumber(lit string) string {
	if !strings.ContainsAny(lit, ".eE") {
		if strings.TrimLeft(lit, "-0") == "" {
			return "0" // Python's int("-0")
		}
		return lit
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return lit // out of range: Python would say inf; keep the literal
	}
	return pyReprFloat(f)
}

// pyReprFloat is Python's repr(float): shortest round-trip digits, fixed
// notation with ".0" for exponents in [-4, 16), else d.ddde+XX.
func pyReprFloat(f float64) string {
	e := strconv.FormatFloat(f, 'e', -1, 64) // e.g. "-1.5e+07"
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// pyReprString is Python's repr(str): single quotes unless the text has
// a ' and no ", backslash escapes for the quote, \\, \t, \n, \r, and
// \x, \u or \U escapes for characters Python does not print.
func pyReprString(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < ' ' || r == 0x7f:
			b.WriteString(`\x` + hex2(int(r)))
		case r < 0x7f || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			b.WriteString(`\x` + hex2(int(r)))
		case r <= 0xffff:
			b.WriteString(`\u` + leftPad(strconv.FormatInt(int64(r), 16), 4))
		default:
			b.WriteString(`\U` + leftPad(strconv.FormatInt(int64(r), 16), 8))
		}
	}
	b.WriteByte(quote)
	return b.String()
}

func hex2(n int) string { return leftPad(strconv.FormatInt(int64(n), 16), 2) }

func leftPad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return strings.Repeat("0", n-len(s)) + s
}
