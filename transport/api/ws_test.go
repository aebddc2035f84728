package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"corral/eventbus"
)

type frame struct {
	Type        string          `json:"type"`
	ID          int64           `json:"id"`
	Event       json.RawMessage `json:"event"`
	ActionID    int64           `json:"action_id"`
	Seq         uint64          `json:"seq"`
	Data        string          `json:"data"`
	LastID      int64           `json:"last_id"`
	ResumeAfter int64           `json:"resume_after"`
	Message     string          `json:"message"`
}

func (f *fixture) wsURL(id string, after int64) string {
	return fmt.Sprintf("ws%s/api/sessions/%s/events/ws?after=%d", strings.TrimPrefix(f.ts.URL, "http"), id, after)
}

// smallBufClient's connections have a 32 KiB receive buffer.
func smallBufClient() *http.Client {
	d := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10) })
		return errors.Join(err, serr)
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func (f *fixture) dial(ctx context.Context, id string, after int64, hdr http.Header) *websocket.Conn {
	f.t.Helper()
	if hdr == nil {
		hdr = http.Header{}
	}
	if f.token != "" && hdr.Get("Authorization") == "" {
		hdr.Set("Authorization", "Bearer "+f.token)
	}
	c, res, err := websocket.Dial(ctx, f.wsURL(id, after), &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: smallBufClient()})
	if err != nil {
		code := 0
		if res != nil {
			code = res.StatusCode
		}
		f.t.Fatalf("dial %s: %v (status %d)", id, err, code)
	}
	c.SetReadLimit(-1)
	return c
}

func readFrame(ctx context.Context, t testing.TB, c *websocket.Conn) (frame, error) {
	_, b, err := c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var fr frame
	if err := json.Unmarshal(b, &fr); err != nil {
		t.Fatalf("frame is not JSON: %v: %.200s", err, b)
	}
	return fr, nil
}

// checkSequence fails unless ids are exactly 0..n-1.
func checkSequence(t *testing.T, ids []int64, n int) {
	t.Helper()
	if len(ids) != n {
		t.Fatalf("got %d events, want %d", len(ids), n)
	}
	for i, id := range ids {
		if id != int64(i) {
			t.Fatalf("event #%d has id %d: a gap or a duplicate (ids around it: %v)", i, id, ids[max(0, i-3):min(len(ids), i+3)])
		}
	}
}

func TestWSReplaysThenGoesLiveWithoutGapOrDuplicate(t *testing.T) {
	f := newFixture(t, nil)
	id := f.newSession()
	f.eng.emit(t, id, 50, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := f.dial(ctx, id, -1, nil)
	defer c.CloseNow()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.eng.emit(t, id, 150, 10) }()
	var ids []int64
	for len(ids) < 200 {
		fr, err := readFrame(ctx, t, c)
		if err != nil {
			t.Fatalf("after %d events: %v", len(ids), err)
		}
		if fr.Type != FrameEvent {
			t.Fatalf("unexpected frame %+v", fr)
		}
		e, err := eventbus.Unmarshal(fr.Event)
		if err != nil || e.ID != fr.ID {
			t.Fatalf("event frame id %d carries %s (%v)", fr.ID, fr.Event, err)
		}
		ids = append(ids, fr.ID)
	}
	wg.Wait()
	checkSequence(t, ids, 200)

	// after=N starts right after N.
	c2 := f.dial(ctx, id, 197, nil)
	defer c2.CloseNow()
	fr, err := readFrame(ctx, t, c2)
	if err != nil || fr.ID != 198 {
		t.Fatalf("after=197 first frame = %+v, %v; want id 198", fr, err)
	}
}

func TestWSResumeAfterKilledConnectionsLosesAndDoublesNothing(t *testing.T) {
	f := newFixture(t, nil)
	id := f.newSession()
	const total = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.eng.emit(t, id, total, 200) }()
	defer wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var ids []int64
	last := int64(-1)
	reconnects := 0
	for len(ids) < total {
		c := f.dial(ctx, id, last, nil)
		n := 1 + rand.IntN(400)
		for i := 0; i < n && len(ids) < total; i++ {
			fr, err := readFrame(ctx, t, c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			ids = append(ids, fr.ID)
			last = fr.ID
		}
		c.CloseNow() // kill it mid-stream, no close handshake
		reconnects++
	}
	checkSequence(t, ids, total)
	if reconnects < 3 {
		t.Fatalf("only %d connections: the test did not exercise resuming", reconnects)
	}
}

