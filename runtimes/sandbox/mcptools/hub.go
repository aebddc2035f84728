package mcptools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"corral/eventbus"
)

// Defaults.
const (
	// DefaultStartTimeout bounds starting, connecting to and listing the
	// tools of one server (OpenHands' MCP client timeout).
	DefaultStartTimeout = 30 * time.Second
	// DefaultStderrBytes is how much of a stdio server's stderr is kept for
	// error messages.
	DefaultStderrBytes = 8 << 10
)

type options struct {
	dir          func() string
	env          []string
	cred         *syscall.Credential
	logger       *slog.Logger
	startTimeout time.Duration
	stderrBytes  int
}

// Option configures a Hub.
type Option func(*options)

// WithDir gives the working directory of stdio servers, asked at each start
// (the sandbox's current directory). Default: the process's.
func WithDir(dir func() string) Option { return func(o *options) { o.dir = dir } }

// WithEnv sets the base environment (KEY=VALUE) of stdio servers; a server's
// own env is added on top. Default: the process's environment.
func WithEnv(env []string) Option {
	return func(o *options) { o.env = append([]string(nil), env...) }
}

// WithCredential runs stdio servers as that user (needs root).
func WithCredential(c *syscall.Credential) Option { return func(o *options) { o.cred = c } }

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithStartTimeout bounds the start of one server. Default 30s.
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.startTimeout = d } }

// WithStderrBytes sets how much of a stdio server's stderr is kept.
func WithStderrBytes(n int) Option { return func(o *options) { o.stderrBytes = n } }

// Hub runs the MCP servers of one sandbox. It is safe for concurrent use;
// calls run concurrently with each other and with Configure.
type Hub struct {
	o options

	// ctx ends at Close, aborting the starts of a running Configure.
	ctx    context.Context
	cancel context.CancelFunc

	cfgMu sync.Mutex // serialises Configure calls

	mu      sync.RWMutex // guards the fields below
	cfg     eventbus.MCPConfig
	servers []*server // running, in OpenHands' order: sse, shttp, stdio
	failed  []*ServerError
	index   map[string]*server
	closed  bool

	agg *aggregate
}

// New returns a hub with no servers.
func New(opts ...Option) *Hub {
	o := options{startTimeout: DefaultStartTimeout, stderrBytes: DefaultStderrBytes}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.dir == nil {
		o.dir = func() string { wd, _ := os.Getwd(); return wd }
	}
	if o.env == nil {
		o.env = os.Environ()
	}
	if o.startTimeout <= 0 {
		o.startTimeout = DefaultStartTimeout
	}
	if o.stderrBytes <= 0 {
		o.stderrBytes = DefaultStderrBytes
	}
	h := &Hub{o: o, index: map[string]*server{}}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.agg = newAggregate(h)
	return h
}

// Config is the configuration last given to Configure.
func (h *Hub) Config() eventbus.MCPConfig {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cfg
}

