package agentwire

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"corral/eventbus"
)

// Executor is what the server needs from the sandbox executor
// (runtimes/sandbox.Executor satisfies it). Execute must always return an
// observation; onOutput receives live output while the action runs and may
// be called from any goroutine, one call at a time.
//
// onOutput may be nil (OpenHands' /execute_action does not stream).
type Executor interface {
	Execute(ctx context.Context, action *eventbus.Event, onOutput func([]byte)) *eventbus.Event
	ListFiles(path string) []string
	UploadZip(dest string, r io.Reader, filename string, recursive bool) error
	DownloadZip(w io.Writer, path string) error
}

// Interrupter is implemented by executors that can interrupt what runs in
// the sandbox out of band (runtimes/sandbox.Executor): Interrupt must not
// wait for the running action, and reports whether anything was running.
// A server whose executor has it announces FeatureInterrupt and answers
// interrupt frames; other servers refuse them as unknown.
type Interrupter interface {
	Interrupt() (running bool, err error)
}

// Paths the server handles.
const (
	PathWire     = "/agentwire"
	PathUpload   = "/agentwire/upload"
	PathDownload = "/agentwire/download"
)

type serverOptions struct {
	version         string
	sessionKeys     []string
	chunkBuffer     int
	keepResults     int
	resultTTL       time.Duration
	completedBytes  int
	pingInterval    time.Duration
	pingTimeout     time.Duration
	maxFrame        int64
	maxActionBody   int64
	maxUploadBody   int64
	logger          *slog.Logger
	openHands       bool
	expiredCapacity int
	logRing         *LogRing // PathLogs (logs.go)
}

// ServerOption configures NewServer.
type ServerOption func(*serverOptions)

// WithAgentVersion sets the version string the server announces in hello
// (default "dev").
func WithAgentVersion(v string) ServerOption { return func(o *serverOptions) { o.version = v } }

// WithSessionAPIKey adds a key accepted in X-Session-API-Key on the OpenHands
// endpoints besides the token (OpenHands' SESSION_API_KEY). Empty is ignored.
func WithSessionAPIKey(k string) ServerOption {
	return func(o *serverOptions) {
		if k != "" {
			o.sessionKeys = append(o.sessionKeys, k)
		}
	}
}

// WithChunkBuffer bounds the output each request keeps for resuming clients
// (default 4 MiB); older chunks are evicted and reported as a gap.
func WithChunkBuffer(bytes int) ServerOption { return func(o *serverOptions) { o.chunkBuffer = bytes } }

// Default retention of completed requests (see WithResultRetention): long
// enough for a controller that died mid-action to restart, dial again and
// re-send the request id.
const (
	DefaultResultTTL       = 30 * time.Minute
	DefaultKeepResults     = 1024
	DefaultCompletedOutput = 64 << 20
)

// WithResultRetention keeps completed requests (result and buffered chunks)
// for ttl after they completed or until n newer ones completed, whichever
// comes first (default DefaultResultTTL, DefaultKeepResults). Running
// requests are never dropped.
func WithResultRetention(ttl time.Duration, n int) ServerOption {
	return func(o *serverOptions) { o.resultTTL, o.keepResults = ttl, n }
}

// WithHeartbeat sets how often the server pings each connection and after
// how long without any frame it drops it (default 1s, 3s).
func WithHeartbeat(interval, timeout time.Duration) ServerOption {
	return func(o *serverOptions) { o.pingInterval, o.pingTimeout = interval, timeout }
}

// WithBodyLimits bounds a WebSocket frame and an /execute_action body
// (default 64 MiB each) and an upload (default 2 GiB).
func WithBodyLimits(frame, action, upload int64) ServerOption {
	return func(o *serverOptions) { o.maxFrame, o.maxActionBody, o.maxUploadBody = frame, action, upload }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) ServerOption { return func(o *serverOptions) { o.logger = l } }

// WithoutOpenHandsAPI leaves OpenHands' action-execution endpoints out of
// Handler (they are served by default).
func WithoutOpenHandsAPI() ServerOption { return func(o *serverOptions) { o.openHands = false } }

// Server answers agentwire connections and OpenHands' HTTP API for one
// executor. Create it with NewServer, mount Handler, and Close it.
type Server struct {
	exec  Executor
	token []byte
	o     serverOptions

	// portTransport dials the sandbox's own ports for PathPorts: direct
	// (no HTTP_PROXY of the sandbox's environment), idle conns closed by Close.
	portTransport *http.Transport

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // request executions, connections, janitor

	mu        sync.Mutex
	closed    bool
	reqs      map[string]*request
	completed []*request // completion order, oldest first
	expired   map[string]struct{}
	expiredQ  []string
	conns     map[*serverConn]struct{}

	started  time.Time
	instance string       // random per Server, sent in hello
	lastExec atomic.Int64 // unix nanos of the last execute start or end
}

