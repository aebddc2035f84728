package eventbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// scanner reads one JSON text in a single pass, validating as it goes
// (RFC 8259 syntax, as strict as encoding/json), so that the decoder can
// pick the fields it knows and keep the spans of the others verbatim
// without a second parse. Strings decode like encoding/json's: invalid
// UTF-8 and unpaired surrogates become U+FFFD.
type scanner struct {
	data    []byte
	pos     int
	scratch []byte // unescaped string bytes, reused across strings
	// owned: data belongs to the event being decoded, so values kept
	// verbatim (json.RawMessage fields) may point into it; else they are
	// copied out of the caller's buffer.
	owned bool
}

// maxJSONDepth bounds nesting as encoding/json does, so hostile input
// cannot exhaust the stack.
const maxJSONDepth = 10000

// SyntaxError is a JSON syntax error in an event. Callers that answer
// users (the API) tell it apart from an event that is valid JSON but not a
// valid event, and point at the offending byte.
type SyntaxError struct {
	Msg string
	// Offset counts the bytes read when the error was found, as
	// encoding/json's SyntaxError.Offset does: the offending byte is
	// data[Offset-1].
	Offset int64
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte offset %d: %s", e.Offset, e.Msg)
}

func (s *scanner) errorf(format string, a ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, a...), Offset: int64(s.pos) + 1}
}

// unexpected describes the byte at the cursor for a syntax error.
func (s *scanner) unexpected(context string) error {
	if s.pos >= len(s.data) {
		return s.errorf("unexpected end of input %s", context)
	}
	return s.errorf("invalid character %s %s", quoteByte(s.data[s.pos]), context)
}

func quoteByte(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	return strconv.QuoteRune(rune(c))
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		if c := s.data[s.pos]; c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return
		}
		s.pos++
	}
}

// peek returns the next non-space byte without consuming it, 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// end checks that only white space follows the value just read.
func (s *scanner) end() error {
	s.ws()
	if s.pos != len(s.data) {
		return s.unexpected("after the top-level value")
	}
	return nil
}

// kindAt names the JSON kind of the value at the cursor, for messages.
func (s *scanner) kindAt() string {
	switch s.peek() {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case 0:
		return "nothing"
	}
	return "a number"
}

// null consumes a null literal if one is next.
func (s *scanner) null() (bool, error) {
	if s.peek() != 'n' {
		return false, nil
	}
	return true, s.literal("null")
}

func (s *scanner) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if s.pos >= len(s.data) || s.data[s.pos] != lit[i] {
			return s.unexpected("in literal " + lit)
		}
		s.pos++
	}
	return nil
}

// object reads an object, calling field for each key with the cursor at
// its value; field must consume the value. The key slice is only valid
// until field reads another string.
func (s *scanner) object(depth int, field func(key []byte) error) error {
	return s.members(depth, true, field)
}

// members reads an object; keys are decoded only if decodeKeys (skip does
// not need them, and must not overwrite the scratch a caller's key is in).
func (s *scanner) members(depth int, decodeKeys bool, field func(key []byte) error) error {
	if depth > maxJSONDepth {
		return s.errorf("nesting deeper than %d", maxJSONDepth)
	}
	if s.peek() != '{' {
		return s.unexpected("looking for the beginning of an object")
	}
	s.pos++
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.unexpected("looking for the beginning of an object key")
		}
		var key []byte
		var err error
		if decodeKeys {
			key, err = s.stringBytes()
		} else {
			key, _, err = s.scanString()
		}
		if err != nil {
			return err
		}
		if s.peek() != ':' {
			return s.unexpected("after an object key")
		}
		s.pos++
		s.ws()
		if err := field(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.unexpected("after an object value")
		}
	}
}

// array reads an array, calling elem with the cursor at each element.
func (s *scanner) array(depth int, elem func() error) error {
	if depth > maxJSONDepth {
		return s.errorf("nesting deeper than %d", maxJSONDepth)
	}
	if s.peek() != '[' {
		return s.unexpected("looking for the beginning of an array")
	}
	s.pos++
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.unexpected("after an array element")
		}
	}
}

// skip validates and consumes one value and returns its span.
func (s *scanner) skip(depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return nil, s.errorf("nesting deeper than %d", maxJSONDepth)
	}
	c := s.peek()
	start := s.pos
	var err error
	switch c {
	case '{':
		err = s.members(depth, false, func([]byte) error { _, err := s.skip(depth + 1); return err })
	case '[':
		err = s.array(depth, func() error { _, err := s.skip(depth + 1); return err })
	case '"':
		_, _, err = s.scanString()
	case 't':
		err = s.literal("true")
	case 'f':
		err = s.literal("false")
	case 'n':
		err = s.literal("null")
	default:
		_, err = s.number()
	}
	if err != nil {
		return nil, err
	}
	return s.data[start:s.pos], nil
}

