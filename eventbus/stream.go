package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrEventTooLarge is wrapped by Append when an encoded event exceeds
// Config.MaxEventBytes.
var ErrEventTooLarge = errors.New("eventbus: event too large")

// ErrStreamClosed ends subscriptions when their stream is closed, and is
// returned by operations on a closed stream.
var ErrStreamClosed = errors.New("eventbus: stream closed")

// ErrSubscriberOverflow matches (errors.Is) every *OverflowError.
var ErrSubscriberOverflow = errors.New("eventbus: subscriber overflow")

// OverflowError ends a live subscription whose consumer fell more than the
// subscriber buffer behind. Every event up to LastID was delivered (the
// channel is drained before it closes); nothing after it was. Resubscribe
// with Subscribe(ctx, e.ResumeFrom()) to continue without loss.
type OverflowError struct {
	SessionID string
	LastID    int64 // last id delivered on the channel; from-1 if none
	Buffer    int
}

func (e *OverflowError) Error() string {
	return fmt.Sprintf("eventbus: subscriber of session %q fell more than %d events behind and was dropped; last delivered id %d, resubscribe from id %d",
		e.SessionID, e.Buffer, e.LastID, e.LastID+1)
}

// Is makes errors.Is(err, ErrSubscriberOverflow) true.
func (e *OverflowError) Is(target error) bool { return target == ErrSubscriberOverflow }

// ResumeFrom is the id to pass to Subscribe to continue after the overflow.
func (e *OverflowError) ResumeFrom() int64 { return e.LastID + 1 }

// Item is one stored event as subscribers and Search see it: its id and its
// stored OpenHands JSON, ready to send as is (e.g. over WebSocket). JSON is
// shared and must not be modified.
type Item struct {
	ID   int64
	JSON []byte
	ev   *Event
}

// Event returns the decoded event. Live items carry the event decoded once
// and shared by all subscribers: treat it as read-only (Clone to change it).
// Replayed items are decoded on each call.
func (it *Item) Event() (*Event, error) {
	if it.ev != nil {
		return it.ev, nil
	}
	return Unmarshal(it.JSON)
}

// IsCorralExtension reports whether the item is a Corral-only event (see
// Event.IsCorralExtension), without decoding its payload when the item does
// not carry the decoded event.
func (it *Item) IsCorralExtension() bool {
	if it.ev != nil {
		return it.ev.IsCorralExtension()
	}
	return isCorralJSON(it.JSON)
}

// Stream is one session's event stream: it assigns ids, masks secrets,
// persists through the session's log and fans events out to subscribers.
// All methods are safe for concurrent use.
type Stream struct {
	sid     string
	cfg     Config
	log     *eventLog
	logger  *slog.Logger
	release func() // tells the Store the session is no longer open

	secretsMu sync.Mutex
	secrets   map[string]string
	masker    atomic.Pointer[masker]

	fanMu       sync.Mutex
	live        []*Subscription            // receiving live events
	nlive       atomic.Int32               // len(live), read without fanMu by Append
	all         map[*Subscription]struct{} // every open subscription
	durableNext int64                      // id after the last event fanned out
	closed      bool
	closeOnce   sync.Once
	closeErr    error
}

// SessionID returns the session the stream belongs to.
func (s *Stream) SessionID() string { return s.sid }

// Recovered reports what opening the session's log had to drop (nil if the
// log was intact).
func (s *Stream) Recovered() *Recovered { return s.log.recovered }

// LastID returns the id of the last durable event, InvalidID if none.
func (s *Stream) LastID() int64 { return s.log.lastID() }

// LiveSubscribers returns how many subscriptions receive live events now
// (those still replaying stored events are not counted): for tests that
// must know a subscriber is live, and for metrics.
func (s *Stream) LiveSubscribers() int { return int(s.nlive.Load()) }

// Len returns the number of stored events (less than LastID+1 when an
// imported trajectory had gaps).
func (s *Stream) Len() int { return s.log.count() }

// SetSecrets replaces the secrets masked in events appended from now on.
func (s *Stream) SetSecrets(secrets map[string]string) {
	s.secretsMu.Lock()
	defer s.secretsMu.Unlock()
	s.secrets = make(map[string]string, len(secrets))
	for k, v := range secrets {
		s.secrets[k] = v
	}
	s.masker.Store(newMasker(s.secrets))
}

// UpdateSecrets adds or replaces secrets by name (OpenHands' update_secrets).
func (s *Stream) UpdateSecrets(secrets map[string]string) {
	s.secretsMu.Lock()
	defer s.secretsMu.Unlock()
	if s.secrets == nil {
		s.secrets = map[string]string{}
	}
	for k, v := range secrets {
		s.secrets[k] = v
	}
	s.masker.Store(newMasker(s.secrets))
}

// idSpliceMax is the most bytes spliceID adds: `"id":` + 19 digits + ','.
const idSpliceMax = 5 + 19 + 1

