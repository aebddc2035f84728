package sandbox

import (
	"errors"
	"strings"
)

// errUnparsable makes SplitBashCommands fall back to returning its input as
// one command, like OpenHands does when bashlex cannot parse it.
var errUnparsable = errors.New("unparsable bash input")

// maxSplitDepth bounds the scanner's recursion (nested $( ), quotes) so that
// adversarial input cannot exhaust the stack.
const maxSplitDepth = 200

// SplitBashCommands splits cmd into its top-level commands, like OpenHands'
// split_bash_commands (bashlex): commands are separated by top-level
// newlines; heredocs, backslash-newline continuations, compound commands
// (if/for/while/until/select/case, { }, ( )), &&/||/|/; chains, $( ),
// ${ }, quotes and backticks stay inside one command. Comments and blank
// lines after a command are glued to it; every piece is right-trimmed.
// Input it cannot parse (an unclosed quote, heredoc, backtick or compound)
// comes back unchanged as a single command, and blank input as [""].
//
// One deliberate difference: OpenHands returns a comment that precedes the
// first command as a separate piece (and so refuses "# note\nls" as two
// commands); here it is glued to the first command.
func SplitBashCommands(cmd string) []string {
	if strings.TrimSpace(cmd) == "" {
		return []string{""}
	}
	sc := &splitScanner{s: cmd}
	starts, err := sc.scan()
	if err != nil || len(starts) == 0 {
		return []string{cmd}
	}
	// The first piece starts at the first non-blank byte, so a leading
	// comment belongs to it.
	starts[0] = len(cmd) - len(strings.TrimLeft(cmd, " \t\r\n"))
	out := make([]string, 0, len(starts))
	for i, st := range starts {
		end := len(cmd)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		out = append(out, strings.TrimRight(cmd[st:end], " \t\r\n\v\f"))
	}
	return out
}

type heredocSpec struct {
	delim     string
	stripTabs bool
}

// splitScanner is a small bash tokenizer that knows just enough grammar to
// find where top-level commands start.
type splitScanner struct {
	s        string
	pending  []heredocSpec // heredocs whose bodies start at the next newline
	depth    int
	starts   []int
	topLevel bool
}

func (p *splitScanner) scan() ([]int, error) {
	end, err := p.code(0, true)
	if err != nil {
		return nil, err
	}
	if end != len(p.s) || len(p.pending) > 0 {
		return nil, errUnparsable
	}
	return p.starts, nil
}

func (p *splitScanner) enter() error {
	p.depth++
	if p.depth > maxSplitDepth {
		return errUnparsable
	}
	return nil
}

func (p *splitScanner) leave() { p.depth-- }

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' }

func isMeta(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\f', '\v', '\n', ';', '&', '|', '<', '>', '(', ')':
		return true
	}
	return false
}

