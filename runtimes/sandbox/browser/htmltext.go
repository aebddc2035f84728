package browser

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/chromedp/cdproto/cdp"
)

// HTMLText is the page text of a `browse` observation: the Markdown-like
// text OpenHands gets by printing the DOM as HTML (BrowserGym's
// flatten_dom_to_str, which BeautifulSoup pretty-prints: every tag and
// every text on a line of its own) and converting it with html2text set
// as OpenHands sets it (links kept inline, images ignored, no wrapping).
//
// root is the document from CDP's DOM.getDocument with depth -1 (pierce
// true to include shadow roots). Corral cannot parse HTML itself (no HTML
// parser module is available to it), so it reads Chromium's own tree.
//
// The pretty-printing is why OpenHands' text has a space inside link
// brackets ("[ Go one ](one.html)"), between inline elements and after
// text before a line end; this function keeps those quirks, since they
// are what an OpenHands agent is used to. Not covered: iframe contents
// and Google-Docs styling.
func HTMLText(root *cdp.Node) string {
	var l lexer
	l.node(root, 0, false, false)
	l.flushData()
	w := newMDWriter()
	for _, ev := range l.events {
		switch ev.kind {
		case evStart, evEnd:
			w.tag(ev.tag, ev.attrs, ev.kind == evStart)
		case evData:
			w.data(ev.text, false)
		case evEntity:
			w.data(ev.text, true)
		}
	}
	return w.finish()
}

// The lexer turns the DOM into the event stream Python's HTMLParser
// delivers to html2text for BeautifulSoup's pretty-printed HTML.

type eventKind int

const (
	evStart eventKind = iota
	evEnd
	evData
	evEntity // a character the printed HTML wrote as &amp; &lt; or &gt;
)

type event struct {
	kind  eventKind
	tag   string
	attrs map[string]string
	text  string
}

type lexer struct {
	events []event
	data   strings.Builder // text between two tags, not yet emitted
}

