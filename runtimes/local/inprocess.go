package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/sandbox"
	"corral/runtimes/sandbox/mcptools"
	"corral/transport/agentwire"
)

// InProcess runs the sandbox executor inside this process: no agent, no
// socket, no token. Handles are only meaningful to the InProcess value that
// made them. Connect to a started sandbox with Connect.
type InProcess struct {
	name     string
	tempDir  string
	logger   *slog.Logger
	noChange time.Duration

	mu    sync.Mutex
	boxes map[string]*inprocBox
	next  atomic.Int64
}

type inprocBox struct {
	x    *sandbox.Executor
	done chan struct{} // closed by Destroy
	once sync.Once
}

// InProcessOption configures NewInProcess.
type InProcessOption func(*InProcess)

// InProcessName sets the registry name (default "cli").
func InProcessName(n string) InProcessOption { return func(b *InProcess) { b.name = n } }

// InProcessTempDir sets where temporary workspaces are created.
func InProcessTempDir(d string) InProcessOption { return func(b *InProcess) { b.tempDir = d } }

// InProcessLogger sets the executor's logger.
func InProcessLogger(l *slog.Logger) InProcessOption { return func(b *InProcess) { b.logger = l } }

// InProcessNoChangeTimeout sets the executor's no-change timeout.
func InProcessNoChangeTimeout(d time.Duration) InProcessOption {
	return func(b *InProcess) { b.noChange = d }
}

