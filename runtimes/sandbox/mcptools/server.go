package mcptools

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"corral/eventbus"
)

// Server kinds.
const (
	KindStdio = "stdio"
	KindSSE   = "sse"
	KindSHTTP = "shttp"
)

// shttpDefaultTimeout is OpenHands' default tool-call timeout of an shttp
// server (MCPSHTTPServerConfig.timeout).
const shttpDefaultTimeout = 60 * time.Second

// server is one configured MCP server and its connection. A stdio server's
// process exits only through stop (or by itself: then the next call of one
// of its tools starts it again).
type server struct {
	kind   string
	name   string // stdio name or remote URL
	stdio  eventbus.MCPStdioServer
	remote eventbus.MCPRemoteServer
	o      *options

	// restartMu makes concurrent calls that find the server down start it
	// once, not once each.
	restartMu sync.Mutex

	mu     sync.Mutex // guards the fields below
	c      *client.Client
	cmd    *exec.Cmd
	stderr *tail
	tools  []mcp.Tool
	down   error // why c is nil after a crash; the next call restarts
	// removed is set by stop: a call still holding the server must not
	// start it again (the process would outlive the configuration).
	removed bool
}

func newStdioServer(s eventbus.MCPStdioServer, o *options) *server {
	return &server{kind: KindStdio, name: s.Name, stdio: s, o: o}
}

func newRemoteServer(kind string, s eventbus.MCPRemoteServer, o *options) *server {
	return &server{kind: kind, name: s.URL, remote: s, o: o}
}

// same reports whether t is the same configured server as s (then s keeps
// running across a Configure).
func (s *server) same(t *server) bool {
	return s.kind == t.kind && s.name == t.name && reflect.DeepEqual(s.stdio, t.stdio) && s.remote == t.remote
}

// callTimeout is the server's own limit on a call (shttp only), or 0.
func (s *server) callTimeout() time.Duration {
	if s.kind != KindSHTTP {
		return 0
	}
	if s.remote.Timeout > 0 {
		return time.Duration(s.remote.Timeout) * time.Second
	}
	return shttpDefaultTimeout
}

// start connects (starting the process of a stdio server), initializes the
// session and lists the tools, all within the start timeout.
func (s *server) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.o.startTimeout)
	defer cancel()
	var (
		c   *client.Client
		err error
	)
	if s.kind == KindStdio {
		c, err = s.spawn()
	} else {
		c, err = s.dial(ctx)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.c, s.down = c, nil
	if s.removed {
		s.stopLocked()
		s.mu.Unlock()
		return errRemoved
	}
	s.mu.Unlock()
	tools, err := s.handshake(ctx, c)
	if err != nil {
		if s.kind == KindStdio {
			return s.died(c, fmt.Errorf("did not answer the MCP handshake: %w", err))
		}
		s.closeClient(c)
		return err
	}
	s.mu.Lock()
	s.tools = tools
	s.mu.Unlock()
	return nil
}

func (s *server) handshake(ctx context.Context, c *client.Client) ([]mcp.Tool, error) {
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "corral-agent", Version: "1"}
	if _, err := c.Initialize(ctx, req); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no answer to initialize within %s", s.o.startTimeout)
		}
		return nil, fmt.Errorf("initialize: %w", err)
	}
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tools: %w", err)
	}
	return res.Tools, nil
}

// spawn starts a stdio server's process in its own process group, as the
// sandbox's user, in the sandbox's directory and environment.
func (s *server) spawn() (*client.Client, error) {
	path, err := exec.LookPath(s.stdio.Command)
	if err != nil {
		return nil, fmt.Errorf("command %q not found: install it in the sandbox or fix mcp_config (%w)", s.stdio.Command, err)
	}
	t := newTail(s.o.stderrBytes)
	var cmd *exec.Cmd
	build := func(_ context.Context, command string, env, args []string) (*exec.Cmd, error) {
		cmd = exec.Command(command, args...)
		cmd.Env = append(append([]string(nil), s.o.env...), env...)
		cmd.Dir = s.o.dir()
		cmd.Stderr = t
		cmd.WaitDelay = time.Second
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: s.o.cred}
		return cmd, nil
	}
	env := make([]string, 0, len(s.stdio.Env))
	for k, v := range s.stdio.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	tr := transport.NewStdioWithOptions(path, env, s.stdio.Args, transport.WithCommandFunc(build), transport.WithCommandLogger(s.o.logger))
	// The transport keeps this context for the process's whole life.
	if err := tr.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	s.mu.Lock()
	s.cmd, s.stderr = cmd, t
	s.mu.Unlock()
	return client.NewClient(tr, client.WithLegacyProtocolOnly()), nil
}

