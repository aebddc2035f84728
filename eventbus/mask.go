package eventbus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// SecretHidden replaces every occurrence of a secret, as in OpenHands.
const SecretHidden = "<secret_hidden>"

// maskMaxDepth bounds nesting so hostile JSON cannot exhaust the stack.
const maskMaxDepth = 10000

// masker replaces secret values inside the string values of encoded events.
// It works on the JSON bytes (no decode into any, no re-marshal): strings
// without escapes are searched in place, and only a string that contains a
// secret is rewritten. It is immutable once built.
type masker struct {
	secrets [][]byte // non-empty, longest first so a secret that contains another wins
}

// newMasker returns nil when there is nothing to mask, so the hot path can
// skip masking with one pointer test.
func newMasker(secrets map[string]string) *masker {
	var list []string
	seen := map[string]bool{}
	for _, v := range secrets {
		if v != "" && !seen[v] {
			seen[v] = true
			list = append(list, v)
		}
	}
	if len(list) == 0 {
		return nil
	}
	sort.Slice(list, func(i, j int) bool {
		if len(list[i]) != len(list[j]) {
			return len(list[i]) > len(list[j])
		}
		return list[i] < list[j]
	})
	m := &masker{}
	for _, s := range list {
		m.secrets = append(m.secrets, []byte(s))
	}
	return m
}

// protectedKeys are the top-level keys never masked: OpenHands' list minus
// "message", which OpenHands leaves alone although a run action's message
// repeats the command ("Running command: export T=<token>"), leaking the
// secret the masking exists to hide.
var protectedKeys = [...]string{"timestamp", "id", "source", "cause", "action", "observation"}

func isProtectedKey(k []byte) bool {
	for _, p := range protectedKeys {
		if string(k) == p {
			return true
		}
	}
	return false
}

// mask returns js with every secret inside string values replaced by
// SecretHidden, following OpenHands (all string values recursively, except
// the values of the protected top-level keys) but also inside arrays, which
// OpenHands skips. Object keys are not masked. changed reports whether
// anything was replaced; when false the returned slice is js itself.
func (m *masker) mask(js []byte) (out []byte, changed bool, err error) {
	w := maskWalker{m: m, src: js}
	w.ws()
	if err := w.value(false, 0); err != nil {
		return nil, false, err
	}
	w.ws()
	if w.pos != len(js) {
		return nil, false, fmt.Errorf("eventbus: mask secrets: unexpected data at offset %d of the encoded event", w.pos)
	}
	if w.out == nil {
		return js, false, nil
	}
	w.out = append(w.out, js[w.last:]...)
	return w.out, true, nil
}

type maskWalker struct {
	m    *masker
	src  []byte
	pos  int
	out  []byte // nil until the first replacement
	last int    // src[last:] not yet copied to out
}

func (w *maskWalker) ws() {
	for w.pos < len(w.src) {
		switch w.src[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

func (w *maskWalker) errAt(what string) error {
	return fmt.Errorf("eventbus: mask secrets: %s at offset %d of the encoded event", what, w.pos)
}

func (w *maskWalker) value(protected bool, depth int) error {
	if depth > maskMaxDepth {
		return w.errAt("nesting too deep")
	}
	if w.pos >= len(w.src) {
		return w.errAt("unexpected end")
	}
	switch w.src[w.pos] {
	case '{':
		w.pos++
		w.ws()
		if w.pos < len(w.src) && w.src[w.pos] == '}' {
			w.pos++
			return nil
		}
		for {
			w.ws()
			if w.pos >= len(w.src) || w.src[w.pos] != '"' {
				return w.errAt("expected object key")
			}
			ks, ke, esc, err := w.str()
			if err != nil {
				return err
			}
			childProtected := protected
			if depth == 0 {
				key := w.src[ks+1 : ke-1]
				if esc {
					var k string
					if json.Unmarshal(w.src[ks:ke], &k) == nil {
						key = []byte(k)
					}
				}
				childProtected = isProtectedKey(key)
			}
			w.ws()
			if w.pos >= len(w.src) || w.src[w.pos] != ':' {
				return w.errAt("expected ':'")
			}
			w.pos++
			w.ws()
			if err := w.value(childProtected, depth+1); err != nil {
				return err
			}
			w.ws()
			if w.pos >= len(w.src) {
				return w.errAt("unexpected end in object")
			}
			if w.src[w.pos] == ',' {
				w.pos++
				continue
			}
			if w.src[w.pos] == '}' {
				w.pos++
				return nil
			}
			return w.errAt("expected ',' or '}'")
		}
	case '[':
		w.pos++
		w.ws()
		if w.pos < len(w.src) && w.src[w.pos] == ']' {
			w.pos++
			return nil
		}
		for {
			w.ws()
			if err := w.value(protected, depth+1); err != nil {
				return err
			}
			w.ws()
			if w.pos >= len(w.src) {
				return w.errAt("unexpected end in array")
			}
			if w.src[w.pos] == ',' {
				w.pos++
				continue
			}
			if w.src[w.pos] == ']' {
				w.pos++
				return nil
			}
			return w.errAt("expected ',' or ']'")
		}
	case '"':
		s, e, esc, err := w.str()
		if err != nil {
			return err
		}
		if !protected {
			w.maskString(s, e, esc)
		}
		return nil
	default:
		start := w.pos
		for w.pos < len(w.src) {
			switch w.src[w.pos] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if w.pos == start {
					return w.errAt("expected a value")
				}
				return nil
			}
			w.pos++
		}
		if w.pos == start {
			return w.errAt("expected a value")
		}
		return nil
	}
}

// str scans the string token at pos; [s,e) includes the quotes.
func (w *maskWalker) str() (s, e int, escaped bool, err error) {
	s = w.pos
	i := w.pos + 1
	for {
		j := bytes.IndexAny(w.src[i:], "\"\\")
		if j < 0 {
			return 0, 0, false, w.errAt("unterminated string")
		}
		i += j
		if w.src[i] == '"' {
			w.pos = i + 1
			return s, i + 1, escaped, nil
		}
		escaped = true
		i += 2
		if i > len(w.src) {
			return 0, 0, false, w.errAt("unterminated string")
		}
	}
}

func (w *maskWalker) maskString(s, e int, escaped bool) {
	raw := w.src[s+1 : e-1]
	var str string
	if escaped {
		if json.Unmarshal(w.src[s:e], &str) != nil {
			return // not valid JSON text; leave as is (the codec produced it)
		}
		found := false
		for _, sec := range w.m.secrets {
			if strings.Contains(str, string(sec)) {
				found = true
				break
			}
		}
		if !found {
			return
		}
	} else {
		found := false
		for _, sec := range w.m.secrets {
			if bytes.Contains(raw, sec) {
				found = true
				break
			}
		}
		if !found {
			return
		}
		str = string(raw)
	}
	for _, sec := range w.m.secrets {
		str = strings.ReplaceAll(str, string(sec), SecretHidden)
	}
	if w.out == nil {
		w.out = make([]byte, 0, len(w.src)+32)
	}
	w.out = append(w.out, w.src[w.last:s]...)
	w.out = appendJSONString(w.out, str)
	w.last = e
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal. '<' and '>' are
// written literally (as Python's json.dumps does) so "<secret_hidden>"
// reads as in OpenHands files.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
