package browser

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Call is one call of BrowserGym's high-level action language, e.g.
// click('12', button="right").
//
// Args holds one value per parameter of the action's signature, in
// signature order: keyword arguments are moved to their place, omitted
// parameters get BrowserGym's defaults. Values are typed by the parameter:
// string for str and Literal parameters, float64 for numbers (tab_focus'
// index is checked to be a whole number), bool, and []string for list
// parameters. Parameters typed `str | list[str]` (select_option's options,
// upload_file's file) are always []string: Playwright treats "a" and ["a"]
// alike, so the driver handles one shape. No BrowserGym signature accepts
// None, so nil never appears.
type Call struct {
	Name   string
	Args   []any
	Src    string // the call's source text, from its name to its ')'
	Index  int    // 0-based position among the calls of one ParseActions input
	Offset int    // byte offset of Src in that input
}

// ActionError is a browser action string that cannot be run: a syntax
// error, an unknown action or arguments that do not fit its signature.
type ActionError struct {
	Index  int    // 0-based position of the offending call (Error prints it 1-based)
	Offset int    // byte offset in the input where the problem is
	Action string // the offending call's source text (may be cut short)
	Msg    string // what is wrong and how to fix it
}

func (e *ActionError) Error() string {
	if e.Action == "" {
		return fmt.Sprintf("browser action %d at offset %d: %s", e.Index+1, e.Offset, e.Msg)
	}
	return fmt.Sprintf("browser action %d (%q) at offset %d: %s", e.Index+1, e.Action, e.Offset, e.Msg)
}

// paramKind is how a parameter's value is checked and typed.
type paramKind int

const (
	kindStr       paramKind = iota // str -> string
	kindFloat                      // float or int -> float64
	kindIndex                      // int used as a list index -> whole float64
	kindBool                       // bool -> bool
	kindStrs                       // str | list[str] -> []string
	kindButton                     // Literal["left", "middle", "right"] -> string
	kindModifiers                  // list[Literal[modifier keys]] -> []string
)

type param struct {
	name   string
	kind   paramKind
	def    any // default value; nil means required
	pyDef  string
	hasDef bool
}

type signature struct {
	name   string
	params []param
}

var (
	buttons   = []string{"left", "middle", "right"}
	modifiers = []string{"Alt", "Control", "ControlOrMeta", "Meta", "Shift"}
)

func req(name string, k paramKind) param { return param{name: name, kind: k} }

func opt(name string, k paramKind, def any, pyDef string) param {
	return param{name: name, kind: k, def: def, pyDef: pyDef, hasDef: true}
}

