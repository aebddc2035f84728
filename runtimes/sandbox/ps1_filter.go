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
	if len(f.held) == 0 && !f.dropNL && bytes.IndexByte(p, '\n') < 0 {
		return append(dst, p...) // the common case of a long line: nothing to look at
	}
	f.held = append(f.held, p...)
	return f.scan(dst, false)
}

// flush gives out what write held back, as if the stream ended.
func (f *ps1Filter) flush(dst []byte) []byte {
	return f.scan(dst, true)
}

// scan moves every resolved byte of held to dst. With final, nothing can
// follow: an unterminated candidate is output.
func (f *ps1Filter) scan(dst []byte, final bool) []byte {
	b := f.held
	for {
		if f.dropNL {
			if len(b) == 0 {
				break
			}
			if b[0] == '\n' {
				b = b[1:]
			}
			f.dropNL = false
		}
		i := bytes.Index(b, ps1BlockStart)
		if i < 0 {
			keep := 0
			if !final {
				keep = partialPrefix(b, ps1BlockStart)
			}
			dst = append(dst, b[:len(b)-keep]...)
			b = b[len(b)-keep:]
			break
		}
		dst = append(dst, b[:i]...)
		b = b[i:]
		body := b[len(ps1BlockStart):]
		window := body[:min(len(body), maxPS1Body+len(ps1End))]
		e := bytes.Index(window, []byte(ps1End))
		if e < 0 && !final && len(body) < maxPS1Body+len(ps1End) {
			break // the end marker may still come
		}
		if e < 0 {
			dst, b = append(dst, '\n'), b[1:] // not a prompt: a newline, then look again
			continue
		}
		if _, ok := parsePS1Body(body[:e]); !ok {
			dst, b = append(dst, '\n'), b[1:]
			continue
		}
		b = body[e+len(ps1End):]
		f.dropNL = true
	}
	// b is a suffix of held: move it to the front (copy handles the overlap).
	n := copy(f.held, b)
	f.held = f.held[:n]
	if cap(f.held) > 4*maxPS1Body {
		f.held = append([]byte(nil), f.held...) // do not keep a huge read's array
	}
	return dst
}
