package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"corral/eventbus"
)

// WebSocket frames the server sends on /events/ws. Each is one JSON text
// message with a "type".
const (
	// FrameEvent carries one stored event: {"type":"event","id":N,"event":{...OpenHands JSON...}}.
	FrameEvent = "event"
	// FrameOutput carries live output of a running command:
	// {"type":"output","action_id":N,"seq":S,"data":"..."}. Not stored; the
	// observation event has the whole output.
	FrameOutput = "output"
	// FrameFellBehind says the client did not keep up and the connection is
	// being closed: {"type":"fell_behind","last_id":N,...}. Every event up to
	// last_id was sent; reconnect with ?after=<last_id>.
	FrameFellBehind = "fell_behind"
	// FrameClosed says the session's stream ended (the session was removed
	// or the server is stopping): {"type":"closed","last_id":N,...}.
	FrameClosed = "closed"
)

// CloseFellBehind is the WebSocket close code after a fell_behind frame.
const CloseFellBehind websocket.StatusCode = 4000

type wsFrame struct {
	eventID int64 // >= 0 for event frames
	data    []byte
}

type outputFrame struct {
	Type     string `json:"type"`
	ActionID int64  `json:"action_id"`
	Seq      uint64 `json:"seq"`
	Data     string `json:"data"`
}

type endFrame struct {
	Type        string `json:"type"`
	LastID      int64  `json:"last_id"`
	ResumeAfter int64  `json:"resume_after"`
	Message     string `json:"message"`
}

func eventFrame(it *eventbus.Item) []byte {
	b := make([]byte, 0, len(it.JSON)+40)
	b = append(b, `{"type":"event","id":`...)
	b = strconv.AppendInt(b, it.ID, 10)
	b = append(b, `,"event":`...)
	b = append(b, it.JSON...)
	return append(b, '}')
}

// eventsWS replays a session's events after ?after= and then follows it
// live, interleaving output chunks of running commands. Only OpenHands
// events are sent unless ?corral_events=true adds Corral's own
// (runtime_status).
//
// Two goroutines per client besides this handler, which writes a bounded
// queue to the socket: the pump moves events and chunks from the engine
// into the queue (see pump), and the pinger. The engine's fan-out never
// waits for a client: its subscription buffer absorbs a slow one until it
// overflows, and then the client gets a fell_behind frame naming the last
// event it was sent, and is closed.
func (s *Server) eventsWS(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	after, err := parseAfter(r.URL.Query().Get("after"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	withCorral, err := corralEventsParam(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !s.originAllowed(r, origin) {
		writeError(w, http.StatusForbidden, "origin_not_allowed",
			fmt.Sprintf("origin %q may not open this WebSocket; add it to [server] allowed_origins", origin))
		return
	}
	if _, err := s.eng.GetSession(r.Context(), id); err != nil {
		s.engineError(w, r, fmt.Sprintf("subscribe to session %q", id), err)
		return
	}
	if !s.trackWS() {
		writeError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down; reconnect to another instance or after it restarts")
		return
	}
	defer s.wsWG.Done()
	ctx, cancel := context.WithCancel(s.baseCtx)
	defer cancel()
	sub, err := s.eng.Subscribe(ctx, id, after+1)
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("subscribe to session %q", id), err)
		return
	}
	defer sub.Close()
	// Output is optional: a stopped session has none, its events still replay.
	chunks, stopChunks, err := s.eng.SubscribeOutput(ctx, id)
	if err != nil {
		chunks, stopChunks = nil, func() {}
	}
	defer stopChunks()

	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above, against our own list
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered the client
	}
	s.metrics.WebSocketOpened()
	defer s.metrics.WebSocketClosed()
	defer conn.CloseNow()

	// The client sends nothing; reading keeps control frames (pong, close)
	// flowing and ends readCtx when the client goes away. It must not
	// inherit ctx: cancelling a read closes the socket at once, and server
	// shutdown wants to send "going away" first.
	readCtx := conn.CloseRead(context.Background())
	stopAfter := context.AfterFunc(readCtx, cancel)
	defer stopAfter()

	queue := make(chan wsFrame, s.cfg.WSBuffer)
	behind := make(chan struct{})
	var ended atomic.Pointer[error] // why the subscription ended, when the pump closes queue
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.pump(ctx, sub, chunks, withCorral, queue, behind, &ended) }()
	go func() { defer wg.Done(); s.pinger(ctx, conn, cancel) }()
	defer func() { cancel(); wg.Wait() }()

	lastSent := after
	write := func(b []byte) bool {
		wctx, wcancel := context.WithTimeout(ctx, s.cfg.WSWriteTimeout)
		defer wcancel()
		return conn.Write(wctx, websocket.MessageText, b) == nil
	}
	sayBehind := func() {
		b, _ := json.Marshal(endFrame{Type: FrameFellBehind, LastID: lastSent, ResumeAfter: lastSent,
			Message: fmt.Sprintf("this connection fell further behind session %q than the server buffers for one client and is being closed; every event up to id %d was sent; reconnect with ?after=%d to continue", id, lastSent, lastSent)})
		if write(b) {
			conn.Close(CloseFellBehind, "fell behind; resume with after="+strconv.FormatInt(lastSent, 10))
		}
	}
	for {
		// A pending fell-behind wins over queued frames: they are discarded
		// and the client resumes from lastSent.
		select {
		case <-behind:
			sayBehind()
			return
		default:
		}
		select {
		case <-behind:
			sayBehind()
			return
		case <-ctx.Done():
			if s.baseCtx.Err() != nil {
				conn.Close(websocket.StatusGoingAway, "server shutting down; reconnect with after="+strconv.FormatInt(lastSent, 10))
			}
			return
		case f, ok := <-queue:
			if !ok {
				msg := "the session's event stream ended"
				if p := ended.Load(); p != nil && *p != nil {
					msg += ": " + (*p).Error()
				}
				b, _ := json.Marshal(endFrame{Type: FrameClosed, LastID: lastSent, ResumeAfter: lastSent, Message: msg})
				if write(b) {
					conn.Close(websocket.StatusNormalClosure, "stream ended")
				}
				return
			}
			if !s.writeBatch(ctx, conn, f, queue, behind, &lastSent) {
				return
			}
		}
	}
}

