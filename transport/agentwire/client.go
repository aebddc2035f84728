package agentwire

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"corral/eventbus"
)

// Errors a Client returns (wrapped with detail).
var (
	// ErrAgentLost: the connection could not be re-established within the
	// grace period; the client is dead (Done is closed).
	ErrAgentLost = errors.New("agentwire: agent lost")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("agentwire: client closed")
	// ErrUnauthorized: the agent refused the token (HTTP 401).
	ErrUnauthorized = errors.New("agentwire: agent refused the token")
	// ErrVersionMismatch: the agent speaks another protocol version.
	ErrVersionMismatch = errors.New("agentwire: protocol version mismatch")
	// ErrAgentRestarted: the client reconnected to a new agent process;
	// actions that were in flight may or may not have run and are not
	// re-sent (that could run them twice).
	ErrAgentRestarted = errors.New("agentwire: the agent restarted while the action was in flight; its outcome is unknown")
	// ErrNotConnected: the client is between connections (reconnecting).
	ErrNotConnected = errors.New("agentwire: not connected to the agent right now (reconnecting)")
	// ErrRequestInFlight: this Client is already waiting on that request
	// id (two calls cannot share an id on one Client).
	ErrRequestInFlight = errors.New("agentwire: this client already has a call in flight with that request id")
	// ErrUnknownRequest: the agent has no request with that id (error code
	// unknown_request): it never received it, or the agent restarted since
	// it was sent, in which case its outcome is unknown. A *RemoteError
	// with that code matches it with errors.Is.
	ErrUnknownRequest = errors.New("agentwire: the agent does not know this request id (never received, or the agent restarted since: outcome unknown)")
	// ErrInterruptUnsupported: the agent predates the interrupt frame (its
	// hello does not announce FeatureInterrupt). It matches
	// errors.ErrUnsupported.
	ErrInterruptUnsupported = fmt.Errorf("agentwire: the agent cannot interrupt commands: it predates the interrupt frame; run a corral-agent built from this Corral release: %w", errors.ErrUnsupported)
	// ErrResultExpired: the request ran, but the agent no longer keeps its
	// result (error code result_expired); it is never run again. A
	// *RemoteError with that code matches it with errors.Is.
	ErrResultExpired = errors.New("agentwire: the request ran but the agent no longer keeps its result")
)

// RemoteError is an error frame the agent sent about one request.
type RemoteError struct {
	ReqID, Code, Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("agentwire: agent answered request %s with %s: %s", e.ReqID, e.Code, e.Message)
}

// Unwrap maps the codes unknown_request and result_expired to
// ErrUnknownRequest and ErrResultExpired.
func (e *RemoteError) Unwrap() error {
	switch e.Code {
	case CodeUnknownRequest:
		return ErrUnknownRequest
	case CodeResultExpired:
		return ErrResultExpired
	}
	return nil
}

type dialOptions struct {
	tls          *tls.Config
	version      string
	grace        time.Duration
	pingInterval time.Duration
	pingTimeout  time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration
	maxFrame     int64
	logger       *slog.Logger
	onGap        func(reqID string, lostBytes uint64)
	dialer       func(ctx context.Context) (net.Conn, error)
}

// DialOption configures Dial.
type DialOption func(*dialOptions)

// WithTLS connects with TLS (wss:// and https://) using cfg.
func WithTLS(cfg *tls.Config) DialOption { return func(o *dialOptions) { o.tls = cfg } }

// WithClientVersion sets the version string sent in hello (default "dev").
func WithClientVersion(v string) DialOption { return func(o *dialOptions) { o.version = v } }

// WithGracePeriod is how long the client keeps trying to reconnect after
// losing its connection before it declares the agent lost (default 30s).
func WithGracePeriod(d time.Duration) DialOption { return func(o *dialOptions) { o.grace = d } }

// WithClientHeartbeat sets the ping interval and the silence after which the
// connection is considered dead (default 1s, 3s).
func WithClientHeartbeat(interval, timeout time.Duration) DialOption {
	return func(o *dialOptions) { o.pingInterval, o.pingTimeout = interval, timeout }
}