// NewServer returns a server that runs actions on exec and accepts token
// (required, non-empty) on every connection.
func NewServer(exec Executor, token string, opts ...ServerOption) (*Server, error) {
	if exec == nil {
		return nil, errors.New("agentwire: NewServer needs an executor")
	}
	if token == "" {
		return nil, errors.New("agentwire: NewServer needs a non-empty token (pass --token, CORRAL_AGENT_TOKEN or --token-file)")
	}
	o := serverOptions{
		version:         "dev",
		chunkBuffer:     4 << 20,
		keepResults:     DefaultKeepResults,
		resultTTL:       DefaultResultTTL,
		completedBytes:  DefaultCompletedOutput,
		pingInterval:    time.Second,
		pingTimeout:     3 * time.Second,
		maxFrame:        64 << 20,
		maxActionBody:   64 << 20,
		maxUploadBody:   2 << 30,
		openHands:       true,
		expiredCapacity: 4096,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.resultTTL <= 0 || o.keepResults <= 0 {
		return nil, fmt.Errorf("agentwire: result retention must be positive (got %s, %d results): a request id re-sent after its result was dropped can only be refused", o.resultTTL, o.keepResults)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		exec: exec, token: []byte(token), o: o, ctx: ctx, cancel: cancel,
		reqs: map[string]*request{}, expired: map[string]struct{}{},
		conns: map[*serverConn]struct{}{}, started: time.Now(), instance: NewRequestID(),
		portTransport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second},
	}
	s.lastExec.Store(time.Now().UnixNano())
	s.wg.Add(1)
	go s.janitor()
	return s, nil
}

// Close cancels running actions, drops every connection and waits for the
// server's goroutines. The executor is not closed: its owner does that.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	for _, c := range conns {
		c.ws.CloseNow()
	}
	s.portTransport.CloseIdleConnections()
	s.wg.Wait()
	return nil
}

// Handler routes agentwire (PathWire, PathUpload, PathDownload) and, unless
// WithoutOpenHandsAPI, OpenHands' endpoints (/alive, /server_info,
// /execute_action, /list_files, /upload_file, /download_files).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathWire, s.serveWire)
	mux.HandleFunc("POST "+PathUpload, s.serveUpload)
	mux.HandleFunc("GET "+PathDownload, s.serveDownload)
	s.mountPorts(mux)
	s.mountMCP(mux)
	mux.HandleFunc("GET "+PathLogs, s.serveLogs)
	if s.o.openHands {
		s.mountOpenHands(mux)
	}
	return mux
}

// bearerOK checks "Authorization: Bearer <token>" in constant time.
func (s *Server) bearerOK(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(tok), s.token) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"detail":"Internal server error: response encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="corral-agent"`)
	writeJSON(w, http.StatusUnauthorized, map[string]string{
		"code":  "unauthorized",
		"error": "agentwire: missing or wrong token; send \"Authorization: Bearer <token>\" with the sandbox's agent token",
	})
}

// ---- requests ----

type chunk struct {
	seq, offset uint64
	data        []byte
}

// request is one exec, running or completed. Its output is kept in a bounded
// buffer so that clients can resume; changed is closed (and replaced) on
// every new chunk and on completion.
type request struct {
	id     string
	cancel context.CancelFunc

	mu       sync.Mutex
	chunks   []chunk
	retained int
	lastSeq  uint64
	total    uint64
	done     bool
	result   []byte
	doneAt   time.Time
	changed  chan struct{}
}