// NewInProcess returns the in-process backend.
func NewInProcess(opts ...InProcessOption) *InProcess {
	b := &InProcess{name: "cli", tempDir: os.TempDir(), boxes: map[string]*inprocBox{}}
	for _, o := range opts {
		o(b)
	}
	if b.logger == nil {
		b.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return b
}

// Name is the registry name ("cli" unless set).
func (b *InProcess) Name() string { return b.name }

// Capabilities: none of the optional ones.
func (b *InProcess) Capabilities() runtimes.Capabilities {
	return runtimes.Capabilities{HostUser: true}
}

// Start creates an executor in the workspace (a temporary one when spec
// has none).
func (b *InProcess) Start(ctx context.Context, spec runtimes.Spec) (*runtimes.Handle, error) {
	ws, owns := spec.Workspace, spec.Labels[runtimes.MetaOwnsWorkspace] == "true"
	if ws == "" {
		d, err := os.MkdirTemp(b.tempDir, "corral-ws-"+safe(spec.SessionID)+"-")
		if err != nil {
			return nil, fmt.Errorf("create a temporary workspace in %s: %w", b.tempDir, err)
		}
		ws, owns = d, true
	} else if err := checkWorkspace(ws); err != nil {
		return nil, err
	}
	env := os.Environ()
	home := ""
	if spec.Env["HOME"] == "" {
		// A private HOME, as the subprocess backend gives (see
		// WithHostHome): ~/.bashrc and ~/.gitconfig writes stay in it.
		d, err := os.MkdirTemp(b.tempDir, "corral-home-")
		if err != nil {
			if owns && spec.Workspace == "" {
				_ = os.RemoveAll(ws)
			}
			return nil, fmt.Errorf("create the sandbox's home in %s: %w", b.tempDir, err)
		}
		home = d
		env = append(env, "HOME="+home)
	}
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	opts := []sandbox.Option{sandbox.WithWorkDir(ws), sandbox.WithEnv(env), sandbox.WithLogger(b.logger)}
	if b.noChange > 0 {
		opts = append(opts, sandbox.WithNoChangeTimeout(b.noChange))
	}
	x, err := sandbox.New(ctx, opts...)
	if err != nil {
		if owns && spec.Workspace == "" {
			_ = os.RemoveAll(ws)
		}
		if home != "" {
			_ = os.RemoveAll(home)
		}
		return nil, fmt.Errorf("start the in-process executor: %w", err)
	}
	id := b.name + "-" + strconv.FormatInt(b.next.Add(1), 10)
	b.mu.Lock()
	b.boxes[id] = &inprocBox{x: x, done: make(chan struct{})}
	b.mu.Unlock()
	h := &runtimes.Handle{Backend: b.name, ID: id, SessionID: spec.SessionID, AgentAddr: "inproc://" + id, Workspace: ws, Meta: map[string]string{}}
	if owns {
		h.Meta[runtimes.MetaOwnsWorkspace] = "true"
	}
	if home != "" {
		h.Meta[metaHome] = home
	}
	return h, nil
}

// metaHome records the private HOME an in-process sandbox owns.
const metaHome = "home"

func (b *InProcess) box(h *runtimes.Handle) (*inprocBox, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bx := b.boxes[h.ID]
	if bx == nil {
		return nil, fmt.Errorf("in-process sandbox %s: %w", h.ID, runtimes.ErrNotFound)
	}
	return bx, nil
}

// Recover returns h while its executor exists in this process.
func (b *InProcess) Recover(_ context.Context, h *runtimes.Handle) (*runtimes.Handle, error) {
	if _, err := b.box(h); err != nil {
		return nil, err
	}
	return h, nil
}

// Stop closes the executor (its shells and their processes).
func (b *InProcess) Stop(_ context.Context, h *runtimes.Handle, _ time.Duration) error {
	bx, err := b.box(h)
	if err != nil {
		return nil
	}
	return bx.x.Close()
}

// Destroy closes the executor and removes a workspace it created.
func (b *InProcess) Destroy(ctx context.Context, h *runtimes.Handle) error {
	b.mu.Lock()
	bx := b.boxes[h.ID]
	delete(b.boxes, h.ID)
	b.mu.Unlock()
	var errs []error
	if bx != nil {
		errs = append(errs, bx.x.Close())
		bx.once.Do(func() { close(bx.done) })
	}
	if h.Meta[runtimes.MetaOwnsWorkspace] == "true" && h.Workspace != "" {
		errs = append(errs, os.RemoveAll(h.Workspace))
	}
	if d := h.Meta[metaHome]; d != "" && strings.HasPrefix(filepath.Base(d), "corral-home-") {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// Pause is not supported in-process.
func (b *InProcess) Pause(context.Context, *runtimes.Handle) error { return runtimes.ErrNotSupported }

// Resume is not supported in-process.
func (b *InProcess) Resume(context.Context, *runtimes.Handle) error { return runtimes.ErrNotSupported }

// Inspect reports whether the executor exists.
func (b *InProcess) Inspect(_ context.Context, h *runtimes.Handle) (runtimes.State, error) {
	if _, err := b.box(h); err != nil {
		return runtimes.State{}, err
	}
	return runtimes.State{Running: true}, nil
}

// Wait is closed when the sandbox is destroyed; an in-process executor
// does not die on its own.
func (b *InProcess) Wait(ctx context.Context, h *runtimes.Handle) (<-chan runtimes.Exit, error) {
	bx, err := b.box(h)
	if err != nil {
		return nil, err
	}
	out := make(chan runtimes.Exit)
	go func() {
		defer close(out)
		select {
		case <-ctx.Done():
		case <-bx.done:
		}
	}()
	return out, nil
}

// Connect returns a connection to the executor of h.
func (b *InProcess) Connect(_ context.Context, h *runtimes.Handle) (runtimes.AgentConn, error) {
	bx, err := b.box(h)
	if err != nil {
		return nil, err
	}
	return &InProcessConn{x: bx.x, done: bx.done}, nil
}

// InProcessConn runs actions on an in-process executor: the
// runtimes.AgentConn of the "cli" backend.
type InProcessConn struct {
	x    *sandbox.Executor
	done chan struct{}
}

// Execute runs the action; output chunks are numbered from 1. reqID is
// ignored: the executor lives and dies with this process, so no request can
// outlive the Corral that sent it and nothing is ever re-sent under the same
// id from a new process.
func (c *InProcessConn) Execute(ctx context.Context, _ string, action *eventbus.Event, onChunk func(seq uint64, data []byte)) (*eventbus.Event, error) {
	var seq uint64
	var out func([]byte)
	if onChunk != nil {
		out = func(b []byte) {
			seq++
			onChunk(seq, b)
		}
	}
	return c.x.Execute(ctx, action, out), nil
}

// Interrupt interrupts the executor's running command or cell at once
// (sandbox.Executor.Interrupt); nothing running is not an error.
func (c *InProcessConn) Interrupt(context.Context) error {
	_, err := c.x.Interrupt()
	return err
}

// ListFiles lists a sandbox directory (OpenHands' /list_files rules).
func (c *InProcessConn) ListFiles(_ context.Context, path string) ([]string, error) {
	return c.x.ListFiles(path), nil
}

// Upload unpacks or stores an uploaded file as OpenHands' /upload_file.
func (c *InProcessConn) Upload(_ context.Context, dest string, r io.Reader, filename string, recursive bool) error {
	return c.x.UploadZip(dest, r, filename, recursive)
}

// Download writes a zip of path, as OpenHands' /download_files.
func (c *InProcessConn) Download(_ context.Context, path string, w io.Writer) error {
	return c.x.DownloadZip(w, path)
}

// ConfigureMCP replaces the executor's MCP servers (the engine calls it on
// every connect). Servers that failed to start come back as an
// *agentwire.MCPStartError, as over HTTP, so the engine treats both
// connections alike.
func (c *InProcessConn) ConfigureMCP(ctx context.Context, cfg eventbus.MCPConfig) error {
	err := c.x.ConfigureMCP(ctx, cfg)
	if pe, ok := errors.AsType[*mcptools.PartialError](err); ok {
		return &agentwire.MCPStartError{Log: pe.Error()}
	}
	return err
}

// Close does nothing: the executor belongs to the backend (Destroy).
func (c *InProcessConn) Close() error { return nil }

// Done is closed when the sandbox is destroyed.
func (c *InProcessConn) Done() <-chan struct{} { return c.done }

// Err says why Done closed.
func (c *InProcessConn) Err() error {
	select {
	case <-c.done:
		return errors.New("in-process sandbox destroyed")
	default:
		return nil
	}
}

var (
	_ runtimes.Backend   = (*InProcess)(nil)
	_ runtimes.AgentConn = (*InProcessConn)(nil)
)