// voidTags have no end tag in HTML; BeautifulSoup prints them as <br/>,
// which HTMLParser reports as a start and an end.
var voidTags = []string{"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}

// node emits n at indent depth. keep: inside <pre> or <textarea>, whose
// text BeautifulSoup prints as it is. skipText: the parent is a node
// BrowserGym prints no tag for (a shadow root), whose text it drops.
func (l *lexer) node(n *cdp.Node, depth int, keep, skipText bool) {
	if n == nil {
		return
	}
	switch n.NodeType {
	case 1:
		l.element(n, depth, keep)
	case 3:
		if skipText {
			return
		}
		if keep {
			l.data.WriteString(n.NodeValue)
		} else if t := pyStrip(n.NodeValue); t != "" {
			l.data.WriteString(strings.Repeat(" ", depth) + t + "\n")
		}
	case 9, 11: // document, shadow root: no tag, children only
		for _, c := range n.Children {
			l.node(c, depth, keep, n.NodeType == 11)
		}
	}
}

// element emits an element as prettify prints it: indent, start tag, a
// line end, the children one level deeper, indent, end tag, a line end;
// no line ends or indents inside <pre> and <textarea>; void elements as
// one tag.
func (l *lexer) element(n *cdp.Node, depth int, keep bool) {
	tag := strings.ToLower(n.LocalName)
	if tag == "" {
		tag = strings.ToLower(n.NodeName)
	}
	attrs := make(map[string]string, len(n.Attributes)/2)
	for i := 0; i+1 < len(n.Attributes); i += 2 {
		attrs[strings.ToLower(n.Attributes[i])] = n.Attributes[i+1]
	}
	innerKeep := keep || tag == "pre" || tag == "textarea"
	if !keep {
		l.data.WriteString(strings.Repeat(" ", depth))
	}
	l.tag(event{kind: evStart, tag: tag, attrs: attrs})
	if !slices.Contains(voidTags, tag) {
		if !innerKeep {
			l.data.WriteString("\n")
		}
		if tag != "template" {
			l.children(n, depth+1, innerKeep)
		}
		if !innerKeep {
			l.data.WriteString(strings.Repeat(" ", depth))
		}
	}
	l.tag(event{kind: evEnd, tag: tag})
	if !keep {
		l.data.WriteString("\n")
	}
}

func (l *lexer) children(n *cdp.Node, depth int, keep bool) {
	for _, s := range n.ShadowRoots {
		// Chromium's own shadow roots (inside <select>, <textarea>,
		// <details>, ...) are not part of BrowserGym's DOM snapshot.
		if s.ShadowRootType != cdp.ShadowRootTypeUserAgent {
			l.node(s, depth, keep, false)
		}
	}
	for _, c := range n.Children {
		l.node(c, depth, keep, false)
	}
}

// tag emits a tag event after the text before it.
func (l *lexer) tag(ev event) {
	l.flushData()
	l.events = append(l.events, ev)
}

// flushData emits the pending text, split where the printed HTML had an
// entity, since HTMLParser reports those separately.
func (l *lexer) flushData() {
	s := l.data.String()
	l.data.Reset()
	for s != "" {
		i := strings.IndexAny(s, "&<>")
		if i < 0 {
			l.events = append(l.events, event{kind: evData, text: s})
			return
		}
		if i > 0 {
			l.events = append(l.events, event{kind: evData, text: s[:i]})
		}
		l.events = append(l.events, event{kind: evEntity, text: s[i : i+1]})
		s = s[i+1:]
	}
}

// pyWS is what Python's \s matches in a str, for the patterns below.
const pyWS = `[\s\x0b\x1c-\x1f\x85\p{Z}]`

var (
	mdDot       = regexp.MustCompile(`(?m)^(` + pyWS + `*\d+)(\.)(` + pyWS + `)`)
	mdPlus      = regexp.MustCompile(`(?m)^(` + pyWS + `*)(\+)(` + pyWS + `)`)
	mdDash      = regexp.MustCompile(`(?m)^(` + pyWS + `*)(-)(` + pyWS + `|-)`)
	mdLinkChars = regexp.MustCompile(`([\\\[\]()])`)
	absoluteURL = regexp.MustCompile(`^[a-zA-Z+]+://`)
)

// escapeMDSection is html2text's escape_md_section without escape_snob:
// it doubles a backslash before a Markdown special and escapes "1. ",
// "+ " and "- " at line starts, which would otherwise read as lists.
func escapeMDSection(s string) string {
	const specials = "\\`*_{}[]()#+-.!"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(s[i])
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(specials, s[i+1]) >= 0 {
			b.WriteByte('\\')
		}
	}
	s = mdDot.ReplaceAllString(b.String(), `$1\$2$3`)
	s = mdPlus.ReplaceAllString(s, `$1\$2$3`)
	return mdDash.ReplaceAllString(s, `$1\$2$3`)
}

func escapeMD(s string) string { return mdLinkChars.ReplaceAllString(s, `\$1`) }

// isPySpace is Python's str.isspace for one character, which \s matches.
func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// collapseSpace is re.sub(r"\s+", " ", s).
func collapseSpace(s string) string {
	var b strings.Builder
	inSpace := false
	for _, r := range s {
		if isPySpace(r) {
			if !inSpace {
				b.WriteByte(' ')
			}
			inSpace = true
			continue
		}
		inSpace = false
		b.WriteRune(r)
	}
	return b.String()
}

// headingLevel is 1-9 for h1-h9, else 0.
func headingLevel(tag string) int {
	if len(tag) == 2 && tag[0] == 'h' && tag[1] > '0' && tag[1] <= '9' {
		return int(tag[1] - '0')
	}
	return 0
}

func listStart(attrs map[string]string) int {
	if s, ok := attrs["start"]; ok {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return n - 1
		}
	}
	return 0
}