// WithBackoff bounds the delay between reconnect attempts (default 50ms
// doubling up to 1s).
func WithBackoff(min, max time.Duration) DialOption {
	return func(o *dialOptions) { o.backoffMin, o.backoffMax = min, max }
}

// WithMaxFrame bounds a frame read from the agent (default 256 MiB; result
// frames carry whole observations).
func WithMaxFrame(n int64) DialOption { return func(o *dialOptions) { o.maxFrame = n } }

// WithClientLogger sets the logger (default slog.Default()).
func WithClientLogger(l *slog.Logger) DialOption { return func(o *dialOptions) { o.logger = l } }

// WithGapHandler is called (from the client's reader goroutine) when output
// of a request was evicted on the agent before this client could read it.
// The final observation is complete regardless; only live chunks are lost.
func WithGapHandler(f func(reqID string, lostBytes uint64)) DialOption {
	return func(o *dialOptions) { o.onGap = f }
}

// WithDialer makes the client open its connections with dial instead of
// dialling addr itself: for agents reached through a tunnel (an SSH
// connection's direct-streamlocal channel, a proxy). addr still names the
// agent in URLs and messages.
func WithDialer(dial func(ctx context.Context) (net.Conn, error)) DialOption {
	return func(o *dialOptions) { o.dialer = dial }
}

// Client is a connection to one corral-agent. It reconnects by itself; all
// methods are safe for concurrent use.
type Client struct {
	o       dialOptions
	addr    string // as given to Dial, for messages
	token   string
	wsURL   string
	baseURL string
	httpc   *http.Client

	ctx    context.Context // ends with Close or loss
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu           sync.Mutex
	ws           *websocket.Conn // nil while reconnecting
	calls        map[string]*call
	agentVersion string
	features     []string // optional frames the agent answers (its last hello)
	instance     string   // the agent process we talk to (hello)
	done         chan struct{}
	err          error
}

type call struct {
	req     *Frame // what to (re)send
	resend  bool   // re-sent after a reconnect (exec, list_files) or failed (ping)
	onChunk func(seq uint64, data []byte)
	res     chan *Frame // result, files, pong or error; buffered 1

	// owned by the client's connection goroutine
	seq, offset uint64
}

// NewRequestID returns a random 128-bit id in hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Dial connects to the agent at addr ("unix:///path.sock" or "host:port")
// with token and completes the hello handshake. It does not retry: a failure
// is returned at once (wrapping ErrUnauthorized or ErrVersionMismatch where
// that is the cause).
func Dial(ctx context.Context, addr, token string, opts ...DialOption) (*Client, error) {
	o := dialOptions{
		version: "dev", grace: 30 * time.Second,
		pingInterval: time.Second, pingTimeout: 3 * time.Second,
		backoffMin: 50 * time.Millisecond, backoffMax: time.Second,
		maxFrame: 256 << 20,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	network, address, host, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			if o.dialer != nil {
				return o.dialer(ctx)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, address)
		},
		TLSClientConfig:     o.tls,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	ws, hs := "ws://", "http://"
	if o.tls != nil {
		ws, hs = "wss://", "https://"
	}
	c := &Client{
		o: o, addr: addr, token: token, wsURL: ws + host + PathWire, baseURL: hs + host,
		httpc: &http.Client{Transport: tr},
		calls: map[string]*call{}, done: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	conn, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		tr.CloseIdleConnections()
		return nil, err
	}
	c.ws = conn
	c.wg.Add(1)
	go c.run(conn)
	return c, nil
}

func parseAddr(addr string) (network, address, host string, err error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		p := strings.TrimPrefix(addr, "unix://")
		if p == "" {
			return "", "", "", fmt.Errorf("agentwire: address %q has no socket path; write unix:///path/to.sock", addr)
		}
		return "unix", p, "agent", nil
	case strings.HasPrefix(addr, "tcp://"):
		addr = strings.TrimPrefix(addr, "tcp://")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", "", fmt.Errorf("agentwire: address %q is neither unix:///path.sock nor host:port: %w", addr, err)
	}
	return "tcp", addr, addr, nil
}