// code scans shell code from i. At top level it runs to the end of input and
// records command starts; nested (inside $( )) it returns the index of the
// closing ')'.
func (p *splitScanner) code(i int, top bool) (int, error) {
	if err := p.enter(); err != nil {
		return 0, err
	}
	defer p.leave()
	s := p.s
	var stack []string // closers expected: fi, done, esac, }, )
	cmdPos := true     // next word is in command position (keywords count)
	contOp := false    // last token was &&, ||, | : a newline does not end the command
	needStart := top   // at top level, the next token starts a new command
	fnName := false    // the next word is a function name
	for i < len(s) {
		c := s[i]
		switch {
		case isBlank(c):
			i++
		case c == '\n':
			i++
			if len(p.pending) > 0 {
				j, err := p.heredocBodies(i)
				if err != nil {
					return 0, err
				}
				i = j
			}
			cmdPos = true
			if top && len(stack) == 0 && !contOp {
				needStart = true
			}
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i += 2
		case c == ';':
			i++
			if i < len(s) && (s[i] == ';' || s[i] == '&') {
				i++
				if i < len(s) && s[i] == '&' {
					i++
				}
			}
			cmdPos, contOp = true, false
		case c == '&':
			if needStart {
				p.markStart(i, &needStart)
			}
			i++
			switch {
			case i < len(s) && s[i] == '&':
				i++
				cmdPos, contOp = true, true
			case i < len(s) && s[i] == '>':
				i++
				if i < len(s) && s[i] == '>' {
					i++
				}
			default:
				cmdPos, contOp = true, false
			}
		case c == '|':
			if needStart {
				p.markStart(i, &needStart)
			}
			i++
			if i < len(s) && (s[i] == '|' || s[i] == '&') {
				i++
			}
			cmdPos, contOp = true, true
		case c == '(':
			if needStart {
				p.markStart(i, &needStart)
			}
			i++
			stack = append(stack, ")")
			cmdPos, contOp = true, false
		case c == ')':
			if n := len(stack); n > 0 && stack[n-1] == ")" {
				stack = stack[:n-1]
				i++
				// true so that the '{' of "f() {" counts as a keyword
				cmdPos, contOp = true, false
				continue
			}
			if n := len(stack); n > 0 && stack[n-1] == "esac" {
				// end of a case pattern
				i++
				cmdPos, contOp = true, false
				continue
			}
			if !top && len(stack) == 0 {
				return i, nil
			}
			return 0, errUnparsable
		case c == '<' || c == '>':
			if needStart {
				p.markStart(i, &needStart)
			}
			j, err := p.redirect(i)
			if err != nil {
				return 0, err
			}
			i = j
			contOp = false
		default:
			if needStart {
				p.markStart(i, &needStart)
			}
			start := i
			j, err := p.word(i)
			if err != nil {
				return 0, err
			}
			i = j
			w := s[start:i]
			contOp = false
			if fnName {
				// the name after "function": a '{' may follow
				fnName = false
				continue
			}
			if !cmdPos {
				if w == "}" && len(stack) > 0 && stack[len(stack)-1] == "}" {
					stack = stack[:len(stack)-1]
				}
				continue
			}
			switch w {
			case "if":
				stack = append(stack, "fi")
			case "case":
				stack = append(stack, "esac")
				cmdPos = false
			case "for", "while", "until", "select":
				stack = append(stack, "done")
				if w == "for" || w == "select" {
					cmdPos = false
				}
			case "{":
				stack = append(stack, "}")
			case "then", "do", "else", "elif", "!", "time":
			case "function":
				fnName = true
			case "fi", "done", "esac", "}":
				if n := len(stack); n > 0 && stack[n-1] == w {
					stack = stack[:n-1]
				}
				cmdPos = false
			default:
				cmdPos = false
			}
		}
	}
	if len(stack) > 0 || contOp {
		return 0, errUnparsable
	}
	if !top {
		return 0, errUnparsable // no closing ')'
	}
	return i, nil
}

func (p *splitScanner) markStart(i int, needStart *bool) {
	p.starts = append(p.starts, i)
	*needStart = false
}