// mdWriter renders the tag and text events the way html2text does with
// OpenHands' settings: it holds the pending line breaks (pp), the pending
// space and the list, link, table and pre state between events.
type mdWriter struct {
	out       []byte
	lastChunk int  // length of the last piece written, for undoing a "["
	lastNL    bool // the output ends with a newline

	quiet, blockquote int
	pp                int    // newlines owed before the next output
	brToggle          string // "  " after a soft break: a Markdown hard break
	start, space      bool

	links     []map[string]string // open <a>s; nil for one that is not a link
	autoLink  *string             // href of a link whose text has not started
	emptyLink bool

	lists          []*mdList
	lastWasList    bool
	listCodeIndent string

	pre, startPre bool
	preIndent     string
	code, quote   bool

	stressed, precedingStressed bool
	precedingData, currentTag   string

	splitNextTd, tableStart bool
	tdCount                 int

	abbrTitle, abbrData *string
	abbrs               [][2]string
}

type mdList struct {
	name string
	num  int
}

func newMDWriter() *mdWriter { return &mdWriter{start: true} }

// out appends a piece of output.
func (w *mdWriter) write(s string) {
	w.out = append(w.out, s...)
	w.lastChunk = len(s)
	if s != "" {
		w.lastNL = s[len(s)-1] == '\n'
	}
}

func (w *mdWriter) pbr() {
	if w.pp == 0 {
		w.pp = 1
	}
}

func (w *mdWriter) p() { w.pp = 2 }

func (w *mdWriter) softBr() {
	w.pbr()
	w.brToggle = "  "
}

// emit is html2text's o(): it writes owed breaks, spaces, blockquote and
// pre indentation, then the data. force writes even empty data; end
// finishes the document.
func (w *mdWriter) emit(data string, pure, force, end bool) {
	if w.abbrData != nil {
		*w.abbrData += data
	}
	if w.quiet != 0 {
		return
	}
	if pure && !w.pre {
		data = collapseSpace(data)
		if strings.HasPrefix(data, " ") {
			w.space = true
			data = data[1:]
		}
	}
	if data == "" && !force && !end {
		return
	}
	if w.startPre && !strings.HasPrefix(data, "\n") && !strings.HasPrefix(data, "\r\n") {
		data = "\n" + data
	}
	bq := strings.Repeat(">", w.blockquote)
	if !(force && strings.HasPrefix(data, ">")) && w.blockquote > 0 {
		bq += " "
	}
	if w.pre {
		if len(w.lists) > 0 {
			bq += w.listCodeIndent
		}
		bq += "    "
		data = strings.ReplaceAll(data, "\n", "\n"+bq)
		w.preIndent = bq
	}
	if w.startPre {
		w.startPre = false
		if len(w.lists) > 0 {
			data = strings.TrimLeft(data, "\n"+w.preIndent)
		}
	}
	w.emitPending(bq, end)
	w.pp = 0
	w.write(data)
}

// emitPending writes what is owed before new data: the document start
// resets it, the end writes a newline and the abbreviations.
func (w *mdWriter) emitPending(bq string, end bool) {
	if w.start {
		w.space, w.pp, w.start = false, 0, false
	}
	if end {
		w.pp = 0
		w.write("\n")
		w.space = false
	}
	if w.pp > 0 {
		w.write(strings.Repeat(w.brToggle+"\n"+bq, w.pp))
		w.space, w.brToggle = false, ""
	}
	if w.space {
		if !w.lastNL {
			w.write(" ")
		}
		w.space = false
	}
	if end {
		for _, a := range w.abbrs {
			w.write("  *[" + a[0] + "]: " + a[1] + "\n")
		}
	}
}

func (w *mdWriter) o(s string) { w.emit(s, false, false, false) }

// data is html2text's handle_data for text (entity: one character the
// HTML wrote as an entity, which is not escaped).
func (w *mdWriter) data(s string, entity bool) {
	if s == "" {
		return
	}
	if w.stressed {
		s = pyStrip(s)
		w.stressed, w.precedingStressed = false, true
	} else if w.precedingStressed {
		r := []rune(s)[0]
		if !strings.ContainsRune("][(){}.!?", r) && !isPySpace(r) && headingLevel(w.currentTag) == 0 &&
			!slices.Contains([]string{"a", "code", "pre"}, w.currentTag) {
			s = " " + s
		}
		w.precedingStressed = false
	}
	if w.autoLink != nil {
		href := *w.autoLink
		if href == s && absoluteURL.MatchString(href) {
			w.o("<" + s + ">")
			w.emptyLink = false
			return
		}
		w.o("[")
		w.autoLink, w.emptyLink = nil, false
	}
	if !w.code && !w.pre && !entity {
		s = escapeMDSection(s)
	}
	w.precedingData = s
	w.emit(s, true, false, false)
}