// wsBatchMax bounds the frames written under one deadline, so a fast
// producer cannot keep the writer from noticing behind or shutdown.
const wsBatchMax = 64

// writeBatch writes f and then whatever else is already queued (up to
// wsBatchMax frames) under one WSWriteTimeout deadline: one timer per batch
// rather than per frame matters with a thousand subscribers. A queue that
// is closed is left for the caller's loop to notice. It returns false when
// a write failed (the connection is then unusable).
func (s *Server) writeBatch(ctx context.Context, conn *websocket.Conn, f wsFrame, queue <-chan wsFrame, behind <-chan struct{}, lastSent *int64) bool {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WSWriteTimeout)
	defer cancel()
	for n := 0; ; n++ {
		if conn.Write(wctx, websocket.MessageText, f.data) != nil {
			return false
		}
		if f.eventID >= 0 {
			*lastSent = f.eventID
		}
		if n+1 == wsBatchMax {
			return true
		}
		select {
		case <-behind:
			return true
		default:
		}
		select {
		case next, ok := <-queue:
			if !ok {
				// The caller's next receive sees the closed queue and says so.
				return true
			}
			f = next
		default:
			return true
		}
	}
}

// pump moves events and chunks into queue. Events wait for room (a replay
// from an old id must not count as falling behind); the engine's
// subscription buffer bounds how far a live client may lag, and when the
// engine drops the subscription for lagging, pump closes behind. Chunks
// never wait: when the queue is full a chunk is dropped (its action's
// observation carries the whole output, and seq numbers show the gap).
// When the subscription ends otherwise, pump closes queue. Corral's own
// events (runtime_status) are skipped unless withCorral.
func (s *Server) pump(ctx context.Context, sub EventSubscription, chunks <-chan OutputChunk, withCorral bool, queue chan<- wsFrame, behind chan<- struct{}, ended *atomic.Pointer[error]) {
	events := sub.C()
	fellBehind := func() {
		s.metrics.WebSocketFellBehind()
		close(behind)
	}
	// While an event waits for room, poll the subscription so a client that
	// stopped reading is noticed when the engine drops it, not only when the
	// blocked write times out.
	var poll *time.Ticker
	defer func() {
		if poll != nil {
			poll.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case it, ok := <-events:
			if !ok {
				err := sub.Err()
				if errors.Is(err, eventbus.ErrSubscriberOverflow) {
					fellBehind()
					return
				}
				if ctx.Err() != nil {
					return
				}
				ended.Store(&err)
				close(queue)
				return
			}
			if !withCorral && it.IsCorralExtension() {
				continue
			}
			f := wsFrame{eventID: it.ID, data: eventFrame(it)}
			select {
			case queue <- f:
				continue
			default:
			}
			if poll == nil {
				poll = time.NewTicker(50 * time.Millisecond)
			}
			for sent := false; !sent; {
				select {
				case queue <- f:
					sent = true
				case <-ctx.Done():
					return
				case <-poll.C:
					if errors.Is(sub.Err(), eventbus.ErrSubscriberOverflow) {
						fellBehind()
						return
					}
				}
			}
		case c, ok := <-chunks:
			if !ok {
				chunks = nil // the session stopped running; events continue
				continue
			}
			b, err := json.Marshal(outputFrame{Type: FrameOutput, ActionID: c.ActionID, Seq: c.Seq, Data: string(c.Data)})
			if err != nil {
				continue
			}
			select {
			case queue <- wsFrame{eventID: -1, data: b}:
			default:
			}
		}
	}
}

// pinger pings the client every WSPingInterval and ends the connection when
// a pong does not come back within the interval.
func (s *Server) pinger(ctx context.Context, conn *websocket.Conn, cancel context.CancelFunc) {
	t := time.NewTicker(s.cfg.WSPingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, pcancel := context.WithTimeout(ctx, s.cfg.WSPingInterval)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				cancel()
				return
			}
		}
	}
}