// signatures lists BrowserGym's actions (browsergym/core/action/functions.py)
// that Corral accepts: HighLevelActionSet's default subsets (chat, infeas,
// bid, nav, tab, plus noop) and the coordinate subset (coord). It is built
// per call because Go has no immutable maps and package state is banned.
func signatures() []signature {
	button := opt("button", kindButton, "left", `"left"`)
	mods := func() param { return opt("modifiers", kindModifiers, []string{}, "[]") }
	return []signature{
		{"send_msg_to_user", []param{req("text", kindStr)}},
		{"report_infeasible", []param{req("reason", kindStr)}},
		{"noop", []param{opt("wait_ms", kindFloat, 1000.0, "1000")}},
		{"scroll", []param{req("delta_x", kindFloat), req("delta_y", kindFloat)}},
		{"fill", []param{req("bid", kindStr), req("value", kindStr),
			opt("enable_autocomplete_menu", kindBool, false, "False")}},
		{"select_option", []param{req("bid", kindStr), req("options", kindStrs)}},
		{"click", []param{req("bid", kindStr), button, mods()}},
		{"dblclick", []param{req("bid", kindStr), button, mods()}},
		{"hover", []param{req("bid", kindStr)}},
		{"press", []param{req("bid", kindStr), req("key_comb", kindStr)}},
		{"focus", []param{req("bid", kindStr)}},
		{"clear", []param{req("bid", kindStr)}},
		{"drag_and_drop", []param{req("from_bid", kindStr), req("to_bid", kindStr)}},
		{"upload_file", []param{req("bid", kindStr), req("file", kindStrs)}},
		{"goto", []param{req("url", kindStr)}},
		{"go_back", nil},
		{"go_forward", nil},
		{"new_tab", nil},
		{"tab_close", nil},
		{"tab_focus", []param{req("index", kindIndex)}},
		{"scroll_at", []param{req("x", kindFloat), req("y", kindFloat), req("dx", kindFloat), req("dy", kindFloat)}},
		{"mouse_move", []param{req("x", kindFloat), req("y", kindFloat)}},
		{"mouse_up", []param{req("x", kindFloat), req("y", kindFloat), button}},
		{"mouse_down", []param{req("x", kindFloat), req("y", kindFloat), button}},
		{"mouse_click", []param{req("x", kindFloat), req("y", kindFloat), button}},
		{"mouse_dblclick", []param{req("x", kindFloat), req("y", kindFloat), button}},
		{"mouse_drag_and_drop", []param{req("from_x", kindFloat), req("from_y", kindFloat),
			req("to_x", kindFloat), req("to_y", kindFloat)}},
		{"mouse_upload_file", []param{req("x", kindFloat), req("y", kindFloat), req("file", kindStrs)}},
		{"keyboard_down", []param{req("key", kindStr)}},
		{"keyboard_up", []param{req("key", kindStr)}},
		{"keyboard_press", []param{req("key", kindStr)}},
		{"keyboard_type", []param{req("text", kindStr)}},
		{"keyboard_insert_text", []param{req("text", kindStr)}},
	}
}

// ActionNames returns the names of every action ParseActions accepts, in
// BrowserGym's order.
func ActionNames() []string {
	sigs := signatures()
	names := make([]string, len(sigs))
	for i, s := range sigs {
		names[i] = s.name
	}
	return names
}

func lookup(name string) (signature, bool) {
	for _, s := range signatures() {
		if s.name == name {
			return s, true
		}
	}
	return signature{}, false
}

// String renders the signature the way BrowserGym's docs show it, for
// error messages that tell the agent what to write instead.
func (s signature) String() string {
	parts := make([]string, len(s.params))
	for i, p := range s.params {
		parts[i] = p.name + ": " + p.kind.pyType()
		if p.hasDef {
			parts[i] += " = " + p.pyDef
		}
	}
	return s.name + "(" + strings.Join(parts, ", ") + ")"
}

func (k paramKind) pyType() string {
	switch k {
	case kindFloat:
		return "float"
	case kindIndex:
		return "int"
	case kindBool:
		return "bool"
	case kindStrs:
		return "str | list[str]"
	case kindButton:
		return `Literal["left", "middle", "right"]`
	case kindModifiers:
		return `list[Literal["Alt", "Control", "ControlOrMeta", "Meta", "Shift"]]`
	default:
		return "str"
	}
}

// Arg returns the value of the named parameter, or nil when the action
// has no such parameter.
func (c Call) Arg(name string) any {
	sig, ok := lookup(c.Name)
	if !ok {
		return nil
	}
	for i, p := range sig.params {
		if p.name == name && i < len(c.Args) {
			return c.Args[i]
		}
	}
	return nil
}

// Str returns the named string parameter ("" when absent or not a string).
func (c Call) Str(name string) string { s, _ := c.Arg(name).(string); return s }

// Float returns the named number parameter (0 when absent).
func (c Call) Float(name string) float64 { f, _ := c.Arg(name).(float64); return f }

// Bool returns the named bool parameter (false when absent).
func (c Call) Bool(name string) bool { b, _ := c.Arg(name).(bool); return b }

// Strs returns the named list parameter (nil when absent).
func (c Call) Strs(name string) []string { s, _ := c.Arg(name).([]string); return s }