// dial connects to an SSE or streamable-HTTP server with OpenHands'
// headers (the api_key as bearer token, "s" and X-Session-API-Key).
func (s *server) dial(ctx context.Context) (*client.Client, error) {
	headers := map[string]string{}
	if k := s.remote.APIKey; k != "" {
		headers["Authorization"] = "Bearer " + k
		headers["s"] = k
		headers["X-Session-API-Key"] = k
	}
	var (
		tr  transport.Interface
		err error
	)
	if s.kind == KindSSE {
		tr, err = transport.NewSSE(s.remote.URL, transport.WithHeaders(headers))
	} else {
		tr, err = transport.NewStreamableHTTP(s.remote.URL, transport.WithHTTPHeaders(headers))
	}
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	c := client.NewClient(tr, client.WithLegacyProtocolOnly())
	// An SSE stream lives as long as the context given to Start, so Start
	// gets one without deadline and is bounded by closing the client.
	errc := make(chan error, 1)
	go func() { errc <- c.Start(context.Background()) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		_ = c.Close()
		<-errc
		err = fmt.Errorf("no connection within %s", s.o.startTimeout)
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

// client returns the live connection, restarting a server that died.
func (s *server) client(ctx context.Context) (*client.Client, error) {
	s.restartMu.Lock()
	defer s.restartMu.Unlock()
	s.mu.Lock()
	c, down := s.c, s.down
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if err := s.start(ctx); err != nil {
		if down != nil {
			return nil, &ServerError{Kind: s.kind, Server: s.name, Err: fmt.Errorf("%v; restarting it failed: %w", down, err)}
		}
		return nil, &ServerError{Kind: s.kind, Server: s.name, Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil { // stopped or died again since the restart
		err := s.down
		if err == nil {
			err = errRemoved
		}
		return nil, &ServerError{Kind: s.kind, Server: s.name, Err: err}
	}
	return s.c, nil
}

// died records that c's server is gone (its process exited or its
// connection broke), reaps it, and returns an error naming the exit status
// and the end of its stderr. The next call starts the server again.
func (s *server) died(c *client.Client, cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != c {
		if s.down != nil {
			return s.down
		}
		return cause
	}
	cmd, t := s.cmd, s.stderr
	s.stopLocked()
	var b strings.Builder
	b.WriteString(cause.Error())
	if cmd != nil && cmd.ProcessState != nil {
		fmt.Fprintf(&b, "; the process ended (%s)", cmd.ProcessState)
	}
	if t != nil {
		if tail := t.String(); tail != "" {
			fmt.Fprintf(&b, "; its stderr ends with:\n%s", tail)
		}
	}
	s.down = errors.New(b.String())
	return s.down
}

// errRemoved is a restart of a server that a new configuration removed.
var errRemoved = errors.New("the server was removed or replaced by a new MCP configuration")

// stop ends the connection and kills a stdio server's process group, for
// good: the server is never started again.
func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = true
	s.stopLocked()
}

func (s *server) stopLocked() {
	c, cmd := s.c, s.cmd
	s.c, s.cmd = nil, nil
	// Kill the whole group while its leader is not reaped yet, so that the
	// group id cannot have been reused; Close then reaps the leader.
	if cmd != nil && cmd.Process != nil && cmd.ProcessState == nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if c != nil {
		_ = c.Close()
	}
}

func (s *server) closeClient(c *client.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == c {
		s.stopLocked()
		return
	}
	_ = c.Close()
}

func (s *server) toolList() []mcp.Tool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tools
}

// tail keeps the last n bytes written to it (a stdio server's stderr).
type tail struct {
	mu  sync.Mutex
	n   int
	buf []byte
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.n; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(strings.ToValidUTF8(string(t.buf), "\uFFFD"))
}
