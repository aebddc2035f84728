package agentwire

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// PathLogs is the agent's own log over HTTP: GET
// PathLogs?tail=N&follow=true answers text/plain lines "TIMESTAMP TEXT\n"
// (TIMESTAMP: RFC 3339 with nanoseconds, UTC), the lines its LogRing kept,
// then with follow=true new ones as they are written until the client goes
// away or the agent shuts down (the body then ends normally). The remote
// runtime reads a sandbox's log this way, so it works over TLS and through
// the SSH tunnel alike. Authorization: Bearer <token>.
const PathLogs = "/agentwire/logs"

// Default bounds of a LogRing: far more than an agent writes outside
// actions in practice, little enough memory to keep in every sandbox.
const (
	DefaultLogLines = 10_000
	DefaultLogBytes = 2 << 20
	// maxLogLine cuts a single runaway line (the rest is dropped, marked).
	maxLogLine = 64 << 10
)

// LogRing keeps the last lines written to it, each stamped, for PathLogs.
// It is an io.Writer meant to be tee'd with the agent's log output
// (slog's text handler): a line starting "time=T " is stamped T (and the
// prefix dropped), any other line gets the time it was written. Write
// never fails. The zero value is not usable; make one with NewLogRing.
type LogRing struct {
	maxLines, maxBytes int

	mu      sync.Mutex
	lines   []string // stamped, each ending in '\n'
	first   uint64   // sequence number of lines[0]
	bytes   int
	partial []byte        // an unfinished line
	wake    chan struct{} // closed (and replaced) when lines are added
}

// NewLogRing returns a ring keeping at most maxLines lines and maxBytes
// bytes (<= 0: DefaultLogLines, DefaultLogBytes).
func NewLogRing(maxLines, maxBytes int) *LogRing {
	if maxLines <= 0 {
		maxLines = DefaultLogLines
	}
	if maxBytes <= 0 {
		maxBytes = DefaultLogBytes
	}
	return &LogRing{maxLines: maxLines, maxBytes: maxBytes, wake: make(chan struct{})}
}

// Write implements io.Writer: complete lines are stamped and kept, the
// oldest dropped beyond the ring's bounds.
func (r *LogRing) Write(p []byte) (int, error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	added := false
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			r.partial = appendCapped(r.partial, rest)
			break
		}
		line := appendCapped(r.partial, rest[:i])
		r.partial = r.partial[:0]
		rest = rest[i+1:]
		r.add(stampLogLine(line, now))
		added = true
	}
	if added {
		close(r.wake)
		r.wake = make(chan struct{})
	}
	return len(p), nil
}

// appendCapped appends b to line up to maxLogLine bytes.
func appendCapped(line, b []byte) []byte {
	if room := maxLogLine - len(line); len(b) > room {
		b = b[:max(room, 0)]
	}
	return append(line, b...)
}

func (r *LogRing) add(s string) {
	r.lines = append(r.lines, s)
	r.bytes += len(s)
	drop := 0
	for len(r.lines)-drop > r.maxLines || r.bytes > r.maxBytes && len(r.lines)-drop > 1 {
		r.bytes -= len(r.lines[drop])
		drop++
	}
	if drop > 0 {
		r.first += uint64(drop)
		// Copy down once the dropped prefix is as big as what is kept,
		// so the backing array does not grow without bound.
		if r.lines = r.lines[drop:]; cap(r.lines) > 2*r.maxLines {
			r.lines = append([]string(nil), r.lines...)
		}
	}
}

// stampLogLine turns "time=T rest" into "T rest\n" with T in UTC RFC 3339
// nano, and any other line into "NOW line\n".
func stampLogLine(line []byte, now time.Time) string {
	stamp := now
	if after, ok := bytes.CutPrefix(line, []byte("time=")); ok {
		end := bytes.IndexByte(after, ' ')
		if end < 0 {
			end = len(after)
		}
		if t, err := time.Parse(time.RFC3339Nano, string(after[:end])); err == nil && t.UTC().Year() >= 0 && t.UTC().Year() <= 9999 {
			stamp, line = t, bytes.TrimPrefix(after[end:], []byte(" "))
		}
	}
	out := make([]byte, 0, len(line)+37)
	out = stamp.UTC().AppendFormat(out, time.RFC3339Nano)
	out = append(out, ' ')
	out = append(out, line...)
	return string(append(out, '\n'))
}

// start is the sequence number of the first of the last n lines (n < 0:
// every line kept).
func (r *LogRing) start(n int) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := r.first + uint64(len(r.lines))
	if n < 0 || n >= len(r.lines) {
		return r.first
	}
	return end - uint64(n)
}

// since returns the kept lines from sequence number seq on (lines already
// dropped are skipped), the sequence number after them, and a channel
// closed when more arrive.
func (r *LogRing) since(seq uint64) (lines []string, next uint64, wake <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq = max(seq, r.first)
	lines = append(lines, r.lines[seq-r.first:]...)
	return lines, r.first + uint64(len(r.lines)), r.wake
}

// serveLogs answers GET PathLogs (see there). Without a LogRing
// (WithLogRing) it answers 404 with a clear error.
func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request) {
	if !s.bearerOK(r) {
		unauthorized(w)
		return
	}
	ring := s.o.logRing
	if ring == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "no_log",
			"error": "agentwire: this agent keeps no log of its own (its server was made without WithLogRing)"})
		return
	}
	follow, tail, err := logQuery(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"code": "bad_request", "error": err.Error()})
		return
	}
	// Fixed before the headers go out: a line written once the client has
	// them is always in its stream.
	seq := ring.start(tail)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush() // the client knows the stream is open before the first line
	for {
		lines, next, wake := ring.since(seq)
		seq = next
		for _, l := range lines {
			if _, err := w.Write([]byte(l)); err != nil {
				return // the client went away
			}
		}
		if len(lines) > 0 {
			_ = rc.Flush()
		}
		if !follow {
			return
		}
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		case <-s.ctx.Done(): // shutting down: what was written so far went out above
			if lines, _, _ := ring.since(seq); len(lines) == 0 {
				return
			}
		}
	}
}

// logQuery parses ?follow= (true/false) and ?tail= (a whole number; absent
// or -1: every kept line).
func logQuery(r *http.Request) (follow bool, tail int, err error) {
	q := r.URL.Query()
	tail = -1
	if v := q.Get("follow"); v != "" {
		if follow, err = strconv.ParseBool(v); err != nil {
			return false, 0, fmt.Errorf("agentwire: logs: follow=%q: want true or false", v)
		}
	}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			return false, 0, fmt.Errorf("agentwire: logs: tail=%q: want a number of lines >= 0 (or -1 or nothing for every line kept)", v)
		}
		tail = n
	}
	return follow, tail, nil
}

// WithLogRing has the server answer PathLogs from ring, which the agent
// feeds with its own log output.
func WithLogRing(ring *LogRing) ServerOption {
	return func(o *serverOptions) { o.logRing = ring }
}