// ParseActions parses a browse_interactive action string: one or more
// calls separated by newlines, semicolons or spaces, with Python comments.
// Arguments are Python literals (strings with escapes and triple quotes,
// numbers, True/False/None, lists, tuples, dicts), positional first, then
// keyword. Unlike BrowserGym's non-strict mode, which silently skips text
// that is not a call, anything else is an error, so a typo is reported to
// the agent instead of being dropped.
func ParseActions(src string) ([]Call, error) {
	p := &parser{src: src}
	var calls []Call
	for {
		p.skipBetweenCalls()
		if p.pos >= len(p.src) {
			break
		}
		c, err := p.call(len(calls))
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
	}
	if len(calls) == 0 {
		return nil, &ActionError{Offset: len(src), Msg: "no action given; send at least one call such as click('12'), goto('https://example.com') or noop()"}
	}
	return calls, nil
}

// call parses and binds one call starting at p.pos.
func (p *parser) call(index int) (Call, error) {
	start := p.pos
	fail := func(at int, format string, a ...any) error {
		return &ActionError{Index: index, Offset: at, Action: p.snippet(start, at), Msg: fmt.Sprintf(format, a...)}
	}
	name := p.ident()
	if name == "" {
		return Call{}, fail(p.pos, "expected an action name, found %s; write calls such as click('12')", p.describeHere())
	}
	p.skipSpace()
	if p.peek() != '(' {
		return Call{}, fail(p.pos, "expected '(' after %q, found %s", name, p.describeHere())
	}
	p.pos++
	pos, kw, perr := p.arguments()
	if perr != nil {
		return Call{}, fail(perr.at, "%s", perr.msg)
	}
	c := Call{Name: name, Src: p.src[start:p.pos], Index: index, Offset: start}
	sig, ok := lookup(name)
	if !ok {
		msg := fmt.Sprintf("unknown action %q", name)
		if near := closest(name, ActionNames()); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
		return Call{}, fail(start, "%s; known: %s", msg, strings.Join(ActionNames(), ", "))
	}
	args, berr := bind(sig, pos, kw)
	if berr != nil {
		at := berr.at
		if at < 0 {
			at = p.pos - 1 // a missing argument is missing at the ')'
		}
		return Call{}, fail(at, "%s; signature: %s", berr.msg, sig)
	}
	c.Args = args
	return c, nil
}

