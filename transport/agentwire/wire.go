package agentwire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"corral/eventbus"
)

// serverConn is one client connection. Its reader runs in the HTTP handler
// goroutine; subscriptions (one per request it follows), list_files calls and
// the heartbeat run in goroutines owned by it (wg) and end with it.
type serverConn struct {
	s        *Server
	ws       *websocket.Conn
	ctx      context.Context
	cancel   context.CancelFunc
	lastSeen atomic.Int64
	wg       sync.WaitGroup

	mu   sync.Mutex
	subs map[string]*subscription
}

type subscription struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Server) serveWire(w http.ResponseWriter, r *http.Request) {
	if !s.bearerOK(r) {
		unauthorized(w)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.o.logger.Warn("agentwire: websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	ws.SetReadLimit(s.o.maxFrame)
	ctx, cancel := context.WithCancel(s.ctx)
	c := &serverConn{s: s, ws: ws, ctx: ctx, cancel: cancel, subs: map[string]*subscription{}}
	c.lastSeen.Store(time.Now().UnixNano())

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		_ = ws.Close(websocket.StatusGoingAway, "agent shutting down")
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	c.serve()

	cancel()
	c.wg.Wait()
	ws.CloseNow()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (c *serverConn) send(f *Frame) error {
	b, err := encodeFrame(f)
	if err != nil {
		return fmt.Errorf("agentwire: encoding %s frame: %w", f.Type, err)
	}
	return c.ws.Write(c.ctx, websocket.MessageText, b)
}

func (c *serverConn) sendError(reqID, code, msg string) {
	_ = c.send(&Frame{Type: TypeError, ReqID: reqID, Code: code, Message: msg})
}

func (c *serverConn) serve() {
	if !c.handshake() {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		heartbeat(c.ctx, c.ws, &c.lastSeen, c.s.o.pingInterval, c.s.o.pingTimeout)
	}()
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return
		}
		c.lastSeen.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			c.sendError("", CodeBadFrame, "agentwire frames are JSON text messages; got a binary message")
			continue
		}
		f, err := DecodeFrame(data)
		if err != nil {
			c.sendError(requestIDOf(data), CodeBadFrame, err.Error())
			continue
		}
		c.handle(f)
	}
}

// handshake reads the client's hello and answers with the server's.
func (c *serverConn) handshake() bool {
	ctx, cancel := context.WithTimeout(c.ctx, max(c.s.o.pingTimeout, 5*time.Second))
	typ, data, err := c.ws.Read(ctx)
	cancel()
	if err != nil {
		return false
	}
	f, err := DecodeFrame(data)
	if typ != websocket.MessageText || err != nil || f.Type != TypeHello {
		msg := "agentwire: the first frame must be hello"
		if err != nil {
			msg += ": " + err.Error()
		}
		c.sendError("", CodeBadFrame, msg)
		_ = c.ws.Close(websocket.StatusPolicyViolation, "expected hello")
		return false
	}
	if f.Protocol != ProtocolVersion {
		c.sendError("", CodeVersionMismatch, versionMismatch(f.Protocol, f.Version, ProtocolVersion, c.s.o.version))
		_ = c.ws.Close(websocket.StatusPolicyViolation, "protocol version mismatch")
		return false
	}
	return c.send(&Frame{Type: TypeHello, Protocol: ProtocolVersion, Version: c.s.o.version, Instance: c.s.instance, Features: c.s.features()}) == nil
}

// features lists the optional frames this server answers.
func (s *Server) features() []string {
	if _, ok := s.exec.(Interrupter); ok {
		return []string{FeatureInterrupt}
	}
	return nil
}

func versionMismatch(clientProto int, clientVer string, agentProto int, agentVer string) string {
	return fmt.Sprintf("agentwire protocol mismatch: client speaks protocol %d (version %q), agent speaks protocol %d (corral-agent version %q); run a corral-agent built from the same Corral release as the controller",
		clientProto, clientVer, agentProto, agentVer)
}