// connect dials, upgrades and exchanges hello frames.
func (c *Client) connect(ctx context.Context) (*websocket.Conn, error) {
	ws, resp, err := websocket.Dial(ctx, c.wsURL, &websocket.DialOptions{
		HTTPClient:      c.httpc,
		HTTPHeader:      http.Header{"Authorization": {"Bearer " + c.token}},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			body := ""
			if resp.Body != nil {
				b, _ := io.ReadAll(resp.Body)
				body = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("%w at %s (HTTP 401 %s); check the sandbox's agent token", ErrUnauthorized, c.wsURL, body)
		}
		return nil, fmt.Errorf("agentwire: connecting to %s: %w", c.wsURL, err)
	}
	ws.SetReadLimit(c.o.maxFrame)
	hello, _ := json.Marshal(&Frame{Type: TypeHello, Protocol: ProtocolVersion, Version: c.o.version})
	if err := ws.Write(ctx, websocket.MessageText, hello); err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("agentwire: sending hello to %s: %w", c.wsURL, err)
	}
	_, data, err := ws.Read(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("agentwire: waiting for the agent's hello at %s: %w", c.wsURL, err)
	}
	f, err := DecodeFrame(data)
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("agentwire: the agent's hello at %s: %w", c.wsURL, err)
	}
	switch {
	case f.Type == TypeError && f.Code == CodeVersionMismatch:
		ws.CloseNow()
		return nil, fmt.Errorf("%w: %s", ErrVersionMismatch, f.Message)
	case f.Type == TypeError:
		ws.CloseNow()
		return nil, fmt.Errorf("agentwire: agent at %s refused the connection: %s: %s", c.wsURL, f.Code, f.Message)
	case f.Type != TypeHello:
		ws.CloseNow()
		return nil, fmt.Errorf("agentwire: agent at %s answered hello with %q", c.wsURL, f.Type)
	case f.Protocol != ProtocolVersion:
		ws.CloseNow()
		return nil, fmt.Errorf("%w: %s", ErrVersionMismatch, versionMismatch(ProtocolVersion, c.o.version, f.Protocol, f.Version))
	}
	c.mu.Lock()
	c.agentVersion, c.features = f.Version, f.Features
	if c.instance == "" {
		c.instance = f.Instance
	}
	restarted := f.Instance != c.instance
	c.instance = f.Instance
	c.mu.Unlock()
	if restarted {
		c.failExecs()
	}
	return ws, nil
}

// failExecs fails every pending exec and resume with ErrAgentRestarted: the
// new agent process does not know their ids and would run them again.
func (c *Client) failExecs() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, cl := range c.calls {
		if cl.req.Type == TypeExec || cl.req.Type == TypeResume {
			delete(c.calls, id)
			cl.res <- &Frame{Type: TypeError, ReqID: id, Code: "agent_restarted"}
		}
	}
	c.o.logger.Warn("agentwire: reconnected to a restarted agent; in-flight actions failed", "url", c.wsURL)
}

// AgentVersion is the version the agent announced in its last hello.
func (c *Client) AgentVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.agentVersion
}

// AgentInstance is the instance id the agent announced in its last hello:
// random per agent process. A controller that records it next to a request
// id can tell, after its own restart, whether the agent it dials again is
// the process that received the request (same instance) or a new one (the
// request's outcome is unknown; see Resume).
func (c *Client) AgentInstance() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.instance
}

// Done is closed when the client is closed or the agent is declared lost.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why Done is closed (wrapping ErrAgentLost or ErrClosed); nil
// before.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection and fails pending calls with ErrClosed. Actions
// already running on the agent continue there.
func (c *Client) Close() error {
	c.finish(ErrClosed)
	c.wg.Wait()
	c.httpc.CloseIdleConnections()
	return nil
}