// redirect consumes a redirection operator at i (and, for a heredoc, its
// delimiter word).
func (p *splitScanner) redirect(i int) (int, error) {
	s := p.s
	if strings.HasPrefix(s[i:], "<<<") {
		return i + 3, nil
	}
	if strings.HasPrefix(s[i:], "<<") {
		i += 2
		strip := false
		if i < len(s) && s[i] == '-' {
			strip = true
			i++
		}
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		if i >= len(s) || isMeta(s[i]) {
			return 0, errUnparsable
		}
		start := i
		j, err := p.word(i)
		if err != nil {
			return 0, err
		}
		delim := strings.NewReplacer(`'`, "", `"`, "", `\`, "").Replace(s[start:j])
		p.pending = append(p.pending, heredocSpec{delim: delim, stripTabs: strip})
		return j, nil
	}
	i++
	// <( and >( are process substitutions: the '(' is handled by the caller.
	if i < len(s) && (s[i] == '>' || s[i] == '&' || s[i] == '|' || (s[i-1] == '<' && s[i] == '>')) {
		i++
	}
	return i, nil
}

// heredocBodies skips the bodies of the pending heredocs, which start at i.
func (p *splitScanner) heredocBodies(i int) (int, error) {
	s := p.s
	for _, h := range p.pending {
		for {
			if i >= len(s) {
				return 0, errUnparsable
			}
			k := strings.IndexByte(s[i:], '\n')
			line := s[i:]
			next := len(s)
			if k >= 0 {
				line = s[i : i+k]
				next = i + k + 1
			}
			i = next
			if h.stripTabs {
				line = strings.TrimLeft(line, "\t")
			}
			if strings.TrimRight(line, "\r") == h.delim {
				break
			}
		}
	}
	p.pending = p.pending[:0]
	return i, nil
}

// word consumes one word starting at i (which is not a metacharacter).
func (p *splitScanner) word(i int) (int, error) {
	s := p.s
	var err error
	for i < len(s) {
		c := s[i]
		switch {
		case isMeta(c):
			return i, nil
		case c == '\\':
			i += 2
			if i > len(s) {
				i = len(s)
			}
		case c == '\'':
			if i, err = p.single(i + 1); err != nil {
				return 0, err
			}
		case c == '"':
			if i, err = p.double(i + 1); err != nil {
				return 0, err
			}
		case c == '`':
			if i, err = p.backtick(i + 1); err != nil {
				return 0, err
			}
		case c == '$' && i+1 < len(s):
			if i, err = p.dollar(i); err != nil {
				return 0, err
			}
		default:
			i++
		}
	}
	return i, nil
}

// dollar consumes a $-expansion at i: $( ), $(( )), ${ }, $' ', $" ", or a
// plain $.
func (p *splitScanner) dollar(i int) (int, error) {
	s := p.s
	switch s[i+1] {
	case '(':
		j, err := p.code(i+2, false)
		if err != nil {
			return 0, err
		}
		return j + 1, nil
	case '{':
		return p.brace(i + 2)
	case '\'':
		for j := i + 2; j < len(s); j++ {
			if s[j] == '\\' {
				j++
				continue
			}
			if s[j] == '\'' {
				return j + 1, nil
			}
		}
		return 0, errUnparsable
	case '"':
		return p.double(i + 2)
	}
	return i + 1, nil
}

func (p *splitScanner) single(i int) (int, error) {
	k := strings.IndexByte(p.s[i:], '\'')
	if k < 0 {
		return 0, errUnparsable
	}
	return i + k + 1, nil
}

func (p *splitScanner) double(i int) (int, error) {
	if err := p.enter(); err != nil {
		return 0, err
	}
	defer p.leave()
	s := p.s
	var err error
	for i < len(s) {
		switch c := s[i]; {
		case c == '\\':
			i += 2
		case c == '"':
			return i + 1, nil
		case c == '`':
			if i, err = p.backtick(i + 1); err != nil {
				return 0, err
			}
		case c == '$' && i+1 < len(s) && (s[i+1] == '(' || s[i+1] == '{'):
			if i, err = p.dollar(i); err != nil {
				return 0, err
			}
		default:
			i++
		}
	}
	return 0, errUnparsable
}

func (p *splitScanner) backtick(i int) (int, error) {
	s := p.s
	for i < len(s) {
		switch s[i] {
		case '\\':
			i += 2
		case '`':
			return i + 1, nil
		default:
			i++
		}
	}
	return 0, errUnparsable
}

// brace consumes the rest of a ${ } expansion starting after "${".
func (p *splitScanner) brace(i int) (int, error) {
	if err := p.enter(); err != nil {
		return 0, err
	}
	defer p.leave()
	s := p.s
	var err error
	for i < len(s) {
		switch c := s[i]; {
		case c == '\\':
			i += 2
		case c == '}':
			return i + 1, nil
		case c == '\'':
			if i, err = p.single(i + 1); err != nil {
				return 0, err
			}
		case c == '"':
			if i, err = p.double(i + 1); err != nil {
				return 0, err
			}
		case c == '`':
			if i, err = p.backtick(i + 1); err != nil {
				return 0, err
			}
		case c == '$' && i+1 < len(s):
			if i, err = p.dollar(i); err != nil {
				return 0, err
			}
		default:
			i++
		}
	}
	return 0, errUnparsable
}
