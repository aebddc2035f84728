package main

import (
	"strings"
	"sync"

	"corral/actors"
)

// chunkPump takes the engine's live chunks as fast as they come, so the
// engine (which drops chunks for a reader that falls behind rather than
// slow the session) never waits on the terminal. It keeps them until the
// shell shows them, at most maxBacklog bytes: past that it drops chunks,
// which the shell sees as a gap in their sequence numbers. Its goroutine
// ends when the subscription ends (the shell's context or the session).
type chunkPump struct {
	src   <-chan actors.Chunk
	ready chan struct{}      // holds a token while chunks wait
	flush chan chan struct{} // move what src holds now into the queue, then answer
	done  chan struct{}

	mu     sync.Mutex
	queue  []actors.Chunk
	queued int // bytes in queue
}

// maxBacklog bounds the output waiting for a slow terminal.
const maxBacklog = 4 << 20

func startChunkPump(src <-chan actors.Chunk) *chunkPump {
	p := &chunkPump{src: src, ready: make(chan struct{}, 1), flush: make(chan chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *chunkPump) run() {
	defer close(p.done)
	for {
		select {
		case c, ok := <-p.src:
			if !ok {
				return
			}
			p.add(c)
		case reply := <-p.flush:
			// The pump is src's only reader: what src holds now came
			// after everything already queued.
			p.drainSrc()
			close(reply)
		}
	}
}

func (p *chunkPump) drainSrc() {
	for {
		select {
		case c, ok := <-p.src:
			if !ok {
				return
			}
			p.add(c)
		default:
			return
		}
	}
}

func (p *chunkPump) add(c actors.Chunk) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.queued+len(c.Data) > maxBacklog {
		return // the gap in sequence numbers tells
	}
	p.queue = append(p.queue, c)
	p.queued += len(c.Data)
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

// sync returns once every chunk the engine delivered before the call is
// in the queue (or dropped). The session publishes all of an action's
// chunks before it answers with the observation: after Run returned, a
// sync then take(0) gives the rest of that action's output.
func (p *chunkPump) sync() {
	reply := make(chan struct{})
	select {
	case p.flush <- reply:
		<-reply
	case <-p.done:
	}
}

// take removes queued chunks, at least one and about max bytes (all of
// them when max is 0); ready keeps its token while more wait.
func (p *chunkPump) take(max int) []actors.Chunk {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, size := 0, 0
	for n < len(p.queue) && (max == 0 || n == 0 || size+len(p.queue[n].Data) <= max) {
		size += len(p.queue[n].Data)
		n++
	}
	out := p.queue[:n:n]
	p.queue = p.queue[n:]
	p.queued -= size
	if len(p.queue) > 0 {
		select {
		case p.ready <- struct{}{}:
		default:
		}
	} else {
		p.queue = nil
	}
	return out
}

// discard drops the queued chunks, as a terminal drops its pending output
// on Ctrl-C: what a slow terminal has not shown yet is not worth
// scrolling through once the command is interrupted. The shell sees the
// dropped chunks as a gap.
func (p *chunkPump) discard() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queue, p.queued = nil, 0
}

// liveOutput is what was shown of one action's output.
type liveOutput struct {
	action int64
	seq    uint64 // last sequence number shown
	lost   uint64 // chunks never shown (the terminal fell behind)
	text   []byte // the output shown, while at most maxLiveKept bytes
	over   bool   // more than maxLiveKept bytes were shown
	end    []byte // the last liveEndKept or more bytes shown
}

// maxLiveKept bounds the output kept to compare with the observation:
// beyond it the observation is truncated anyway (OpenHands keeps 30000
// characters), and only the ends can be compared.
const maxLiveKept = 1 << 20

// liveEndKept is how much of the end of the output is always kept.
const liveEndKept = 64 << 10

func (l *liveOutput) keep(p []byte) {
	if !l.over && len(l.text)+len(p) > maxLiveKept {
		l.over, l.text = true, nil
	}
	if !l.over {
		l.text = append(l.text, p...)
	}
	l.end = append(l.end, p...)
	if len(l.end) > 2*liveEndKept {
		l.end = append([]byte(nil), l.end[len(l.end)-liveEndKept:]...)
	}
}

// observationTruncated is the marker OpenHands puts in the middle of an
// output longer than its limit.
const observationTruncated = "[... Observation truncated due to length ...]"

// unshown returns the part of an observation's content that the live
// output did not show, with a note saying why when that needs one. The
// content is the output since the last observation, cleaned as OpenHands
// does; it begins with output produced while no command was being waited
// for (nobody streams that), and equals the streamed output otherwise.
func (l *liveOutput) unshown(content string) (rest, why string) {
	if l.lost > 0 || l.over {
		return l.missedEnd(content)
	}
	shown := cleanLikeObservation(string(l.text))
	switch {
	case shown == content:
		return "", ""
	case shown == "":
		return content, ""
	case strings.HasSuffix(content, shown):
		return strings.TrimSpace(strings.TrimSuffix(content, shown)), "[printed before this command returned, while nothing was waiting for it:]"
	case strings.Contains(content, observationTruncated):
		return "", ""
	}
	return content, "[the observation's output, which differs from the output shown above:]"
}

// missedEnd checks, when output was lost on the way or is too long to
// compare whole, that the end of the output was shown; if it was not (the
// last chunks were dropped), it returns the content after the last line
// that was shown, or the content's end.
func (l *liveOutput) missedEnd(content string) (rest, why string) {
	shown := cleanLikeObservation(string(l.end))
	if shown == content || (shown != "" && strings.HasSuffix(content, shown[max(0, len(shown)-256):])) {
		return "", ""
	}
	if i := strings.LastIndex(content, observationTruncated); i >= 0 {
		content = strings.TrimSpace(content[i+len(observationTruncated):])
	}
	if last := lastCompleteLine(l.end); last != "" {
		if i := strings.LastIndex("\n"+content+"\n", "\n"+last+"\n"); i >= 0 {
			if rest = strings.TrimSpace(content[min(len(content), i+len(last)):]); rest == "" {
				return "", ""
			}
			return rest, "[the end of the output, which the terminal missed:]"
		}
	}
	return content, "[the end of the output, as the observation has it:]"
}

// lastCompleteLine is the last non-blank line of b that its newline ends,
// right-trimmed.
func lastCompleteLine(b []byte) string {
	s := string(b)
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		return ""
	}
	lines := strings.Split(s[:i], "\n")
	for k := len(lines) - 1; k >= 1; k-- { // lines[0] may have lost its start
		if l := strings.TrimRight(lines[k], " \t\r\v\f"); strings.TrimSpace(l) != "" {
			return l
		}
	}
	return ""
}

// cleanLikeObservation cleans output the way the sandbox cleans an
// observation's content (runtimes/sandbox cleanOutput): invalid UTF-8
// replaced, every line right-trimmed, the whole trimmed.
func cleanLikeObservation(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r\v\f")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