// finish closes Done with err (once) and fails every pending call.
func (c *Client) finish(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	ws := c.ws
	c.calls = map[string]*call{}
	close(c.done)
	c.mu.Unlock()
	c.cancel()
	if ws != nil {
		ws.CloseNow()
	}
}

// run owns the connection: it reads frames, and when the connection dies it
// reconnects and re-sends every pending request, until Close or loss.
func (c *Client) run(ws *websocket.Conn) {
	defer c.wg.Done()
	for {
		err := c.readLoop(ws)
		ws.CloseNow()
		c.mu.Lock()
		c.ws = nil
		for id, cl := range c.calls {
			if !cl.resend {
				delete(c.calls, id)
				cl.res <- &Frame{Type: TypeError, ReqID: id, Code: "disconnected", Message: "connection to the agent lost"}
			}
		}
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		c.o.logger.Warn("agentwire: connection to agent lost; reconnecting", "url", c.wsURL, "err", err, "grace", c.o.grace)
		ws = c.reconnect(err)
		if ws == nil {
			return
		}
	}
}

func (c *Client) reconnect(cause error) *websocket.Conn {
	deadline := time.Now().Add(c.o.grace)
	delay := c.o.backoffMin
	lastErr := cause
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			c.finish(fmt.Errorf("%w: no connection to %s for %s (last error: %v)", ErrAgentLost, c.wsURL, c.o.grace, lastErr))
			return nil
		}
		ctx, cancel := context.WithTimeout(c.ctx, min(remaining, max(c.o.pingTimeout, time.Second)))
		ws, err := c.connect(ctx)
		cancel()
		if err == nil {
			c.mu.Lock()
			if c.err != nil {
				c.mu.Unlock()
				ws.CloseNow()
				return nil
			}
			c.ws = ws
			pending := make([]*call, 0, len(c.calls))
			for _, cl := range c.calls {
				pending = append(pending, cl)
			}
			c.mu.Unlock()
			for _, cl := range pending {
				f := *cl.req
				f.AfterSeq, f.AfterOffset = cl.seq, cl.offset
				_ = c.write(ws, &f)
			}
			c.o.logger.Info("agentwire: reconnected to agent", "url", c.wsURL, "resumed", len(pending))
			return ws
		}
		if c.ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrVersionMismatch) {
			c.finish(fmt.Errorf("%w: %w", ErrAgentLost, err))
			return nil
		}
		lastErr = err
		select {
		case <-time.After(min(delay, max(time.Until(deadline), 0))):
		case <-c.ctx.Done():
			return nil
		}
		delay = min(delay*2, c.o.backoffMax)
	}
}

func (c *Client) write(ws *websocket.Conn, f *Frame) error {
	b, err := encodeFrame(f)
	if err != nil {
		return err
	}
	// The client's lifetime context: a cancelled write context would close
	// the connection, so per-call contexts are never used for writes.
	return ws.Write(c.ctx, websocket.MessageText, b)
}

func (c *Client) readLoop(ws *websocket.Conn) error {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	var lastSeen atomic.Int64
	lastSeen.Store(time.Now().UnixNano())
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		heartbeat(ctx, ws, &lastSeen, c.o.pingInterval, c.o.pingTimeout)
	}()
	defer hb.Wait()
	defer cancel()
	var buf bytes.Buffer // reused: decoded frames never alias it
	for {
		_, r, err := ws.Reader(ctx)
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		lastSeen.Store(time.Now().UnixNano())
		f, err := decodeFrame(buf.Bytes())
		if err != nil {
			c.o.logger.Warn("agentwire: ignoring a frame from the agent", "err", err)
			continue
		}
		c.dispatch(ws, f)
	}
}

