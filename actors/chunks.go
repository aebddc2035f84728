package actors

import "sync"

// Chunk is a piece of a running command's output. Chunks are live only:
// they are not stored (the observation carries the full output) and a
// subscriber that falls behind loses chunks rather than slowing the session.
type Chunk struct {
	ActionID int64  // id of the action producing the output
	Seq      uint64 // agent's sequence number, increasing per action
	Data     []byte
}

// chunkHub fans chunks out to subscribers without ever blocking the
// publisher.
type chunkHub struct {
	mu   sync.Mutex
	subs map[chan Chunk]struct{}
}

func (h *chunkHub) publish(c Chunk) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- c:
		default: // slow subscriber: drop, never block the runtime
		}
	}
}

func (h *chunkHub) subscribe(buf int) chan Chunk {
	ch := make(chan Chunk, buf)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[chan Chunk]struct{})
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *chunkHub) unsubscribe(ch chan Chunk) {
	h.mu.Lock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
	h.mu.Unlock()
}

// closeAll ends every subscription (the session stopped).
func (h *chunkHub) closeAll() {
	h.mu.Lock()
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
	h.mu.Unlock()
}