// Append stores e as the session's next event and returns the stored copy
// with ID (and Timestamp, when e had none) set; e itself is not modified.
// The copy is shallow: it shares e's action or observation (and other
// pointer fields), so treat both as read-only once appended. It returns only
// once the event is durable per the sync policy, and subscribers receive it
// (secret-masked) in id order after that.
//
// e must not have an id yet (OpenHands rejects re-adding too). The event is
// encoded once; the id is spliced into the encoded bytes, which are what is
// stored and what subscribers get. The event is deep-copied only when a
// subscriber is live (they share one read-only copy) and decoded only when
// masking changed its bytes.
func (s *Stream) Append(ctx context.Context, e *Event) (*Event, error) {
	if e == nil {
		return nil, errors.New("eventbus: Append(nil): pass an event built with NewAction/NewObservation")
	}
	if e.ID != InvalidID {
		return nil, fmt.Errorf("eventbus: event already has id %d; Append assigns ids (append a Clone with ID = InvalidID to store it again)", e.ID)
	}
	if e.Action == nil && e.Observation == nil {
		return nil, errors.New("eventbus: event has neither an action nor an observation")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("eventbus: append to session %q: %w", s.sid, err)
	}
	c := *e
	if c.Timestamp == "" {
		c.Timestamp = Timestamp(time.Now())
	}
	js, err := Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("eventbus: encode %s event for session %q: %w", c.Type(), s.sid, err)
	}
	if len(js) < 2 || js[0] != '{' {
		return nil, fmt.Errorf("eventbus: encoded %s event for session %q is not a JSON object", c.Type(), s.sid)
	}
	masked := false
	if m := s.masker.Load(); m != nil {
		if js, masked, err = m.mask(js); err != nil {
			return nil, err
		}
	}
	if len(js)+idSpliceMax > s.cfg.MaxEventBytes {
		return nil, fmt.Errorf("%w: encoded %s event is %d bytes, more than max_event_bytes = %d for session %q; nothing was stored (truncate the content or raise the limit)",
			ErrEventTooLarge, c.Type(), len(js)+idSpliceMax, s.cfg.MaxEventBytes, s.sid)
	}
	// What subscribers receive: the masked event, decoded from the bytes
	// that are stored, so the two never disagree; else a private copy, made
	// only when someone is listening (a subscriber that goes live later
	// decodes the stored bytes on demand).
	var shared *Event
	switch {
	case masked:
		if shared, err = Unmarshal(js); err != nil {
			return nil, fmt.Errorf("eventbus: decode masked event for session %q: %w", s.sid, err)
		}
	case s.nlive.Load() > 0:
		shared = e.Clone()
		shared.Timestamp = c.Timestamp
	}
	id, err := s.log.append(ctx, js, shared)
	if err != nil {
		if errors.Is(err, errLogClosed) {
			return nil, fmt.Errorf("eventbus: append to session %q: %w", s.sid, ErrStreamClosed)
		}
		return nil, err
	}
	if masked {
		return shared.Clone(), nil
	}
	c.ID = id
	return &c, nil
}

// spliceID appends js (a JSON object without "id") to dst with `"id":N`
// inserted as its first key, where OpenHands writes it.
func spliceID(dst, js []byte, id int64) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	rest := js[1:]
	if len(rest) > 0 && rest[0] != '}' {
		dst = append(dst, ',')
	}
	return append(dst, rest...)
}

// deliver is the log's onDurable hook: it runs on the committer goroutine,
// in id order, and never blocks (a full subscriber is dropped). It reports
// whether any subscriber got the records (their payloads are then shared).
func (s *Stream) deliver(recs []record) bool {
	s.fanMu.Lock()
	defer s.fanMu.Unlock()
	s.durableNext = recs[len(recs)-1].id + 1
	if len(s.live) == 0 {
		return false
	}
	items := make([]Item, len(recs))
	for i := range recs {
		it := &items[i]
		*it = Item{ID: recs[i].id, JSON: recs[i].payload, ev: recs[i].ev}
		for j := 0; j < len(s.live); {
			sub := s.live[j]
			if it.ID < sub.from {
				j++
				continue
			}
			select {
			case sub.ch <- it:
				sub.lastID = it.ID
				j++
			default:
				s.dropLocked(sub, j, &OverflowError{SessionID: s.sid, LastID: sub.lastID, Buffer: cap(sub.ch)})
			}
		}
	}
	return true
}

// dropLocked ends live subscription sub (at index j of s.live) with err.
func (s *Stream) dropLocked(sub *Subscription, j int, err error) {
	last := len(s.live) - 1
	s.live[j] = s.live[last]
	s.live[last] = nil
	s.live = s.live[:last]
	s.nlive.Store(int32(len(s.live)))
	sub.isLive = false
	sub.endChLocked(err)
	delete(s.all, sub)
}