// scanString consumes the string at the cursor and returns the span of its
// contents (without quotes) and whether it needs unescaping or UTF-8
// repair before use.
func (s *scanner) scanString() (body []byte, plain bool, err error) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, false, s.unexpected("looking for the beginning of a string")
	}
	start := s.pos + 1
	plain = true
	var high uint64 // OR of the bytes seen: bit 7 set when one is not ASCII
	d := s.data
	i := start
	for i < len(d) {
		// Eight bytes at a time while none of them needs a look.
		for i+8 <= len(d) {
			w := binary.LittleEndian.Uint64(d[i:])
			if swarSpecial(w) != 0 {
				break
			}
			high |= w
			i += 8
		}
		if i >= len(d) {
			break
		}
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			body = d[start:i]
			if plain && high&0x8080808080808080 != 0 && !utf8.Valid(body) {
				plain = false
			}
			return body, plain, nil
		case c == '\\':
			plain = false
			s.pos = i
			n, err := s.escapeLen(i)
			if err != nil {
				return nil, false, err
			}
			i += n
		case c < 0x20:
			s.pos = i
			return nil, false, s.errorf("invalid character %s in string literal", quoteByte(c))
		default:
			high |= uint64(c)
			i++
		}
	}
	s.pos = len(d)
	return nil, false, s.errorf("unexpected end of input in a string")
}

// swarSpecial is non-zero when one of the eight bytes of w is a quote, a
// backslash or a control character (bit tricks from "Bit Twiddling Hacks":
// a byte is zero after XOR with the one looked for).
func swarSpecial(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(x uint64) uint64 { return (x - ones) & ^x & highs }
	return hasZero(w^(ones*'"')) | hasZero(w^(ones*'\\')) | ((w - ones*0x20) & ^w & highs)
}

// escapeLen validates the escape sequence at data[i] (a backslash) and
// returns its length.
func (s *scanner) escapeLen(i int) (int, error) {
	if i+1 >= len(s.data) {
		s.pos = len(s.data)
		return 0, s.errorf("unexpected end of input in a string escape")
	}
	switch s.data[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		for k := i + 2; k < i+6; k++ {
			if k >= len(s.data) {
				s.pos = len(s.data)
				return 0, s.errorf("unexpected end of input in a \\u escape")
			}
			if !isHex(s.data[k]) {
				s.pos = k
				return 0, s.errorf("invalid character %s in \\u hexadecimal character escape", quoteByte(s.data[k]))
			}
		}
		return 6, nil
	}
	s.pos = i + 1
	return 0, s.errorf("invalid character %s in string escape code", quoteByte(s.data[i+1]))
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// stringBytes consumes a string and returns its decoded bytes: a slice of
// the input when no decoding is needed, else of s.scratch (valid until the
// next string is read).
func (s *scanner) stringBytes() ([]byte, error) {
	body, plain, err := s.scanString()
	if err != nil || plain {
		return body, err
	}
	s.scratch = unquoteInto(s.scratch[:0], body)
	return s.scratch, nil
}

// str consumes a string and returns it as a new Go string. An escaped
// string is decoded into a buffer of its own that becomes the string
// (as strings.Builder does), saving a copy per string.
func (s *scanner) str() (string, error) {
	body, plain, err := s.scanString()
	if err != nil {
		return "", err
	}
	if plain {
		return string(body), nil
	}
	buf := unquoteInto(make([]byte, 0, len(body)), body)
	return unsafe.String(unsafe.SliceData(buf), len(buf)), nil
}

// unquoteInto appends the decoded contents of a validated string body to
// dst, as encoding/json decodes strings: escapes resolved, surrogate pairs
// joined, invalid UTF-8 and lone surrogates replaced with U+FFFD.
func unquoteInto(dst, body []byte) []byte {
	for r := 0; r < len(body); {
		c := body[r]
		switch {
		case c == '\\':
			e := body[r+1]
			switch e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := hex4(body[r+2 : r+6])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(body) && body[r] == '\\' && body[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(body[r+2:r+6])); dec != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, size := utf8.DecodeRune(body[r:])
			dst = utf8.AppendRune(dst, rr)
			r += size
		}
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// number consumes a number literal and returns it; the grammar is JSON's
// (no leading zeros, no '+', digits after '.' and 'e').
func (s *scanner) number() ([]byte, error) {
	start := s.pos
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return nil, s.unexpected("looking for the beginning of a value")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, s.unexpected("after a decimal point in a number")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, s.unexpected("in the exponent of a number")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return d[start:i], nil
}

// errNotInteger is wrapped when a number is not a whole number in range.
var errNotInteger = errors.New("not an integer")

// integer consumes a number that must be a whole number; Python writes
// some ints as floats (120.0), so integral floats below 2^53 are accepted.
func (s *scanner) integer() (int64, error) {
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, fmt.Errorf("expected an integer, got %s", s.kindAt())
	}
	lit, err := s.number()
	if err != nil {
		return 0, err
	}
	return parseInteger(lit)
}

func parseInteger(lit []byte) (int64, error) {
	fractional := false
	for _, c := range lit {
		if c == '.' || c == 'e' || c == 'E' {
			fractional = true
			break
		}
	}
	if !fractional {
		n, err := strconv.ParseInt(string(lit), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("expected an integer, got %s (out of range)", lit)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
		return 0, fmt.Errorf("expected an integer, got %s", lit)
	}
	return int64(f), nil
}

// float consumes a number as a float64.
func (s *scanner) float() (float64, error) {
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, fmt.Errorf("expected a number, got %s", s.kindAt())
	}
	lit, err := s.number()
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return 0, fmt.Errorf("expected a number, got %s (out of range)", lit)
	}
	return f, nil
}

// boolean consumes true or false.
func (s *scanner) boolean() (bool, error) {
	switch s.peek() {
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	}
	return false, fmt.Errorf("expected a boolean, got %s", s.kindAt())
}

// stringValue consumes a string value, with a typed error for other kinds.
func (s *scanner) stringValue() (string, error) {
	if s.peek() != '"' {
		return "", fmt.Errorf("expected a string, got %s", s.kindAt())
	}
	return s.str()
}