func TestWSStreamsCommandOutputBeforeTheObservation(t *testing.T) {
	f := newFixture(t, nil)
	id := f.newSession()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := f.dial(ctx, id, -1, nil)
	defer c.CloseNow()
	var acc actionAccepted
	f.mustJSON("POST", "/api/sessions/"+id+"/actions", `{"action":"run","args":{"command":"for i in 1 2 3; do echo line$i; sleep 0.3; done"}}`, 202, &acc)
	var out strings.Builder
	chunks := 0
	var lastSeq uint64
	for {
		fr, err := readFrame(ctx, t, c)
		if err != nil {
			t.Fatal(err)
		}
		if fr.Type == FrameOutput {
			if fr.ActionID != acc.ID || fr.Seq <= lastSeq {
				t.Fatalf("output frame %+v (action %d, last seq %d)", fr, acc.ID, lastSeq)
			}
			lastSeq = fr.Seq
			chunks++
			out.WriteString(fr.Data)
			continue
		}
		e, err := eventbus.Unmarshal(fr.Event)
		if err != nil {
			t.Fatal(err)
		}
		if !e.IsAction() && e.Cause != nil && *e.Cause == acc.ID {
			if e.Content != "line1\nline2\nline3" {
				t.Fatalf("observation content %q", e.Content)
			}
			break
		}
	}
	if chunks < 2 || out.String() != "line1\nline2\nline3\n" {
		t.Fatalf("%d output frames with %q before the observation; want the lines streamed as they were printed", chunks, out.String())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestWSSlowClientIsToldItFellBehindAndResumes(t *testing.T) {
	f := newFixtureWith(t, fixtureOpts{subscriberBuffer: 16, smallSockets: true}, func(c *Config) {
		c.WSBuffer = 8
		c.WSWriteTimeout = time.Minute
		c.WSPingInterval = time.Minute // the paused client answers no pings
	})
	id := f.newSession()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := f.dial(ctx, id, -1, nil)
	defer c.CloseNow()
	// 4 MB of events, far more than the (small) socket buffers hold, while
	// the client reads nothing.
	const total = 200
	f.eng.emit(t, id, total, 20<<10)
	waitFor(t, "the server to notice the client fell behind", func() bool { return f.srv.Metrics().WebSocketFellBehindTotal() == 1 })

	var ids []int64
	var behind frame
	for {
		fr, err := readFrame(ctx, t, c)
		if err != nil {
			t.Fatalf("read after %d events without a fell_behind frame: %v", len(ids), err)
		}
		if fr.Type == FrameFellBehind {
			behind = fr
			break
		}
		ids = append(ids, fr.ID)
	}
	if _, err := readFrame(ctx, t, c); websocket.CloseStatus(err) != CloseFellBehind {
		t.Fatalf("after fell_behind: %v, want close code %d", err, CloseFellBehind)
	}
	if len(ids) == 0 || len(ids) >= total || behind.LastID != ids[len(ids)-1] || behind.ResumeAfter != behind.LastID || !strings.Contains(behind.Message, fmt.Sprintf("after=%d", behind.LastID)) {
		t.Fatalf("fell_behind %+v after %d events (last %v)", behind, len(ids), ids[len(ids)-1:])
	}
	c2 := f.dial(ctx, id, behind.LastID, nil)
	defer c2.CloseNow()
	for len(ids) < total {
		fr, err := readFrame(ctx, t, c2)
		if err != nil {
			t.Fatalf("resumed read: %v", err)
		}
		ids = append(ids, fr.ID)
	}
	checkSequence(t, ids, total)
}

func TestWSClientThatNeverReadsIsClosedAndOtherSessionsFlow(t *testing.T) {
	f := newFixtureWith(t, fixtureOpts{subscriberBuffer: 64, smallSockets: true}, func(c *Config) {
		c.WSBuffer = 4
		c.WSWriteTimeout = 2 * time.Second
		c.WSPingInterval = time.Minute
	})
	stuck, busy := f.newSession(), f.newSession()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	never := f.dial(ctx, stuck, -1, nil)
	defer never.CloseNow()
	other := f.dial(ctx, busy, -1, nil)
	defer other.CloseNow()
	waitFor(t, "two WebSocket clients", func() bool { return f.srv.Metrics().WebSocketClients() == 2 })

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f.eng.emit(t, stuck, 300, 20<<10) }()
	go func() { defer wg.Done(); f.eng.emitPaced(t, busy, 500, 100, 500*time.Microsecond) }()
	var ids []int64
	for len(ids) < 500 {
		fr, err := readFrame(ctx, t, other)
		if err != nil {
			t.Fatalf("the other session's client: %v after %d events", err, len(ids))
		}
		ids = append(ids, fr.ID)
	}
	wg.Wait()
	checkSequence(t, ids, 500)
	waitFor(t, "the stuck client to be closed", func() bool { return f.srv.Metrics().WebSocketClients() == 1 })
	if n := f.srv.Metrics().WebSocketFellBehindTotal(); n != 1 {
		t.Fatalf("fell-behind count %d, want 1", n)
	}
}

func TestWSOriginAndTokenChecks(t *testing.T) {
	token := "ws-token-0123456789"
	f := newFixture(t, func(c *Config) {
		c.AllowedOrigins = []string{"http://ui.example"}
		c.AuthTokens = []string{token}
	})
	id := f.newSession()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name   string
		url    string
		hdr    http.Header
		status int
	}{
		{"foreign origin is refused", f.wsURL(id, -1), http.Header{"Origin": {"http://evil.example"}, "Authorization": {"Bearer " + token}}, 403},
		{"configured origin is accepted", f.wsURL(id, -1), http.Header{"Origin": {"http://ui.example"}, "Authorization": {"Bearer " + token}}, 101},
		{"own origin is accepted", f.wsURL(id, -1), http.Header{"Origin": {f.ts.URL}, "Authorization": {"Bearer " + token}}, 101},
		{"no token is refused", f.wsURL(id, -1), http.Header{}, 401},
		{"token in the query is accepted", f.wsURL(id, -1) + "&access_token=" + token, http.Header{}, 101},
		{"wrong token in the query is refused", f.wsURL(id, -1) + "&access_token=nope-nope-nope-nope", http.Header{}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, res, err := websocket.Dial(ctx, tt.url, &websocket.DialOptions{HTTPHeader: tt.hdr})
			if c != nil {
				c.CloseNow()
			}
			if res == nil {
				t.Fatalf("no response: %v", err)
			}
			if res.StatusCode != tt.status {
				t.Fatalf("status %d (%v), want %d", res.StatusCode, err, tt.status)
			}
		})
	}
}