func (c *Client) dispatch(ws *websocket.Conn, f *Frame) {
	if f.Type == TypePing {
		_ = c.write(ws, &Frame{Type: TypePong, ReqID: f.ReqID})
		return
	}
	if f.ReqID == "" {
		if f.Type == TypeError {
			c.o.logger.Warn("agentwire: agent reported an error", "code", f.Code, "message", f.Message)
		}
		return
	}
	c.mu.Lock()
	cl := c.calls[f.ReqID]
	c.mu.Unlock()
	if cl == nil {
		return // a call that already finished or was abandoned
	}
	switch f.Type {
	case TypeChunk:
		if f.Seq <= cl.seq {
			return // already delivered (a resume overlapped)
		}
		cl.seq, cl.offset = f.Seq, f.Offset+uint64(len(f.Data))
		if cl.onChunk != nil {
			cl.onChunk(f.Seq, f.Data)
		}
	case TypeGap:
		if f.NextSeq == 0 || f.NextSeq-1 <= cl.seq {
			return
		}
		c.o.logger.Warn("agentwire: output lost before it could be resumed", "req_id", f.ReqID, "lost_bytes", f.LostBytes, "next_seq", f.NextSeq)
		if c.o.onGap != nil {
			c.o.onGap(f.ReqID, f.LostBytes)
		}
		cl.seq, cl.offset = f.NextSeq-1, f.NextOffset
	case TypeResult, TypeFiles, TypePong, TypeError, TypeInterrupted:
		c.mu.Lock()
		if c.calls[f.ReqID] == cl {
			delete(c.calls, f.ReqID)
			cl.res <- f
		}
		c.mu.Unlock()
	}
}

// do registers a call, sends its request if connected, and waits.
func (c *Client) do(ctx context.Context, cl *call) (*Frame, error) {
	id := cl.req.ReqID
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	if _, dup := c.calls[id]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrRequestInFlight, id)
	}
	c.calls[id] = cl
	ws := c.ws
	c.mu.Unlock()
	if ws == nil && !cl.resend {
		c.forget(id, cl)
		return nil, ErrNotConnected
	}
	if ws != nil {
		_ = c.write(ws, cl.req) // on failure the reconnect re-sends it
	}
	select {
	case f := <-cl.res:
		if f.Type == TypeError && f.Code == "agent_restarted" {
			return nil, fmt.Errorf("%w (request %s)", ErrAgentRestarted, id)
		}
		if f.Type == TypeError {
			return nil, &RemoteError{ReqID: id, Code: f.Code, Message: f.Message}
		}
		return f, nil
	case <-ctx.Done():
		c.forget(id, cl)
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.Err()
	}
}

func (c *Client) forget(id string, cl *call) {
	c.mu.Lock()
	if c.calls[id] == cl {
		delete(c.calls, id)
	}
	c.mu.Unlock()
}

// ValidateRequestID reports whether id can name a request: 1 to
// MaxReqIDLen (128) characters from A-Z a-z 0-9 . _ : - (so that it can be
// derived from session and event ids and be logged and put in frames as is).
func ValidateRequestID(id string) error {
	switch {
	case id == "":
		return errors.New("agentwire: empty request id (pass \"\" to Execute for a fresh one)")
	case len(id) > MaxReqIDLen:
		return fmt.Errorf("agentwire: request id %q... is %d bytes; at most %d allowed", id[:32], len(id), MaxReqIDLen)
	case !validReqID(id):
		return fmt.Errorf("agentwire: request id %q may hold only letters, digits and . _ : -", id)
	}
	return nil
}

