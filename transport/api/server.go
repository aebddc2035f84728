package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"corral/metrics"
)

// Server is the HTTP handler of Corral's API and web UI. Create it with New,
// serve Server (it is an http.Handler) with an http.Server, and call Close
// after http.Server.Shutdown to end the WebSocket connections (which
// Shutdown does not track).
type Server struct {
	eng     Engine
	cfg     Config
	metrics *metrics.Registry
	logger  *slog.Logger
	cluster *clusterRouting // nil: a single node (WithRouter)

	mux    *http.ServeMux
	routes map[string]routeInfo // by mux pattern
	tokens [][32]byte           // sha256 of each auth token

	baseCtx context.Context // ends WebSocket handlers on Close
	cancel  context.CancelFunc
	wsMu    sync.Mutex // orders wsWG.Add against Close's Wait
	closed  bool
	wsWG    sync.WaitGroup
}

type routeInfo struct {
	public bool // no auth (probes, UI assets, OpenAPI)
	ws     bool // WebSocket: not timed, accepts ?access_token=
}

// Option configures New.
type Option func(*Server)

// WithMetrics makes the server expose and record into reg (default: a
// fresh metrics.New()).
func WithMetrics(reg *metrics.Registry) Option {
	return func(s *Server) {
		if reg != nil {
			s.metrics = reg
		}
	}
}

// WithLogger sets the logger for request failures (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.logger = l
		}
	}
}