// Subscription delivers a session's events from a chosen id on: stored ones
// first, then live ones as they become durable, with no gap and no
// duplicate. Receive from C until it is closed, then read Err.
type Subscription struct {
	s       *Stream
	from    int64
	ch      chan *Item
	done    chan struct{} // closed by end
	fin     chan struct{} // closed when the replay goroutine has exited
	once    sync.Once
	stopCtx func() bool

	// guarded by s.fanMu
	lastID     int64
	isLive     bool
	chClosed   bool
	err        error
	pendingErr error // why end() stopped a subscription that was still replaying
}

// Subscribe returns a subscription to events with id >= from (0 for all).
// It ends when ctx is done (Err = ctx.Err()), on Close (Err = nil), when the
// stream closes (ErrStreamClosed), or when a live consumer falls more than
// Config.SubscriberBuffer events behind (*OverflowError).
func (s *Stream) Subscribe(ctx context.Context, from int64) (*Subscription, error) {
	if from < 0 {
		from = 0
	}
	sub := &Subscription{
		s: s, from: from, lastID: from - 1,
		ch:   make(chan *Item, s.cfg.SubscriberBuffer),
		done: make(chan struct{}), fin: make(chan struct{}),
	}
	s.fanMu.Lock()
	if s.closed {
		s.fanMu.Unlock()
		return nil, fmt.Errorf("eventbus: subscribe to session %q: %w", s.sid, ErrStreamClosed)
	}
	s.all[sub] = struct{}{}
	s.fanMu.Unlock()
	go sub.replay()
	stop := context.AfterFunc(ctx, func() { sub.end(ctx.Err()) })
	// Under fanMu: end (run by AfterFunc's goroutine) reads stopCtx.
	s.fanMu.Lock()
	sub.stopCtx = stop
	s.fanMu.Unlock()
	return sub, nil
}

// C returns the channel of items; it is closed when the subscription ends.
func (sub *Subscription) C() <-chan *Item { return sub.ch }

// Err returns why the subscription ended (nil after Close or while running).
func (sub *Subscription) Err() error {
	sub.s.fanMu.Lock()
	defer sub.s.fanMu.Unlock()
	return sub.err
}

// Close ends the subscription and waits for its goroutine to exit.
func (sub *Subscription) Close() { sub.end(nil) }

func (sub *Subscription) end(err error) {
	sub.once.Do(func() {
		s := sub.s
		s.fanMu.Lock()
		close(sub.done)
		sub.pendingErr = err
		if sub.isLive {
			for j, x := range s.live {
				if x == sub {
					s.dropLocked(sub, j, err)
					break
				}
			}
		}
		stop := sub.stopCtx
		s.fanMu.Unlock()
		if stop != nil {
			stop()
		}
	})
	<-sub.fin
}

// endChLocked closes the channel once, recording why. fanMu must be held.
func (sub *Subscription) endChLocked(err error) {
	if sub.chClosed {
		return
	}
	sub.chClosed = true
	sub.err = err
	close(sub.ch)
}

// replay sends stored events from sub.from until it has caught up with
// fan-out, then registers sub as live under fanMu, so that the last replayed
// id and the first live one are adjacent.
func (sub *Subscription) replay() {
	defer close(sub.fin)
	s := sub.s
	next := sub.from
	for {
		s.fanMu.Lock()
		select {
		case <-sub.done:
			sub.endChLocked(sub.pendingErr)
			delete(s.all, sub)
			s.fanMu.Unlock()
			return
		default:
		}
		target := s.durableNext
		if next >= target {
			sub.isLive = true
			s.live = append(s.live, sub)
			s.nlive.Store(int32(len(s.live)))
			s.fanMu.Unlock()
			return
		}
		s.fanMu.Unlock()
		stopped := false
		var slab []Item // items are allocated in blocks, not one by one
		err := s.log.read(next, target-1, false, func(id int64, payload []byte) bool {
			if len(slab) == 0 {
				slab = make([]Item, 256)
			}
			it := &slab[0]
			slab = slab[1:]
			it.ID, it.JSON = id, payload
			select {
			case sub.ch <- it:
				sub.lastID = id // only this goroutine touches lastID before going live
				return true
			case <-sub.done:
				stopped = true
				return false
			}
		})
		if err != nil {
			s.fanMu.Lock()
			sub.endChLocked(fmt.Errorf("eventbus: replay session %q from id %d: %w", s.sid, next, err))
			delete(s.all, sub)
			s.fanMu.Unlock()
			return
		}
		if !stopped {
			next = target
		}
	}
}

// Close ends every subscription (Err = ErrStreamClosed), flushes pending
// appends and closes the session's log. The stream cannot be used again;
// reopen the session from its Store.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.fanMu.Lock()
		s.closed = true
		subs := make([]*Subscription, 0, len(s.all))
		for sub := range s.all {
			subs = append(subs, sub)
		}
		s.fanMu.Unlock()
		for _, sub := range subs {
			sub.end(ErrStreamClosed)
		}
		s.closeErr = s.log.close()
		// Subscriptions opened by a racing Subscribe after closed was set are
		// refused, so none are left.
		if s.release != nil {
			s.release()
		}
	})
	return s.closeErr
}