func (w *mdWriter) finish() string {
	w.pbr()
	w.emit("", false, false, true)
	return string(w.out)
}

// tag is html2text's handle_tag for the tags it knows; others only end
// a pending list state.
func (w *mdWriter) tag(tag string, attrs map[string]string, start bool) {
	w.currentTag = tag
	// A link whose first content is another tag gets its "[" now.
	if start && w.autoLink != nil && !slices.Contains([]string{"p", "div", "style", "dl", "dt"}, tag) {
		w.o("[")
		w.autoLink, w.emptyLink = nil, false
	}
	if n := headingLevel(tag); n > 0 {
		if w.heading(n, start) {
			return
		}
	}
	w.blockTag(tag, start)
	w.inlineTag(tag, attrs, start)
	if tag == "a" {
		w.anchor(attrs, start)
	}
	w.listTag(tag, attrs, start)
	w.tableTag(tag, start)
	if tag == "pre" {
		if start {
			w.startPre, w.pre, w.preIndent = true, true, ""
		} else {
			w.pre = false
		}
		w.p()
	}
}

// heading handles h1-h9; true means the tag is done with.
func (w *mdWriter) heading(n int, start bool) bool {
	marks := strings.Repeat("#", n) + " "
	if len(w.links) > 0 { // a heading inside a link: keep the link whole
		if !start {
			w.pp = 0
			return true
		}
		if w.lastChunk == 1 && len(w.out) > 0 && w.out[len(w.out)-1] == '[' {
			w.out = w.out[:len(w.out)-1]
			w.lastChunk = 0
			w.space = false
			w.o(marks)
			w.o("[")
		}
		return false
	}
	w.p()
	if start {
		w.o(marks)
		return false
	}
	return true
}

func (w *mdWriter) blockTag(tag string, start bool) {
	switch tag {
	case "p", "div":
		if len(w.links) == 0 && !w.splitNextTd {
			w.p()
		}
	case "br":
		if start && w.blockquote > 0 {
			w.o("  \n> ")
		} else if start {
			w.o("  \n")
		}
	case "hr":
		if start {
			w.p()
			w.o("* * *")
			w.p()
		}
	case "head", "style", "script":
		if start {
			w.quiet++
		} else {
			w.quiet--
		}
	case "body":
		w.quiet = 0
	case "blockquote":
		if start {
			w.p()
			w.emit("> ", false, true, false)
			w.start = true
			w.blockquote++
		} else {
			w.blockquote--
			w.p()
		}
	}
}

func (w *mdWriter) inlineTag(tag string, attrs map[string]string, start bool) {
	// mark writes an emphasis mark, spaced from a preceding character
	// that would otherwise glue to it.
	mark := func(m string, glues func(byte) bool) {
		if start && w.precedingData != "" && glues(w.precedingData[len(w.precedingData)-1]) {
			m = " " + m
			w.precedingData += " "
		}
		w.o(m)
		if start {
			w.stressed = true
		}
	}
	switch tag {
	case "em", "i", "u":
		mark("_", func(c byte) bool { return !strings.ContainsRune(" \t\n\r\x0b\x0c", rune(c)) && !isASCIIPunct(c) })
	case "strong", "b":
		mark("**", func(c byte) bool { return c == '*' })
	case "del", "strike", "s":
		mark("~~", func(c byte) bool { return c == '~' })
	case "kbd", "code", "tt":
		if !w.pre {
			w.o("`")
			w.code = !w.code
		}
	case "abbr":
		if start {
			w.abbrTitle, w.abbrData = nil, new(string)
			if t, ok := attrs["title"]; ok {
				w.abbrTitle = &t
			}
		} else {
			if w.abbrTitle != nil && w.abbrData != nil {
				w.abbrs = setAbbr(w.abbrs, *w.abbrData, *w.abbrTitle)
				w.abbrTitle = nil
			}
			w.abbrData = nil
		}
	case "q":
		w.o(`"`)
		w.quote = !w.quote
	}
}