func (c *serverConn) handle(f *Frame) {
	switch f.Type {
	case TypeExec:
		r, err := c.s.lookup(f.ReqID)
		if err != nil && !errors.Is(err, errExpired) {
			ev, derr := eventbus.Unmarshal(f.Action)
			if derr != nil {
				c.sendError(f.ReqID, CodeBadAction, fmt.Sprintf("exec %s: the action is not valid OpenHands event JSON: %v", f.ReqID, derr))
				return
			}
			if !ev.IsAction() {
				c.sendError(f.ReqID, CodeBadAction, fmt.Sprintf("exec %s: the event is a %q observation, not an action", f.ReqID, ev.Type()))
				return
			}
			r, err = c.s.start(f.ReqID, ev)
		}
		if err != nil {
			c.requestError(f.ReqID, err)
			return
		}
		c.subscribe(r, f.AfterSeq, f.AfterOffset)
	case TypeResume:
		r, err := c.s.lookup(f.ReqID)
		if err != nil {
			c.requestError(f.ReqID, err)
			return
		}
		c.subscribe(r, f.AfterSeq, f.AfterOffset)
	case TypeCancel:
		r, err := c.s.lookup(f.ReqID)
		if err != nil {
			c.requestError(f.ReqID, err)
			return
		}
		r.cancel() // the result still follows on the subscription
	case TypeListFiles:
		path := ""
		if f.Path != nil {
			path = *f.Path
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			files := c.s.exec.ListFiles(path)
			if files == nil {
				files = []string{}
			}
			_ = c.send(&Frame{Type: TypeFiles, ReqID: f.ReqID, Files: files})
		}()
	case TypeInterrupt:
		c.interrupt(f.ReqID)
	case TypePing:
		_ = c.send(&Frame{Type: TypePong, ReqID: f.ReqID})
	case TypePong:
	default:
		c.sendError(f.ReqID, CodeBadFrame, fmt.Sprintf("agentwire: a client may not send %q frames after the handshake", f.Type))
	}
}

// interrupt interrupts what the executor runs, off the reader goroutine
// (the executor may take a moment to find the foreground process), and
// acknowledges with an interrupted frame.
func (c *serverConn) interrupt(id string) {
	x, ok := c.s.exec.(Interrupter)
	if !ok {
		c.sendError(id, CodeBadFrame, fmt.Sprintf("agentwire: this agent (version %q) cannot interrupt commands; it does not announce the %q feature", c.s.o.version, FeatureInterrupt))
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		running, err := x.Interrupt()
		if err != nil {
			c.sendError(id, CodeInterruptFailed, err.Error())
			return
		}
		_ = c.send(&Frame{Type: TypeInterrupted, ReqID: id, Running: running})
	}()
}

func (c *serverConn) requestError(id string, err error) {
	code := CodeUnknownRequest
	switch {
	case errors.Is(err, errExpired):
		code = CodeResultExpired
	case errors.Is(err, errShuttingDown):
		code = CodeShuttingDown
	}
	c.sendError(id, code, err.Error())
}

// subscribe streams r's output after (seq, offset) and then its result to
// this connection, replacing an earlier subscription to the same request.
func (c *serverConn) subscribe(r *request, seq, offset uint64) {
	c.mu.Lock()
	old := c.subs[r.id]
	ctx, cancel := context.WithCancel(c.ctx)
	sub := &subscription{cancel: cancel, done: make(chan struct{})}
	c.subs[r.id] = sub
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(sub.done)
		defer cancel()
		if old != nil {
			old.cancel()
			<-old.done
		}
		c.stream(ctx, r, seq, offset)
		c.mu.Lock()
		if c.subs[r.id] == sub {
			delete(c.subs, r.id)
		}
		c.mu.Unlock()
	}()
}

// stream writes with the connection's context (a cancelled write context
// closes a coder/websocket connection) and checks ctx between frames.
func (c *serverConn) stream(ctx context.Context, r *request, seq, offset uint64) {
	var buf []byte
	for {
		if ctx.Err() != nil {
			return
		}
		sn := r.next(seq, offset)
		if sn.gap != nil {
			if c.send(sn.gap) != nil {
				return
			}
			seq, offset = sn.gap.NextSeq-1, sn.gap.NextOffset
		}
		for _, ch := range sn.chunks {
			if ctx.Err() != nil {
				return
			}
			buf = appendChunk(buf[:0], r.id, ch.seq, ch.offset, ch.data)
			if c.ws.Write(c.ctx, websocket.MessageText, buf) != nil {
				return
			}
			seq, offset = ch.seq, ch.offset+uint64(len(ch.data))
		}
		if sn.result != nil && seq >= sn.result.LastSeq {
			_ = c.send(sn.result)
			return
		}
		if sn.gap == nil && len(sn.chunks) == 0 {
			select {
			case <-sn.changed:
			case <-ctx.Done():
				return
			}
		}
	}
}

// heartbeat pings the peer every interval and closes ws when nothing at all
// was received for timeout. The ping write has its own deadline: a write
// stuck behind a stalled peer closes the connection too.
func heartbeat(ctx context.Context, ws *websocket.Conn, lastSeen *atomic.Int64, interval, timeout time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	ping, _ := json.Marshal(&Frame{Type: TypePing})
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, lastSeen.Load())) > timeout {
			ws.CloseNow()
			return
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		err := ws.Write(wctx, websocket.MessageText, ping)
		cancel()
		if err != nil {
			ws.CloseNow()
			return
		}
	}
}
