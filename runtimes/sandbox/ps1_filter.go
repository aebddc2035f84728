package sandbox

import "bytes"

// ps1BlockStart is how every PS1 prompt begins in the stream: PS1 starts
// with a newline, so a block's marker always follows one.
var ps1BlockStart = []byte("\n" + ps1Begin)

// maxPS1Body bounds a PS1 block's body (the JSON between the markers). The
// six values are short, but working_dir and the python path are paths of
// any length; 64 KiB is far beyond any real one. A candidate whose end
// marker does not come within it is output, not a prompt.
const maxPS1Body = 64 << 10

// ps1Filter removes the PS1 metadata prompts from the live output of a
// bash session, so that what a person watches (agentwire chunks, the
// engine's chunk hub, the API's WebSocket, `corral shell`) is exactly what
// the commands printed. The observation is built from the unfiltered
// buffer (the blocks carry the exit code and cwd), so this only shapes the
// live copy.
//
// A prompt is "\n###PS1JSON###" + body + "###PS1END###" + "\n" where the
// body is what parsePS1Body accepts (the rule findPS1Blocks uses); the
// newline that starts the prompt and the one that ends it go with it. A
// block may be split across reads at any byte: bytes that may start a
// prompt are held back until the next read shows whether they do (at most
// len(ps1BlockStart)-1 bytes, or one unterminated block of at most
// maxPS1Body). The held bytes of a stream that stops there are given out by
// flush.
//
// For any split of a stream into writes, the concatenated output equals
// that of one write of the whole stream followed by flush
// (FuzzPS1Filter checks it).
type ps1Filter struct {
	held   []byte // unresolved bytes: a possible partial marker or an unterminated block
	dropNL bool   // a block just ended: the next byte, if a newline, ends the prompt
}

// write filters p and appends the clean bytes to dst.
func (f *ps1Filter) write(dst, p []byte) []byte {
	b := p
	if len(f.held) > 0 {
		f.held = append(f.held, p...)
		b = f.held
	}
	dst, rest := f.scan(dst, b, false)
	f.held = append(f.held[:0], rest...) // rest may be the end of held: append moves it
	if cap(f.held) > 4*maxPS1Body {
		f.held = append([]byte(nil), f.held...) // do not keep a huge read's array
	}
	return dst
}

// flush gives out what write held back, as if the stream ended.
func (f *ps1Filter) flush(dst []byte) []byte {
	dst, _ = f.scan(dst, f.held, true)
	f.held = f.held[:0]
	return dst
}

// scan appends the resolved bytes of b to dst and returns the unresolved
// rest (a possible start of a prompt). With final nothing can follow: an
// unterminated candidate is output. It looks for the rare "###PS1JSON###"
// (a vectorised byte search on output without '#') and checks the newline
// before it, rather than searching for the newline every line has.
func (f *ps1Filter) scan(dst, b []byte, final bool) ([]byte, []byte) {
	pos, search := 0, 0 // b[:pos] is dealt with; markers before search are not prompts
	for {
		if f.dropNL {
			if pos == len(b) {
				return dst, nil
			}
			if b[pos] == '\n' {
				pos++
			}
			f.dropNL = false
			search = max(search, pos)
		}
		k := bytes.Index(b[search:], []byte(ps1Begin))
		if k < 0 {
			keep := 0
			if !final {
				keep = partialPrefix(b[pos:], ps1BlockStart)
			}
			return append(dst, b[pos:len(b)-keep]...), b[len(b)-keep:]
		}
		i := search + k
		if i-1 < pos || b[i-1] != '\n' {
			search = i + 1 // inside a line: not a prompt
			continue
		}
		body := b[i+len(ps1Begin):]
		window := body[:min(len(body), maxPS1Body+len(ps1End))]
		e := bytes.Index(window, []byte(ps1End))
		if e < 0 && !final && len(body) < maxPS1Body+len(ps1End) {
			return append(dst, b[pos:i-1]...), b[i-1:] // the end marker may still come
		}
		if e < 0 {
			search = i + 1 // no end marker in reach: output
			continue
		}
		if _, ok := parsePS1Body(body[:e]); !ok {
			search = i + 1
			continue
		}
		dst = append(dst, b[pos:i-1]...)
		pos = i + len(ps1Begin) + e + len(ps1End)
		search = pos
		f.dropNL = true
	}
}