// setAbbr records an abbreviation, replacing an earlier definition in
// place as a Python dict does.
func setAbbr(list [][2]string, abbr, title string) [][2]string {
	for i := range list {
		if list[i][0] == abbr {
			list[i][1] = title
			return list
		}
	}
	return append(list, [2]string{abbr, title})
}

func isASCIIPunct(c byte) bool {
	return strings.IndexByte("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) >= 0
}

// anchor opens and closes links: [text](href "title"), <href> when the
// text is the absolute href itself; links to "#..." keep only the text.
func (w *mdWriter) anchor(attrs map[string]string, start bool) {
	if start {
		href, ok := attrs["href"]
		if ok && !strings.HasPrefix(href, "#") {
			w.links = append(w.links, attrs)
			w.autoLink, w.emptyLink = &href, true
		} else {
			w.links = append(w.links, nil)
		}
		return
	}
	if len(w.links) == 0 {
		return
	}
	a := w.links[len(w.links)-1]
	w.links = w.links[:len(w.links)-1]
	if w.autoLink != nil && *w.autoLink != "" && !w.emptyLink {
		w.autoLink = nil
		return
	}
	if a == nil {
		return
	}
	if w.emptyLink {
		w.o("[")
		w.emptyLink, w.autoLink = false, nil
	}
	w.pp = 0
	title := ""
	if t := escapeMD(a["title"]); pyStrip(t) != "" {
		title = ` "` + t + `"`
	}
	w.o("](" + escapeMD(a["href"]) + title + ")")
}

func (w *mdWriter) listTag(tag string, attrs map[string]string, start bool) {
	switch tag {
	case "dl":
		if start {
			w.p()
		}
	case "dt":
		if !start {
			w.pbr()
		}
	case "dd":
		if start {
			w.o("    ")
		} else {
			w.pbr()
		}
	}
	if tag == "ol" || tag == "ul" {
		if len(w.lists) == 0 && !w.lastWasList {
			w.p()
		}
		if start {
			w.lists = append(w.lists, &mdList{name: tag, num: listStart(attrs)})
		} else if len(w.lists) > 0 {
			w.lists = w.lists[:len(w.lists)-1]
			if len(w.lists) == 0 {
				w.o("\n")
			}
		}
		w.lastWasList = true
	} else {
		w.lastWasList = false
	}
	if tag == "li" {
		w.listItem(start)
	}
}

func (w *mdWriter) listItem(start bool) {
	w.listCodeIndent = ""
	w.pbr()
	if !start {
		return
	}
	li := &mdList{name: "ul"}
	if len(w.lists) > 0 {
		li = w.lists[len(w.lists)-1]
	}
	parent := ""
	for _, l := range w.lists {
		if parent == "ol" {
			w.listCodeIndent += "   "
		} else {
			w.listCodeIndent += "  "
		}
		parent = l.name
	}
	w.o(w.listCodeIndent)
	switch li.name {
	case "ul":
		w.listCodeIndent += "  "
		w.o("* ")
	case "ol":
		li.num++
		w.listCodeIndent += "   "
		w.o(strconv.Itoa(li.num) + ". ")
	}
	w.start = true
}

// tableTag writes rows as "a| b" lines, the first one underlined with
// "---|---", as html2text does without pad_tables.
func (w *mdWriter) tableTag(tag string, start bool) {
	switch {
	case tag == "table" && start:
		w.tableStart = true
	case (tag == "td" || tag == "th") && start:
		if w.splitNextTd {
			w.o("| ")
		}
		w.splitNextTd = true
		w.tdCount++
	case tag == "tr" && start:
		w.tdCount = 0
	case tag == "tr":
		w.splitNextTd = false
		w.softBr()
		if w.tableStart {
			w.o(strings.TrimSuffix(strings.Repeat("---|", w.tdCount), "|"))
			w.softBr()
			w.tableStart = false
		}
	}
}