// New validates cfg and returns the server for eng.
func New(eng Engine, cfg Config, opts ...Option) (*Server, error) {
	if eng == nil {
		return nil, fmt.Errorf("api: New needs an Engine (got nil)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{eng: eng, cfg: cfg, logger: slog.Default(), mux: http.NewServeMux(), routes: map[string]routeInfo{}}
	for _, o := range opts {
		o(s)
	}
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	for _, t := range cfg.AuthTokens {
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.register()
	return s, nil
}

// Metrics returns the registry the server records into and exposes.
func (s *Server) Metrics() *metrics.Registry { return s.metrics }

// Close ends every WebSocket connection (with "going away") and waits for
// their handlers to return.
func (s *Server) Close() {
	s.wsMu.Lock()
	s.closed = true
	s.wsMu.Unlock()
	s.cancel()
	s.wsWG.Wait()
	s.closeCluster()
}

// trackWS registers a WebSocket handler for Close to wait for; false once
// the server is closing.
func (s *Server) trackWS() bool {
	s.wsMu.Lock()
	defer s.wsMu.Unlock()
	if s.closed {
		return false
	}
	s.wsWG.Add(1)
	return true
}

// Routes returns every registered mux pattern, sorted.
func (s *Server) Routes() []string {
	out := make([]string, 0, len(s.routes))
	for p := range s.routes {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (s *Server) handle(pattern string, info routeInfo, h http.HandlerFunc) {
	s.routes[pattern] = info
	if strings.Contains(pattern, "{id}") {
		h = s.routed(h) // session-scoped: served by the session's owner
	}
	s.mux.Handle(pattern, h)
}

func (s *Server) register() {
	pub := routeInfo{public: true}
	api := routeInfo{}
	s.handle("GET /healthz", pub, s.healthz)
	s.handle("GET /readyz", pub, s.readyz)
	s.handle("GET /metrics", api, s.metrics.Handler().ServeHTTP)
	s.handle("GET /api/openapi.json", pub, s.openAPI)
	s.handle("GET /api/metrics/summary", api, s.metricsSummary)
	s.handle("GET /api/cluster", api, s.clusterInfo)
	s.handle("POST /api/cluster/nodes/{node}/drain", api, s.drainNode)

	s.handle("POST /api/sessions", api, s.createSession)
	s.handle("GET /api/sessions", api, s.listSessions)
	s.handle("GET /api/sessions/{id}", api, s.getSession)
	s.handle("DELETE /api/sessions/{id}", api, s.deleteSession)
	s.handle("POST /api/sessions/{id}/start", api, s.startSession)
	s.handle("POST /api/sessions/{id}/pause", api, s.pauseSession)
	s.handle("POST /api/sessions/{id}/resume", api, s.resumeSession)
	s.handle("POST /api/sessions/{id}/interrupt", api, s.interruptSession)
	s.handle("POST /api/sessions/{id}/fork", api, s.forkSession)
	s.handle("GET /api/sessions/{id}/logs", api, s.sessionLogs)

	s.handle("POST /api/sessions/{id}/actions", api, s.postAction)
	s.handle("POST /api/sessions/{id}/actions/{eid}/confirm", api, s.confirmAction)
	s.handle("POST /api/sessions/{id}/actions/{eid}/reject", api, s.rejectAction)

	s.handle("GET /api/sessions/{id}/events", api, s.listEvents)
	s.handle("GET /api/sessions/{id}/events/ws", routeInfo{ws: true}, s.eventsWS)

	s.handle("GET /api/sessions/{id}/files", api, s.listFiles)
	s.handle("POST /api/sessions/{id}/files", api, s.uploadFiles)
	s.handle("GET /api/sessions/{id}/files/download", api, s.downloadFiles)

	s.handle("GET /api/sessions/{id}/ports", api, s.listPorts)
	// The preview proxy takes ?access_token= like WebSockets do (a browser
	// following a link sends no header) and is not timed (it may be one).
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		s.handle(m+" /api/sessions/{id}/ports/{port}/{path...}", routeInfo{ws: true}, s.proxyPort)
	}

	s.handle("GET /{$}", pub, s.uiIndex)
	s.handle("GET /ui/app.js", pub, s.uiAsset("app.js", "text/javascript; charset=utf-8"))
	s.handle("GET /ui/style.css", pub, s.uiAsset("style.css", "text/css; charset=utf-8"))
	s.handle("GET /ui/term.js", pub, s.uiAsset("term.js", "text/javascript; charset=utf-8"))
	s.handle("GET /ui/favicon.svg", pub, s.uiAsset("favicon.svg", "image/svg+xml"))
	s.handle("GET /favicon.ico", pub, s.uiAsset("favicon.svg", "image/svg+xml"))
}

// statusWriter remembers the status code for metrics. It forwards Flush and
// Unwrap so streaming and WebSocket hijacking still work.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ServeHTTP applies CORS, finds the route, checks auth and records metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	route := "unmatched"
	timed := true
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.logger.Error("api: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if sw.code == 0 {
				writeError(sw, http.StatusInternalServerError, "internal", "the server failed while handling this request; it has been logged, please report it")
			}
		}
		if timed {
			s.metrics.ObserveHTTP(route, max(sw.code, 200), time.Since(start))
		}
	}()
	if s.cors(sw, r) {
		route = "CORS preflight"
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.noRoute(sw, r, h)
		return
	}
	route = pattern
	info := s.routes[pattern]
	timed = !info.ws
	if !info.public && !s.authorized(r, info.ws) {
		sw.Header().Set("WWW-Authenticate", `Bearer realm="corral"`)
		writeError(sw, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token: send \"Authorization: Bearer <token>\" with one of the server's auth_tokens")
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// noRoute turns the mux's plain-text 404 and 405 into JSON errors.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &captureWriter{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.code == http.StatusMethodNotAllowed {
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s; allowed: %s (see /api/openapi.json)", r.Method, r.URL.Path, allow))
		return
	}
	writeError(w, http.StatusNotFound, "not_found",
		fmt.Sprintf("no route %s %s; the API is described at /api/openapi.json", r.Method, r.URL.Path))
}

type captureWriter struct {
	header http.Header
	code   int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return len(b), nil
}
func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}

func (s *Server) authorized(r *http.Request, ws bool) bool {
	if len(s.tokens) == 0 {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok && ws {
		tok = r.URL.Query().Get("access_token")
	}
	if tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	match := 0
	for _, t := range s.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return match == 1
}

// originAllowed reports whether a browser at origin may call the API:
// same-origin requests always may, others only if configured.
func (s *Server) originAllowed(r *http.Request, origin string) bool {
	if u, err := url.Parse(origin); err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// cors sets CORS headers for allowed cross-origin requests and answers
// preflights. It returns true when it answered the request.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if !s.originAllowed(r, origin) {
		if preflight {
			writeError(w, http.StatusForbidden, "origin_not_allowed",
				fmt.Sprintf("origin %q may not call this API; add it to [server] allowed_origins", origin))
			return true
		}
		// A simple cross-origin request still runs (the browser hides the
		// answer); refusing state-changing ones here stops CSRF.
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusForbidden, "origin_not_allowed",
				fmt.Sprintf("origin %q may not call this API; add it to [server] allowed_origins", origin))
			return true
		}
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if preflight {
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}