// snippet is the call's source for error messages: from its start to the
// end of the line the error is on (at least to the error), at most 200
// bytes, cut on a rune boundary.
func (p *parser) snippet(start, at int) string {
	end := max(at, start)
	if end > len(p.src) {
		end = len(p.src)
	}
	if i := strings.IndexByte(p.src[end:], '\n'); i >= 0 {
		end += i
	} else {
		end = len(p.src)
	}
	s := strings.TrimSpace(p.src[start:end])
	const limit = 200
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// closest returns the known name within edit distance 2 of name, if any.
func closest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(name, k, bestD); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, or limit when it
// is at least limit (long inputs are not worth a full table).
func editDistance(a, b string, limit int) int {
	if len(a) > 64 || len(b) > 64 || abs(len(a)-len(b)) >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// bindError is a binding problem at a byte offset.
type bindError struct {
	at  int
	msg string
}

// bind places positional and keyword arguments on the signature, fills
// defaults and types every value, as Python's call binding would before
// BrowserGym's function ran.
func bind(sig signature, pos []value, kw []kwarg) ([]any, *bindError) {
	args := make([]any, len(sig.params))
	given := make([]bool, len(sig.params))
	if len(pos) > len(sig.params) {
		return nil, &bindError{pos[len(sig.params)].at, fmt.Sprintf("%s takes %s but %d were given",
			sig.name, countArgs(len(sig.params)), len(pos))}
	}
	for i, v := range pos {
		a, err := convert(sig.params[i], v)
		if err != nil {
			return nil, err
		}
		args[i], given[i] = a, true
	}
	for _, k := range kw {
		i := slices.IndexFunc(sig.params, func(p param) bool { return p.name == k.name })
		if i < 0 {
			return nil, &bindError{k.at, fmt.Sprintf("unexpected keyword argument %q", k.name)}
		}
		if given[i] {
			return nil, &bindError{k.at, fmt.Sprintf("argument %q given twice", k.name)}
		}
		a, err := convert(sig.params[i], k.val)
		if err != nil {
			return nil, err
		}
		args[i], given[i] = a, true
	}
	for i, p := range sig.params {
		if given[i] {
			continue
		}
		if !p.hasDef {
			return nil, &bindError{-1, fmt.Sprintf("missing required argument %q", p.name)}
		}
		args[i] = p.def
		if s, ok := p.def.([]string); ok {
			args[i] = slices.Clone(s) // callers may append; never share the default
		}
	}
	return args, nil
}

func countArgs(n int) string {
	switch n {
	case 0:
		return "no arguments"
	case 1:
		return "1 argument"
	}
	return fmt.Sprintf("at most %d arguments", n)
}

// convert checks one value against its parameter and types it.
func convert(p param, v value) (any, *bindError) {
	bad := func(want string) *bindError {
		return &bindError{v.at, fmt.Sprintf("argument %q must be %s, got %s", p.name, want, v.src)}
	}
	switch p.kind {
	case kindStr:
		if v.kind != valStr {
			return nil, bad("a string such as '12' (quote it)")
		}
		return v.str, nil
	case kindFloat:
		if v.kind != valNum {
			return nil, bad("a number")
		}
		return v.num, nil
	case kindIndex:
		if v.kind != valNum || v.num != math.Trunc(v.num) {
			return nil, bad("a whole number")
		}
		return v.num, nil
	case kindBool:
		if v.kind != valBool {
			return nil, bad("True or False")
		}
		return v.b, nil
	case kindButton:
		if v.kind != valStr || !slices.Contains(buttons, v.str) {
			return nil, bad(`one of "left", "middle", "right"`)
		}
		return v.str, nil
	case kindStrs:
		if v.kind == valStr {
			return []string{v.str}, nil
		}
		out, ok := v.strings()
		if !ok {
			return nil, bad(`a string or a list of strings such as ["a", "b"]`)
		}
		return out, nil
	default: // kindModifiers
		out, ok := v.strings()
		if !ok || slices.ContainsFunc(out, func(s string) bool { return !slices.Contains(modifiers, s) }) {
			return nil, bad(`a list of "Alt", "Control", "ControlOrMeta", "Meta", "Shift"`)
		}
		return out, nil
	}
}

// The rest of this file reads Python literals as BrowserGym's pyparsing
// grammar (action/parsers.py) accepts them.

type valKind int

const (
	valStr valKind = iota
	valNum
	valBool
	valNone
	valList // list or tuple
	valDict
)

// value is one parsed literal; src is its source text for error messages.
type value struct {
	kind  valKind
	str   string
	num   float64
	b     bool
	items []value
	at    int
	src   string
}

// strings returns a list of strings' items, ok=false for anything else.
func (v value) strings() ([]string, bool) {
	if v.kind != valList {
		return nil, false
	}
	out := make([]string, 0, len(v.items))
	for _, it := range v.items {
		if it.kind != valStr {
			return nil, false
		}
		out = append(out, it.str)
	}
	return out, true
}

type kwarg struct {
	name string
	val  value
	at   int
}

type parser struct {
	src string
	pos int
}

// syntaxError is a parse problem at a byte offset.
type syntaxError struct {
	at  int
	msg string
}

// maxDepth bounds list nesting so hostile input cannot exhaust the stack.
const maxDepth = 32

func (p *parser) peek() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

// skipSpace skips blanks, newlines and comments: pyparsing ignores them
// between any two tokens of a call.
func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		case '#':
			if i := strings.IndexByte(p.src[p.pos:], '\n'); i >= 0 {
				p.pos += i
			} else {
				p.pos = len(p.src)
			}
		default:
			return
		}
	}
}