func TestWSEndsWithClosedFrameWhenTheStreamEnds(t *testing.T) {
	f := newFixture(t, nil)
	id := f.newSession()
	f.eng.emit(t, id, 3, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := f.dial(ctx, id, -1, nil)
	defer c.CloseNow()
	for i := 0; i < 3; i++ {
		if _, err := readFrame(ctx, t, c); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := f.eng.session(id)
	_ = s.stream.Close()
	fr, err := readFrame(ctx, t, c)
	if err != nil || fr.Type != FrameClosed || fr.LastID != 2 || !strings.Contains(fr.Message, "stream closed") {
		t.Fatalf("frame %+v, %v; want a closed frame with last_id 2", fr, err)
	}
	if _, err := readFrame(ctx, t, c); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after closed frame: %v", err)
	}
}

func TestWSServerCloseSaysGoingAway(t *testing.T) {
	f := newFixture(t, nil)
	id := f.newSession()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := f.dial(ctx, id, -1, nil)
	defer c.CloseNow()
	waitFor(t, "the client to be registered", func() bool { return f.srv.Metrics().WebSocketClients() == 1 })
	closed := make(chan struct{})
	go func() { defer close(closed); f.srv.Close() }()
	_, err := readFrame(ctx, t, c)
	<-closed
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("read after server Close: %v, want going away", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("server Close did not end the connection")
	}
}

func TestWSPingsCloseSilentClientsAndKeepLiveOnes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WSPingInterval = 150 * time.Millisecond })
	id := f.newSession()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A client that reads answers pings (coder/websocket replies while
	// Read runs); one that never reads does not.
	live := f.dial(ctx, id, -1, nil)
	defer live.CloseNow()
	readErr := make(chan error, 1)
	go func() {
		_, _, err := live.Read(ctx)
		readErr <- err
	}()
	silent := f.dial(ctx, id, -1, nil)
	defer silent.CloseNow()
	waitFor(t, "two clients", func() bool { return f.srv.Metrics().WebSocketClients() == 2 })
	waitFor(t, "the silent client to be closed after an unanswered ping", func() bool { return f.srv.Metrics().WebSocketClients() == 1 })
	// Several ping intervals later the reading client is still connected.
	time.Sleep(5 * 150 * time.Millisecond)
	if n := f.srv.Metrics().WebSocketClients(); n != 1 {
		t.Fatalf("%d clients after the silent one was closed, want the live one", n)
	}
	select {
	case err := <-readErr:
		t.Fatalf("the reading client was closed: %v", err)
	default:
	}
	f.eng.emit(t, id, 1, 10)
	if err := <-readErr; err != nil {
		t.Fatalf("the reading client did not get the event: %v", err)
	}
}