// Execute runs action on the agent under request id reqID and returns its
// observation. reqID "" means a fresh id (NewRequestID); a caller-chosen id
// (see ValidateRequestID) makes the call idempotent across processes: the
// agent runs an id once, and an exec naming an id it already knows, from any
// connection or Client, attaches to the running request or is answered from
// its retained result, streaming the output from the first chunk it still
// has (a gap frame reports evicted output). So a controller that died
// mid-action re-sends the same id from a new process and gets the one run's
// output. An id the agent does not know is run: if the agent itself may have
// restarted since the id was first sent, running it again may repeat side
// effects: use Resume, or compare AgentInstance with the instance recorded
// when it was sent.
//
// onChunk (may be nil) receives live output in order, each seq exactly
// once, from the client's reader goroutine: it must return quickly. If the
// connection drops, Execute reconnects and resumes where it was; the action
// runs once. When ctx ends first, Execute sends a cancel for the action (the
// agent's executor decides what cancelling means) and returns ctx's error.
// Other errors: ErrAgentLost (grace period exceeded), ErrAgentRestarted (the
// agent came back as a new process: outcome unknown), ErrClosed,
// ErrRequestInFlight (this Client is already waiting on reqID), an invalid
// reqID, or a *RemoteError (e.g. code bad_action, result_expired).
func (c *Client) Execute(ctx context.Context, reqID string, action *eventbus.Event, onChunk func(seq uint64, data []byte)) (*eventbus.Event, error) {
	if action == nil || !action.IsAction() {
		return nil, errors.New("agentwire: Execute needs an action event")
	}
	if reqID == "" {
		reqID = NewRequestID()
	} else if err := ValidateRequestID(reqID); err != nil {
		return nil, err
	}
	raw, err := eventbus.Marshal(action)
	if err != nil {
		return nil, fmt.Errorf("agentwire: encoding the action: %w", err)
	}
	cl := &call{req: &Frame{Type: TypeExec, ReqID: reqID, Action: raw}, resend: true, onChunk: onChunk, res: make(chan *Frame, 1)}
	return c.awaitObservation(ctx, cl)
}

// Resume attaches to request reqID, sent earlier by any client (typically
// one in a controller process that died), and returns its observation,
// streaming its output to onChunk from the first chunk the agent still has
// (evicted output is reported to WithGapHandler). It never runs anything: if
// the agent does not know reqID the error wraps ErrUnknownRequest (the
// request never reached this agent process, or the agent restarted since it
// was sent: outcome unknown); if the result was dropped it wraps
// ErrResultExpired. Other errors and cancellation are as for Execute (a
// cancelled ctx sends a cancel for reqID).
func (c *Client) Resume(ctx context.Context, reqID string, onChunk func(seq uint64, data []byte)) (*eventbus.Event, error) {
	if err := ValidateRequestID(reqID); err != nil {
		return nil, err
	}
	cl := &call{req: &Frame{Type: TypeResume, ReqID: reqID}, resend: true, onChunk: onChunk, res: make(chan *Frame, 1)}
	return c.awaitObservation(ctx, cl)
}

// awaitObservation runs an exec or resume call and decodes its result.
func (c *Client) awaitObservation(ctx context.Context, cl *call) (*eventbus.Event, error) {
	id := cl.req.ReqID
	f, err := c.do(ctx, cl)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ErrRequestInFlight) {
			c.sendCancel(id)
		}
		return nil, err
	}
	obs, err := eventbus.Unmarshal(f.Observation)
	if err != nil {
		return nil, fmt.Errorf("agentwire: the agent's observation for %s is not valid event JSON: %w", id, err)
	}
	return obs, nil
}

func (c *Client) sendCancel(id string) {
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	if ws != nil {
		_ = c.write(ws, &Frame{Type: TypeCancel, ReqID: id})
	}
}

// Interrupt asks the agent to interrupt what runs in the sandbox now,
// past any running Execute (which then returns the interrupted action's
// observation: for a command, exit code 130 and OpenHands' C-c suffix). It
// returns once the agent has sent the interrupt; with nothing running it
// does nothing and returns nil.
//
// It is sent once on the current connection and never re-sent after a
// reconnect: arriving late, it could interrupt the next action instead.
// Errors: ErrNotConnected (reconnecting right now: try again),
// ErrInterruptUnsupported (an older agent), a *RemoteError with code
// interrupt_failed (the agent could not deliver it), ctx's error, or those
// of a lost or closed client.
func (c *Client) Interrupt(ctx context.Context) error {
	c.mu.Lock()
	ok, version := slices.Contains(c.features, FeatureInterrupt), c.agentVersion
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w (agent at %s, version %q)", ErrInterruptUnsupported, c.addr, version)
	}
	cl := &call{req: &Frame{Type: TypeInterrupt, ReqID: NewRequestID()}, res: make(chan *Frame, 1)}
	if _, err := c.do(ctx, cl); err != nil {
		return fmt.Errorf("agentwire: interrupt the agent at %s: %w", c.addr, err)
	}
	return nil
}