// skipBetweenCalls also skips semicolons, Python's statement separator.
func (p *parser) skipBetweenCalls() {
	for {
		p.skipSpace()
		if p.peek() != ';' {
			return
		}
		p.pos++
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// ident reads an identifier, "" when there is none here.
func (p *parser) ident() string {
	start := p.pos
	if !isIdentStart(p.peek()) {
		return ""
	}
	for p.pos < len(p.src) && isIdentChar(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// describeHere names what is at p.pos for "expected X, found Y" messages.
func (p *parser) describeHere() string {
	if p.pos >= len(p.src) {
		return "end of input"
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	if r == '\n' {
		return "end of line"
	}
	return strconv.QuoteRune(r)
}

// arguments reads "args)" after the '(' of a call: positional values,
// then name=value pairs, with an optional trailing comma.
func (p *parser) arguments() ([]value, []kwarg, *syntaxError) {
	var pos []value
	var kw []kwarg
	for {
		p.skipSpace()
		if p.peek() == ')' {
			p.pos++
			return pos, kw, nil
		}
		if k, ok := p.keyword(); ok {
			v, err := p.value(0)
			if err != nil {
				return nil, nil, err
			}
			k.val = v
			kw = append(kw, k)
		} else {
			v, err := p.value(0)
			if err != nil {
				return nil, nil, err
			}
			if len(kw) > 0 {
				return nil, nil, &syntaxError{v.at, "positional argument follows keyword argument; put positional arguments first"}
			}
			pos = append(pos, v)
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.pos++
		case ')':
		default:
			return nil, nil, &syntaxError{p.pos, fmt.Sprintf("expected ',' or ')' in the argument list, found %s", p.describeHere())}
		}
	}
}

// keyword consumes "name =" when it is there; otherwise it leaves p.pos
// alone so the value parser sees True, False, None or a bare name.
func (p *parser) keyword() (kwarg, bool) {
	start := p.pos
	name := p.ident()
	if name == "" {
		return kwarg{}, false
	}
	p.skipSpace()
	if p.peek() == '=' && !strings.HasPrefix(p.src[p.pos:], "==") {
		p.pos++
		p.skipSpace()
		return kwarg{name: name, at: start}, true
	}
	p.pos = start
	return kwarg{}, false
}

// value reads one literal.
func (p *parser) value(depth int) (value, *syntaxError) {
	p.skipSpace()
	start := p.pos
	v, err := p.literal(depth)
	if err != nil {
		return value{}, err
	}
	v.at, v.src = start, p.src[start:p.pos]
	return v, nil
}

func (p *parser) literal(depth int) (value, *syntaxError) {
	c := p.peek()
	switch {
	case c == '\'' || c == '"':
		s, err := p.pyString()
		return value{kind: valStr, str: s}, err
	case c == '+' || c == '-' || c == '.' || (c >= '0' && c <= '9'):
		f, err := p.number()
		return value{kind: valNum, num: f}, err
	case c == '[' || c == '(' || c == '{':
		if depth >= maxDepth {
			return value{}, &syntaxError{p.pos, fmt.Sprintf("lists nested more than %d deep", maxDepth)}
		}
		return p.container(depth)
	case isIdentStart(c):
		start := p.pos
		switch name := p.ident(); name {
		case "True", "False":
			return value{kind: valBool, b: name == "True"}, nil
		case "None":
			return value{kind: valNone}, nil
		default:
			return value{}, &syntaxError{start, fmt.Sprintf("unexpected name %q where a value belongs; quote strings, e.g. '%s'", name, name)}
		}
	default:
		return value{}, &syntaxError{p.pos, fmt.Sprintf("expected a value (a quoted string, number, True, False, None or list), found %s", p.describeHere())}
	}
}

// container reads a list [..], tuple (..) or dict {..}.
func (p *parser) container(depth int) (value, *syntaxError) {
	open := p.src[p.pos]
	closer := map[byte]byte{'[': ']', '(': ')', '{': '}'}[open]
	p.pos++
	v := value{kind: valList}
	if open == '{' {
		v.kind = valDict
	}
	for {
		p.skipSpace()
		if p.peek() == closer {
			p.pos++
			return v, nil
		}
		item, err := p.value(depth + 1)
		if err != nil {
			return value{}, err
		}
		if open == '{' {
			if item.kind != valStr {
				return value{}, &syntaxError{item.at, "dict keys must be quoted strings"}
			}
			p.skipSpace()
			if p.peek() != ':' {
				return value{}, &syntaxError{p.pos, fmt.Sprintf("expected ':' after a dict key, found %s", p.describeHere())}
			}
			p.pos++
			if item, err = p.value(depth + 1); err != nil {
				return value{}, err
			}
		}
		v.items = append(v.items, item)
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.pos++
		case closer:
		default:
			return value{}, &syntaxError{p.pos, fmt.Sprintf("expected ',' or %q, found %s", closer, p.describeHere())}
		}
	}
}

// number reads pyparsing_common.number: optional sign, digits, optional
// fraction and exponent (no underscores, hex or inf, as in BrowserGym).
func (p *parser) number() (float64, *syntaxError) {
	start := p.pos
	if c := p.peek(); c == '+' || c == '-' {
		p.pos++
	}
	digits := p.digits()
	if p.peek() == '.' {
		p.pos++
		digits += p.digits()
	}
	if digits == 0 {
		return 0, &syntaxError{start, fmt.Sprintf("malformed number %q", p.src[start:p.pos])}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		save := p.pos
		p.pos++
		if c := p.peek(); c == '+' || c == '-' {
			p.pos++
		}
		if p.digits() == 0 {
			p.pos = save // "1e" is the number 1 followed by a name, as in pyparsing
		}
	}
	f, err := strconv.ParseFloat(p.src[start:p.pos], 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, &syntaxError{start, fmt.Sprintf("number %q is out of range", p.src[start:p.pos])}
	}
	return f, nil
}

func (p *parser) digits() int {
	n := 0
	for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
		p.pos++
		n++
	}
	return n
}

// pyString reads a Python string literal in single, double or tripled
// quotes and decodes its escapes as ast.literal_eval would.
func (p *parser) pyString() (string, *syntaxError) {
	start := p.pos
	q := p.src[p.pos : p.pos+1]
	if strings.HasPrefix(p.src[p.pos:], q+q+q) {
		q = q + q + q
	}
	p.pos += len(q)
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			return "", &syntaxError{start, "unterminated string; close it with " + q}
		}
		if strings.HasPrefix(p.src[p.pos:], q) {
			p.pos += len(q)
			return b.String(), nil
		}
		c := p.src[p.pos]
		switch {
		case c == '\n' && len(q) == 1:
			return "", &syntaxError{start, "unterminated string at end of line; write \\n for a newline or use triple quotes"}
		case c == '\\':
			if err := p.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
}

// escape decodes one backslash escape at p.pos into b.
func (p *parser) escape(b *strings.Builder) *syntaxError {
	at := p.pos
	p.pos++
	if p.pos >= len(p.src) {
		return &syntaxError{at, "string ends with a lone backslash"}
	}
	c := p.src[p.pos]
	p.pos++
	simple := map[byte]string{'\n': "", '\\': `\`, '\'': `'`, '"': `"`, 'a': "\a",
		'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t", 'v': "\v"}
	if s, ok := simple[c]; ok {
		b.WriteString(s)
		return nil
	}
	switch c {
	case '0', '1', '2', '3', '4', '5', '6', '7':
		n := int(c - '0')
		for i := 0; i < 2 && p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '7'; i++ {
			n = n*8 + int(p.src[p.pos]-'0')
			p.pos++
		}
		b.WriteRune(rune(n))
	case 'x', 'u', 'U':
		width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
		if p.pos+width > len(p.src) {
			return &syntaxError{at, fmt.Sprintf(`truncated \%c escape: it needs %d hex digits`, c, width)}
		}
		n, err := strconv.ParseUint(p.src[p.pos:p.pos+width], 16, 32)
		if err != nil || n > utf8.MaxRune {
			return &syntaxError{at, fmt.Sprintf(`bad \%c escape %q: it needs %d hex digits`, c, p.src[at:p.pos+width], width)}
		}
		p.pos += width
		b.WriteRune(rune(n))
	case 'N':
		return &syntaxError{at, `\N{...} escapes are not supported; write the character itself or \u escape`}
	default:
		// Python keeps unknown escapes as they are (with a warning).
		b.WriteByte('\\')
		p.pos--
	}
	return nil
}
