package sandbox

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// truncationMarker is what replaces the middle of a too long output.
const truncationMarker = "\n[... Observation truncated due to length ...]\n"

// outBuf holds a command's output since the last observation, bounded: once
// it exceeds headCap+2*tailCap bytes it keeps the first headCap bytes and
// the last tailCap..2*tailCap bytes and counts what it dropped. Both parts
// are far larger than the 15000 characters an observation keeps at each
// end, and the tail always holds the latest PS1 block.
type outBuf struct {
	head    []byte // frozen first part, nil until the buffer overflowed once
	tail    []byte
	dropped int64
	headCap int
	tailCap int
}

func (b *outBuf) write(p []byte) {
	b.tail = append(b.tail, p...)
	if b.head == nil {
		if len(b.tail) > b.headCap+2*b.tailCap {
			b.head = bytes.Clone(b.tail[:b.headCap])
			b.tail = b.tail[b.headCap:]
		} else {
			return
		}
	}
	if len(b.tail) > 2*b.tailCap {
		cut := len(b.tail) - b.tailCap
		b.dropped += int64(cut)
		b.tail = append(make([]byte, 0, 2*b.tailCap+len(p)), b.tail[cut:]...)
	}
}

func (b *outBuf) reset() {
	b.head, b.dropped = nil, 0
	if cap(b.tail) > 4*b.tailCap {
		b.tail = nil
	} else {
		b.tail = b.tail[:0]
	}
}

// endsWithPS1End reports whether the buffer, right-trimmed, ends with
// "\n###PS1END###" (OpenHands' second completion condition).
func (b *outBuf) endsWithPS1End() bool {
	t := bytes.TrimRight(b.tail, " \t\r\n\v\f")
	return bytes.HasSuffix(t, []byte("\n"+ps1End))
}

// combineOutputs removes the PS1 blocks from text and joins the pieces
// around them with "\n" (OpenHands' _combine_outputs_between_matches, for a
// stream that does not start with a prompt; trailing newlines of each piece
// are dropped so that no blank lines appear where prompts were). It returns
// the blocks too.
func combineOutputs(text []byte) (string, []ps1Block) {
	blocks := findPS1Blocks(text)
	if len(blocks) == 0 {
		return string(text), nil
	}
	var sb strings.Builder
	sb.Grow(len(text))
	prev := 0
	for i, bl := range blocks {
		if i > 0 {
			sb.WriteByte('\n')
		}
		// drop the newlines before the prompt (PS1 starts with one)
		sb.Write(bytes.TrimRight(text[prev:bl.start], "\n"))
		prev = bl.end
		if prev < len(text) && text[prev] == '\n' {
			prev++ // the newline that ends the prompt
		}
	}
	sb.WriteByte('\n')
	sb.Write(text[prev:])
	return sb.String(), blocks
}

// cleanOutput right-trims every line (the pane capture does), then trims the
// whole text like OpenHands' _get_command_output, and replaces invalid UTF-8.
func cleanOutput(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.ContainsAny(s, " \t\r\v\f") {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight(l, " \t\r\v\f")
		}
		s = strings.Join(lines, "\n")
	}
	return strings.TrimSpace(s)
}

// truncateContent keeps the first and last max/2 characters of s with the
// marker between, when s has more than max characters (Python len()).
func truncateContent(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	half := max / 2
	return firstRunes(s, half) + truncationMarker + lastRunes(s, half)
}

func firstRunes(s string, n int) string {
	i := 0
	for k := 0; k < n && i < len(s); k++ {
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return s[:i]
}

func lastRunes(s string, n int) string {
	i := len(s)
	for k := 0; k < n && i > 0; k++ {
		_, w := utf8.DecodeLastRuneInString(s[:i])
		i -= w
	}
	return s[i:]
}

// crlf turns the PTY's "\r\n" into "\n". A '\r' at the end of a chunk is held
// back until the next chunk shows whether a '\n' follows.
type crlf struct{ heldCR bool }

func (c *crlf) convert(dst, p []byte) []byte {
	if len(p) == 0 {
		return dst
	}
	if c.heldCR {
		if p[0] != '\n' {
			dst = append(dst, '\r')
		}
		c.heldCR = false
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '\r' {
			if i+1 == len(p) {
				c.heldCR = true
				break
			}
			if p[i+1] == '\n' {
				continue
			}
		}
		dst = append(dst, p[i])
	}
	return dst
}