func (r *request) append(data []byte, limit int) {
	if len(data) == 0 {
		return
	}
	b := make([]byte, len(data)) // the executor may reuse its buffer
	copy(b, data)
	r.mu.Lock()
	r.lastSeq++
	r.chunks = append(r.chunks, chunk{seq: r.lastSeq, offset: r.total, data: b})
	r.total += uint64(len(b))
	r.retained += len(b)
	r.evictLocked(limit)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// evictLocked drops the oldest chunks until at most limit bytes remain
// (limit < 0 drops all).
func (r *request) evictLocked(limit int) {
	// Re-slice without clearing: subscribers read their snapshot of the
	// backing array without the lock. Evicted data stays reachable only
	// until append outgrows the array (at most about the live size again).
	for len(r.chunks) > 0 && r.retained > limit {
		r.retained -= len(r.chunks[0].data)
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		r.chunks = nil
	}
}

func (r *request) finish(obs []byte) {
	r.mu.Lock()
	r.done, r.result, r.doneAt = true, obs, time.Now()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// snapshot is what a subscriber sends next.
type snapshot struct {
	gap     *Frame
	chunks  []chunk
	result  *Frame
	changed <-chan struct{}
}

// next returns the frames after (seq, offset).
func (r *request) next(seq, offset uint64) snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sn snapshot
	sn.changed = r.changed
	firstKept := r.lastSeq + 1
	firstOff := r.total
	if len(r.chunks) > 0 {
		firstKept, firstOff = r.chunks[0].seq, r.chunks[0].offset
	}
	if seq+1 < firstKept {
		lost := uint64(0)
		if firstOff > offset {
			lost = firstOff - offset
		}
		sn.gap = &Frame{Type: TypeGap, ReqID: r.id, AfterSeq: seq, NextSeq: firstKept, NextOffset: firstOff, LostBytes: lost}
		seq = firstKept - 1
	}
	if seq < r.lastSeq && len(r.chunks) > 0 {
		i := int(seq + 1 - r.chunks[0].seq)
		sn.chunks = r.chunks[i:len(r.chunks):len(r.chunks)]
	}
	if r.done {
		sn.result = &Frame{Type: TypeResult, ReqID: r.id, Observation: r.result, LastSeq: r.lastSeq}
	}
	return sn
}

// errShuttingDown is returned by start when the server is closing.
var errShuttingDown = errors.New("agentwire: agent is shutting down")

// errExpired is returned by lookup for requests whose result was dropped.
var errExpired = errors.New("agentwire: request completed earlier and its result is no longer kept")

// start returns the request with id, starting it when it is new. A known id
// is never started again.
func (s *Server) start(id string, ev *eventbus.Event) (*request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.reqs[id]; ok {
		return r, nil
	}
	if _, ok := s.expired[id]; ok {
		return nil, errExpired
	}
	if s.closed {
		return nil, errShuttingDown
	}
	ctx, cancel := context.WithCancel(s.ctx)
	r := &request{id: id, cancel: cancel, changed: make(chan struct{})}
	s.reqs[id] = r
	s.wg.Add(1)
	go s.run(ctx, r, ev)
	return r, nil
}

func (s *Server) lookup(id string) (*request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.reqs[id]; ok {
		return r, nil
	}
	if _, ok := s.expired[id]; ok {
		return nil, errExpired
	}
	return nil, fmt.Errorf("agentwire: no request %q on this agent (instance %s, running since %s): it never reached this agent process, or the agent restarted after it was sent and its outcome is unknown",
		id, s.instance, s.started.UTC().Format(time.RFC3339))
}

func (s *Server) run(ctx context.Context, r *request, ev *eventbus.Event) {
	defer s.wg.Done()
	defer r.cancel()
	obs := s.execute(ctx, ev, func(b []byte) { r.append(b, s.o.chunkBuffer) })
	data, err := eventbus.Marshal(obs)
	if err != nil {
		data = s.errorObservation(ev, fmt.Sprintf("agent could not encode the observation: %v", err))
	}
	s.completedRequest(r, data)
}

// execute runs ev on the executor and records activity for /server_info.
func (s *Server) execute(ctx context.Context, ev *eventbus.Event, onOutput func([]byte)) *eventbus.Event {
	s.lastExec.Store(time.Now().UnixNano())
	defer s.lastExec.Store(time.Now().UnixNano())
	obs := s.exec.Execute(ctx, ev, onOutput)
	if obs == nil { // the contract says never; do not lose the action if it happens
		cause := ev.ID
		obs = eventbus.NewError(cause, "", "The sandbox executor returned no observation for this action.")
	}
	return obs
}

func (s *Server) errorObservation(ev *eventbus.Event, msg string) []byte {
	e := eventbus.NewError(ev.ID, "", msg)
	b, err := eventbus.Marshal(e)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"observation": "error", "content": msg, "extras": map[string]any{"error_id": ""}, "message": msg})
	}
	return b
}

// completedRequest publishes r's result and applies retention under s.mu,
// so a client that reacts to the result already sees the trimmed table.
func (s *Server) completedRequest(r *request, obs []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.finish(obs)
	s.completed = append(s.completed, r)
	s.trimLocked(time.Now())
}

// trimLocked applies the retention rules: at most keepResults completed
// requests, none older than resultTTL, and at most completedBytes of chunks
// kept across them (oldest chunk buffers are dropped first; their results
// stay).
func (s *Server) trimLocked(now time.Time) {
	for len(s.completed) > 0 {
		r := s.completed[0]
		r.mu.Lock()
		old := now.Sub(r.doneAt) > s.o.resultTTL
		r.mu.Unlock()
		if !old && len(s.completed) <= s.o.keepResults {
			break
		}
		s.completed[0] = nil
		s.completed = s.completed[1:]
		delete(s.reqs, r.id)
		s.expired[r.id] = struct{}{}
		s.expiredQ = append(s.expiredQ, r.id)
		if len(s.expiredQ) > s.o.expiredCapacity {
			delete(s.expired, s.expiredQ[0])
			s.expiredQ = s.expiredQ[1:]
		}
	}
	total := 0
	for _, r := range s.completed {
		r.mu.Lock()
		total += r.retained
		r.mu.Unlock()
	}
	for _, r := range s.completed {
		if total <= s.o.completedBytes {
			break
		}
		r.mu.Lock()
		total -= r.retained
		r.evictLocked(-1)
		r.mu.Unlock()
	}
}

func (s *Server) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(max(s.o.resultTTL/10, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			s.trimLocked(now)
			s.mu.Unlock()
		}
	}
}
