package eventbus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseFileEditorCall reads the keyword arguments out of the legacy
// `translated_ipython_code` of old OpenHands edit/read actions, which look
// like `print(file_editor(**{'command': 'create', 'path': '/x', ...}))`, and
// returns them as JSON values. Only Python literals are accepted (strings,
// numbers, True/False/None, lists, tuples, dicts); anything else is an error,
// never code execution.
func parseFileEditorCall(code string) (map[string]json.RawMessage, error) {
	const head = "file_editor(**"
	i := strings.Index(code, head)
	if i < 0 {
		return nil, errors.New("no file_editor(**{...}) call")
	}
	p := &pyParser{s: code, pos: i + len(head)}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("file_editor arguments are not a dict")
	}
	p.space()
	if !strings.HasPrefix(p.s[p.pos:], ")") {
		return nil, fmt.Errorf("offset %d: expected ')' after the arguments", p.pos)
	}
	out := make(map[string]json.RawMessage, len(m))
	for k, val := range m {
		b, err := marshalNoEscape(val)
		if err != nil {
			return nil, err
		}
		out[k] = b
	}
	return out, nil
}

type pyParser struct {
	s   string
	pos int
}

const maxPyDepth = 64

func (p *pyParser) space() {
	for p.pos < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.pos])) {
		p.pos++
	}
}

func (p *pyParser) errf(format string, a ...any) error {
	return fmt.Errorf("offset %d: "+format, append([]any{p.pos}, a...)...)
}

func (p *pyParser) value(depth int) (any, error) {
	if depth > maxPyDepth {
		return nil, p.errf("literal nested too deeply")
	}
	p.space()
	if p.pos >= len(p.s) {
		return nil, p.errf("unexpected end of input")
	}
	c := p.s[p.pos]
	switch {
	case c == '{':
		return p.dict(depth)
	case c == '[' || c == '(':
		return p.list(depth)
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		return p.number()
	case strings.HasPrefix(p.s[p.pos:], "True"):
		p.pos += 4
		return true, nil
	case strings.HasPrefix(p.s[p.pos:], "False"):
		p.pos += 5
		return false, nil
	case strings.HasPrefix(p.s[p.pos:], "None"):
		p.pos += 4
		return nil, nil
	}
	return nil, p.errf("unsupported Python literal starting with %q", c)
}

func (p *pyParser) dict(depth int) (any, error) {
	p.pos++ // {
	m := map[string]any{}
	for {
		p.space()
		if p.pos < len(p.s) && p.s[p.pos] == '}' {
			p.pos++
			return m, nil
		}
		k, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if !ok {
			return nil, p.errf("dict key is not a string")
		}
		p.space()
		if p.pos >= len(p.s) || p.s[p.pos] != ':' {
			return nil, p.errf("expected ':' after dict key")
		}
		p.pos++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[ks] = v
		p.space()
		if p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.s) && p.s[p.pos] == '}' {
			p.pos++
			return m, nil
		}
		return nil, p.errf("expected ',' or '}' in dict")
	}
}

func (p *pyParser) list(depth int) (any, error) {
	closer := byte(']')
	if p.s[p.pos] == '(' {
		closer = ')'
	}
	p.pos++
	l := []any{}
	for {
		p.space()
		if p.pos < len(p.s) && p.s[p.pos] == closer {
			p.pos++
			return l, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
		p.space()
		if p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.s) && p.s[p.pos] == closer {
			p.pos++
			return l, nil
		}
		return nil, p.errf("expected ',' or %q in list", closer)
	}
}

func (p *pyParser) number() (any, error) {
	start := p.pos
	for p.pos < len(p.s) && strings.ContainsRune("+-0123456789.eE_", rune(p.s[p.pos])) {
		p.pos++
	}
	lit := strings.ReplaceAll(p.s[start:p.pos], "_", "")
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return nil, p.errf("bad number %q", lit)
	}
	return f, nil
}

// str reads a Python string literal: single or double quoted, optionally
// triple quoted, with Python's backslash escapes.
func (p *pyParser) str() (any, error) {
	q := p.s[p.pos]
	triple := strings.HasPrefix(p.s[p.pos:], strings.Repeat(string(q), 3))
	end := string(q)
	if triple {
		end = strings.Repeat(string(q), 3)
	}
	p.pos += len(end)
	var b strings.Builder
	for {
		if p.pos >= len(p.s) {
			return nil, p.errf("unterminated string")
		}
		if strings.HasPrefix(p.s[p.pos:], end) {
			p.pos += len(end)
			return b.String(), nil
		}
		c := p.s[p.pos]
		if c == '\n' && !triple {
			return nil, p.errf("newline in a single-quoted string")
		}
		if c != '\\' {
			r, size := utf8.DecodeRuneInString(p.s[p.pos:])
			b.WriteRune(r)
			p.pos += size
			continue
		}
		p.pos++
		if p.pos >= len(p.s) {
			return nil, p.errf("unterminated escape")
		}
		e := p.s[p.pos]
		p.pos++
		switch e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\', '\'', '"':
			b.WriteByte(e)
		case '\n':
			// line continuation inside a string
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			start := p.pos - 1
			for p.pos < len(p.s) && p.pos-start < 3 && p.s[p.pos] >= '0' && p.s[p.pos] <= '7' {
				p.pos++
			}
			n, _ := strconv.ParseUint(p.s[start:p.pos], 8, 32)
			b.WriteRune(rune(n))
		case 'x', 'u', 'U':
			width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if p.pos+width > len(p.s) {
				return nil, p.errf("truncated \\%c escape", e)
			}
			n, err := strconv.ParseUint(p.s[p.pos:p.pos+width], 16, 32)
			if err != nil || n > utf8.MaxRune {
				return nil, p.errf("bad \\%c escape", e)
			}
			p.pos += width
			b.WriteRune(rune(n))
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
}