// ListFiles lists path on the agent as OpenHands' list_files does (names,
// directories first with a trailing "/"); "" means the working directory.
func (c *Client) ListFiles(ctx context.Context, path string) ([]string, error) {
	var p *string
	if path != "" {
		p = &path
	}
	cl := &call{req: &Frame{Type: TypeListFiles, ReqID: NewRequestID(), Path: p}, resend: true, res: make(chan *Frame, 1)}
	f, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	if f.Files == nil {
		return []string{}, nil
	}
	return f.Files, nil
}

// Alive round-trips a ping on the current connection. It fails at once
// while the client is reconnecting.
func (c *Client) Alive(ctx context.Context) error {
	cl := &call{req: &Frame{Type: TypePing, ReqID: NewRequestID()}, res: make(chan *Frame, 1)}
	_, err := c.do(ctx, cl)
	return err
}

// Upload sends zip (a zip archive when recursive or filename ends in .zip,
// else a plain file saved as dest/filename) to dest on the agent. It is one
// HTTP request: it is not retried across a reconnect.
func (c *Client) Upload(ctx context.Context, dest string, zip io.Reader, filename string, recursive bool) error {
	q := url.Values{"destination": {dest}, "filename": {filename}, "recursive": {strconv.FormatBool(recursive)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+PathUpload+"?"+q.Encode(), zip)
	if err != nil {
		return fmt.Errorf("agentwire: upload to %s: %w", dest, err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.httpDo(req)
	if err != nil {
		return fmt.Errorf("agentwire: upload to %s: %w", dest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agentwire: upload to %s: %w", dest, httpError(resp))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// Download writes a zip of path on the agent to w. A missing path is an
// error that wraps fs.ErrNotExist.
func (c *Client) Download(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+PathDownload+"?"+url.Values{"path": {path}}.Encode(), nil)
	if err != nil {
		return fmt.Errorf("agentwire: download of %s: %w", path, err)
	}
	resp, err := c.httpDo(req)
	if err != nil {
		return fmt.Errorf("agentwire: download of %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("agentwire: download of %s: %w in the sandbox (agent answered HTTP 404)", path, fs.ErrNotExist)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agentwire: download of %s: %w", path, httpError(resp))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("agentwire: download of %s: %w", path, err)
	}
	return nil
}

// RoundTrip makes the client an http.RoundTripper to its agent's HTTP API
// (runtimes.HTTPAgent): req goes over the client's own transport (its
// dialer, TLS or tunnel) with the URL's scheme and host replaced by the
// agent's. Only PathPorts requests get a credential (HeaderAgentToken):
// OpenHands' endpoints check the X-Session-API-Key the caller sends. It fails once the client is closed
// or the agent lost.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := c.ctx.Err(); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		if err := c.Err(); err != nil {
			return nil, err
		}
		return nil, ErrClosed
	}
	scheme, host, _ := strings.Cut(c.baseURL, "://")
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = scheme, host, ""
	if out.URL.Path == PathPorts || strings.HasPrefix(out.URL.Path, PathPorts+"/") {
		out.Header.Set(HeaderAgentToken, c.token) // the agent's preview ports want it; OpenHands' endpoints their own key
	}
	return c.httpc.Transport.RoundTrip(out)
}

func (c *Client) httpDo(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.httpc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		resp.Body.Close()
		return nil, fmt.Errorf("%w (HTTP 401)", ErrUnauthorized)
	}
	return resp, nil
}

func httpError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Code, Error string }
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return fmt.Errorf("agent answered HTTP %d %s: %s", resp.StatusCode, e.Code, e.Error)
	}
	return fmt.Errorf("agent answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
}