// Configure replaces the whole configuration: servers that are configured
// exactly as before keep running (unless they had failed), new ones start
// (concurrently, each within the start timeout), removed ones stop. An
// invalid cfg changes nothing and returns the validation error. Servers
// that fail to start do not fail the call: it returns a *PartialError
// naming them (Errors returns them too) and the others are in use.
func (h *Hub) Configure(ctx context.Context, cfg eventbus.MCPConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	h.cfgMu.Lock()
	defer h.cfgMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(h.ctx, cancel)()
	h.mu.RLock()
	closed, old := h.closed, h.servers
	h.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	want := wanted(cfg, &h.o)
	var (
		keep    = map[*server]bool{}
		next    = make([]*server, len(want))
		errs    = make([]error, len(want))
		wg      sync.WaitGroup
		started []int
	)
	for i, w := range want {
		if s := findSame(old, w); s != nil && !keep[s] {
			keep[s], next[i] = true, s
			continue
		}
		next[i] = w
		started = append(started, i)
	}
	for _, i := range started {
		wg.Go(func() {
			if err := next[i].start(ctx); err != nil {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	var running []*server
	var failed []*ServerError
	for i, s := range next {
		if errs[i] != nil {
			s.stop()
			failed = append(failed, &ServerError{Kind: s.kind, Server: s.name, Err: errs[i]})
			h.o.logger.Warn("MCP server failed to start", "kind", s.kind, "server", s.name, "err", errs[i])
			continue
		}
		running = append(running, s)
	}
	h.mu.Lock()
	if h.closed { // Close ran meanwhile and stopped the old servers
		h.mu.Unlock()
		for _, s := range running {
			s.stop()
		}
		return ErrClosed
	}
	h.cfg, h.servers, h.failed = cfg, running, failed
	h.index = buildIndex(running)
	h.mu.Unlock()
	for _, s := range old {
		if !keep[s] {
			s.stop()
		}
	}
	h.agg.sync(running)
	if len(failed) > 0 {
		return &PartialError{Failed: failed}
	}
	return nil
}

// wanted lists cfg's servers in OpenHands' order (create_mcp_clients:
// sse, shttp, then stdio), not started.
func wanted(cfg eventbus.MCPConfig, o *options) []*server {
	var out []*server
	for _, s := range cfg.SSEServers {
		out = append(out, newRemoteServer(KindSSE, s, o))
	}
	for _, s := range cfg.SHTTPServers {
		out = append(out, newRemoteServer(KindSHTTP, s, o))
	}
	for _, s := range cfg.StdioServers {
		out = append(out, newStdioServer(s, o))
	}
	return out
}

func findSame(list []*server, w *server) *server {
	for _, s := range list {
		if s.same(w) {
			return s
		}
	}
	return nil
}

// buildIndex maps each tool name to the first server offering it, as
// OpenHands' call_tool_mcp picks the first matching client.
func buildIndex(servers []*server) map[string]*server {
	idx := map[string]*server{}
	for _, s := range servers {
		for _, t := range s.toolList() {
			if _, dup := idx[t.Name]; !dup {
				idx[t.Name] = s
			}
		}
	}
	return idx
}

// Errors returns the servers that failed to start at the last Configure.
func (h *Hub) Errors() []*ServerError {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return append([]*ServerError(nil), h.failed...)
}

// Tools returns the tools of the running servers (the first server offering
// a name wins), sorted by name.
func (h *Hub) Tools() []mcp.Tool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []mcp.Tool
	for _, s := range h.servers {
		for _, t := range s.toolList() {
			if h.index[t.Name] == s {
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Call calls tool name with args (a JSON object, or empty for none) on the
// server offering it, within limit (0: no limit but ctx's; an shttp
// server's own timeout applies when smaller). Errors: ErrNoServers,
// *UnknownToolError, *ServerError (the server died or could not be
// restarted), *TimeoutError, *RPCError, *InvalidResultError, or ctx's error.
// A server that died is restarted by the next call of one of its tools.
func (h *Hub) Call(ctx context.Context, name string, args json.RawMessage, limit time.Duration) (*mcp.CallToolResult, error) {
	s, err := h.lookup(name)
	if err != nil {
		return nil, err
	}
	var arguments map[string]any
	if len(args) > 0 && string(args) != "null" {
		if err := json.Unmarshal(args, &arguments); err != nil {
			return nil, fmt.Errorf("the arguments of MCP tool %q must be a JSON object: %w", name, err)
		}
	}
	return callOn(ctx, s, name, arguments, limit)
}

// callOn calls tool name on server s (see Call).
func callOn(ctx context.Context, s *server, name string, arguments map[string]any, limit time.Duration) (*mcp.CallToolResult, error) {
	if st := s.callTimeout(); st > 0 && (limit <= 0 || st < limit) {
		limit = st
	}
	callCtx, cancel := ctx, context.CancelFunc(func() {})
	if limit > 0 {
		callCtx, cancel = context.WithTimeout(ctx, limit)
	}
	defer cancel()
	c, err := s.client(callCtx)
	if err != nil {
		return nil, err
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = arguments
	res, err := c.CallTool(callCtx, req)
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case callCtx.Err() != nil:
		return nil, &TimeoutError{Tool: name, After: limit}
	}
	var terr *transport.Error
	switch {
	case errors.As(err, &terr):
		return nil, &ServerError{Kind: s.kind, Server: s.name, Err: s.died(c, fmt.Errorf("the connection broke while tool %q ran: %w", name, err))}
	case isRPCError(err):
		return nil, &RPCError{Tool: name, Err: err}
	}
	return nil, &InvalidResultError{Tool: name, Server: s.name, Err: err}
}

func (h *Hub) lookup(name string) (*server, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, ErrClosed
	}
	if s, ok := h.index[name]; ok {
		return s, nil
	}
	if len(h.servers) == 0 && len(h.failed) == 0 {
		return nil, ErrNoServers
	}
	known := make([]string, 0, len(h.index))
	for n := range h.index {
		known = append(known, n)
	}
	sort.Strings(known)
	return nil, &UnknownToolError{Tool: name, Known: known, Failed: append([]*ServerError(nil), h.failed...)}
}

func (h *Hub) isClosed() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closed
}

// Close stops every server and ends the aggregated server's sessions. It
// does not wait for a running Configure: that one's starts are aborted and
// it stops what it started. Idempotent.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	// closed is set before the starts are cancelled: a Configure whose
	// starts fail from the cancel then finds it set and answers ErrClosed,
	// not the start failures.
	h.closed = true
	servers := h.servers
	h.servers, h.index = nil, map[string]*server{}
	h.mu.Unlock()
	h.cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(s.stop)
	}
	wg.Wait()
	h.agg.close()
	return nil
}

// isRPCError reports whether err is a JSON-RPC error response (which
// mcp-go's client turns into its sentinel errors, or into a plain error
// with the message for other codes) rather than a result mcp-go could not
// parse (ParseCallToolResult's errors).
func isRPCError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"failed to unmarshal response", "content is missing", "response is nil"} {
		if strings.HasPrefix(msg, p) {
			return false
		}
	}
	return true
}
