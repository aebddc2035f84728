package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"corral/runtimes"
)

// AgentBinaryName is the agent executable looked up next to the running
// binary and on $PATH.
const AgentBinaryName = "corral-agent"

// Handle.Meta keys of local sandboxes.
const (
	metaPID     = "pid"
	metaSockDir = "sock_dir"
	metaStart   = "proc_start" // /proc/<pid>/stat start time: guards against pid reuse
)

// Option configures New.
type Option func(*Backend)

// WithAgentBinary sets the corral-agent executable. Without it the backend
// looks next to os.Executable(), then on $PATH.
func WithAgentBinary(path string) Option { return func(b *Backend) { b.binary = path } }

// WithWarmPool keeps n agents started ahead, each in its own temporary
// workspace; a Start without a workspace takes one after a health check
// and a replacement is started at once.
func WithWarmPool(n int) Option { return func(b *Backend) { b.warmSize = n } }

// WithLogger sets where agent start-up problems are logged.
func WithLogger(l *slog.Logger) Option { return func(b *Backend) { b.logger = l } }

// WithNoChangeTimeout passes --no-change-timeout to agents (0: the agent's
// default, 10 s).
func WithNoChangeTimeout(d time.Duration) Option { return func(b *Backend) { b.noChange = d } }

// WithUser passes --user to agents (commands run as that user when Corral
// runs as root).
func WithUser(u string) Option { return func(b *Backend) { b.user = u } }

// WithEnv adds KEY=VALUE entries to the environment of every agent (and
// so of its shells), after the host's and before a session's own.
func WithEnv(env ...string) Option { return func(b *Backend) { b.env = append(b.env, env...) } }

// WithHostHome lets agents use the host user's HOME, as OpenHands'
// LocalRuntime does. By default each sandbox gets a HOME of its own (in its
// socket directory, removed with the sandbox): OpenHands' env-var
// persistence appends to ~/.bashrc and `git config --global` writes
// ~/.gitconfig, which must neither leak between sandboxes nor change the
// host user's files.
func WithHostHome() Option { return func(b *Backend) { b.hostHome = true } }

// WithTempDir sets where temporary workspaces and socket directories are
// created (default os.TempDir()).
func WithTempDir(dir string) Option { return func(b *Backend) { b.tempDir = dir } }

// WithStateDir sets the directory holding one state file per sandbox
// (<dir>/<sandbox id>.json), read by List and so by runtimes.Reap after a
// crash of Corral. Default: $XDG_RUNTIME_DIR/corral-local, else
// <os.TempDir()>/corral-local-<uid>.
func WithStateDir(dir string) Option { return func(b *Backend) { b.stateDir = dir } }

// WithOwner sets the owner recorded on warm-pool agents until a Start
// claims one (and records the Spec's owner instead); without it a warm
// agent left by a crash has no owner and is never reaped.
func WithOwner(o runtimes.Owner) Option { return func(b *Backend) { b.owner = o } }

// Backend runs corral-agent as a host subprocess. Create it with New and
// Close it to stop warm agents.
type Backend struct {
	hostHome bool
	binary   string
	warmSize int
	logger   *slog.Logger
	noChange time.Duration
	user     string
	tempDir  string
	env      []string
	grace    time.Duration // agent connection grace period (WithAgentGracePeriod)
	stateDir string
	owner    runtimes.Owner // of warm agents

	mu      sync.Mutex
	procs   map[string]*proc // by handle id: agents this process started
	warm    []*proc
	filling int
	closed  bool
	wg      sync.WaitGroup // warm-pool fillers
	ctx     context.Context
	cancel  context.CancelFunc
}

// proc is an agent started by this Backend.
type proc struct {
	h         *runtimes.Handle
	cmd       *exec.Cmd
	exited    chan struct{} // closed when the process has exited
	exit      runtimes.Exit
	stopping  bool // Stop/Destroy asked it to end: not a death "on its own"
	destroyed chan struct{}
}

// New returns a local backend. It fails when the agent binary cannot be
// found, saying how to build it.
func New(opts ...Option) (*Backend, error) {
	b := &Backend{procs: map[string]*proc{}}
	for _, o := range opts {
		o(b)
	}
	if b.logger == nil {
		b.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if b.tempDir == "" {
		b.tempDir = os.TempDir()
	}
	bin, err := findAgent(b.binary)
	if err != nil {
		return nil, err
	}
	if b.stateDir == "" {
		b.stateDir = defaultStateDir()
	}
	if err := os.MkdirAll(b.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("local backend: state directory %s: %w; choose another with [runtime.local] state_dir", b.stateDir, err)
	}
	b.binary = bin
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.mu.Lock()
	b.refillLocked(0)
	b.mu.Unlock()
	return b, nil
}

// findAgent resolves the agent executable.
func findAgent(explicit string) (string, error) {
	if explicit != "" {
		p, err := exec.LookPath(explicit)
		if err != nil {
			return "", fmt.Errorf("corral-agent binary %q is not an executable file: %w; build it with `make build` (or `go build -o bin/corral-agent ./cmd/corral-agent`)", explicit, err)
		}
		return filepath.Abs(p)
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), AgentBinaryName)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(AgentBinaryName); err == nil {
		return filepath.Abs(p)
	}
	return "", fmt.Errorf("corral-agent binary not found next to the corral executable nor on $PATH; build it with `make build` (or `go build -o bin/corral-agent ./cmd/corral-agent`) and put it next to corral, on $PATH, or name it in [runtime.local] agent_binary")
}

// Name is "local".
func (b *Backend) Name() string { return "local" }

// Capabilities: pause (SIGSTOP) and recover (by pid and socket).
func (b *Backend) Capabilities() runtimes.Capabilities {
	return runtimes.Capabilities{Pause: true, Recover: true}
}

// Start launches an agent (or hands out a warm one when spec has no
// workspace) and returns once it accepts connections.
func (b *Backend) Start(ctx context.Context, spec runtimes.Spec) (*runtimes.Handle, error) {
	if spec.Workspace == "" {
		if p := b.claimWarm(ctx); p != nil {
			b.mu.Lock()
			p.h.SessionID = spec.SessionID
			setOwner(p.h.Meta, spec.Owner)
			h := cloneHandle(p.h)
			b.mu.Unlock()
			if err := b.saveState(h); err != nil {
				_ = b.Destroy(context.Background(), h)
				return nil, err
			}
			return h, nil
		}
	}
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
	p, err := b.launch(ctx, spec.SessionID, ws, owns, spec.Env, spec.Owner)
	if err != nil {
		if owns && spec.Workspace == "" {
			_ = os.RemoveAll(ws)
		}
		return nil, err
	}
	return cloneHandle(p.h), nil
}

// checkWorkspace refuses a workspace that does not exist or cannot be
// written, before any process is started.
func checkWorkspace(ws string) error {
	st, err := os.Stat(ws)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("workspace %s does not exist; create it or omit --workspace for a temporary one", ws)
		}
		return fmt.Errorf("workspace %s: %w", ws, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("workspace %s is not a directory", ws)
	}
	f, err := os.CreateTemp(ws, ".corral-write-check-")
	if err != nil {
		return fmt.Errorf("workspace %s is not writable by this user: %w", ws, err)
	}
	name := f.Name()
	f.Close()
	_ = os.Remove(name)
	return nil
}

// agentCmd builds the agent's command line and environment. Its output
// goes to a log file in sockDir, never to a pipe to this process: an agent
// must outlive a kill -9 of Corral, and a write to a pipe whose reader died
// would kill it with SIGPIPE.
func (b *Backend) agentCmd(sockDir, ws, token string, env map[string]string, log *os.File) (*exec.Cmd, error) {
	args := []string{"--listen", "unix://" + filepath.Join(sockDir, "agent.sock"), "--workdir", ws}
	if b.noChange > 0 {
		args = append(args, "--no-change-timeout", b.noChange.String())
	}
	if b.user != "" {
		args = append(args, "--user", b.user)
	}
	cmd := exec.Command(b.binary, args...)
	cmd.Dir = ws
	cmd.Env = append(os.Environ(), b.env...)
	if !b.hostHome && !hasKey(b.env, "HOME") && env["HOME"] == "" {
		home := filepath.Join(sockDir, "home")
		if err := os.Mkdir(home, 0o700); err != nil {
			return nil, fmt.Errorf("create the sandbox's home in %s: %w", sockDir, err)
		}
		cmd.Env = append(cmd.Env, "HOME="+home)
	}
	cmd.Env = append(cmd.Env, "CORRAL_AGENT_TOKEN="+token) // not in argv: ps shows argv
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group (signals to the group reach its shells), and
	// no Pdeathsig: the agent survives the death of Corral so that a
	// restarted Corral can Recover it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

func (b *Backend) launch(ctx context.Context, sid, ws string, owns bool, env map[string]string, owner runtimes.Owner) (*proc, error) {
	sockDir, err := os.MkdirTemp(b.tempDir, "corral-agent-")
	if err != nil {
		return nil, fmt.Errorf("create a socket directory in %s: %w", b.tempDir, err)
	}
	if sock := filepath.Join(sockDir, "agent.sock"); len(sock) > maxSockPath {
		_ = os.RemoveAll(sockDir)
		return nil, fmt.Errorf("agent socket path %s is %d bytes, over the %d-byte unix socket limit; choose a shorter temporary directory ([runtime.local] temp_dir)", sock, len(sock), maxSockPath)
	}
	logPath := filepath.Join(sockDir, agentLog)
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		_ = os.RemoveAll(sockDir)
		return nil, fmt.Errorf("create the agent's log in %s: %w", sockDir, err)
	}
	defer log.Close() // the agent has its own copy
	token := randomToken()
	h := &runtimes.Handle{Backend: "local", ID: pendingID(sockDir), SessionID: sid, AgentAddr: "unix://" + filepath.Join(sockDir, "agent.sock"),
		Token: token, Workspace: ws, Meta: owner.Meta()}
	h.Meta[metaSockDir] = sockDir
	if owns {
		h.Meta[runtimes.MetaOwnsWorkspace] = "true"
	}
	// A pending state file (no pid yet) is written before the process is
	// started: if Corral dies between the start and the state file naming
	// the pid, List still finds the agent (by its socket on its command
	// line) and Reap removes it.
	err = b.saveState(h)
	var cmd *exec.Cmd
	if err == nil {
		cmd, err = b.agentCmd(sockDir, ws, token, env, log)
	}
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		_ = b.removeState(h)
		_ = os.RemoveAll(sockDir)
		return nil, fmt.Errorf("start %s: %w", b.binary, err)
	}
	pid := cmd.Process.Pid
	h.ID = strconv.Itoa(pid)
	h.Meta[metaPID], h.Meta[metaStart] = strconv.Itoa(pid), procStart(pid)
	p := &proc{h: h, cmd: cmd, exited: make(chan struct{}), destroyed: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.exit = exitOf(cmd.ProcessState, err)
		close(p.exited)
	}()
	b.mu.Lock()
	b.procs[h.ID] = p
	b.mu.Unlock()
	// The state file naming the pid replaces the pending one as soon as the
	// process exists: if Corral dies before the agent listens, List still
	// finds it and Reap removes it.
	err = b.saveState(h)
	if err == nil {
		err = b.removePending(h)
	}
	if err == nil {
		err = waitListening(ctx, h, p.exited)
	}
	if err != nil {
		b.kill(p)
		<-p.exited
		b.forget(p)
		_ = b.removeState(h)
		_ = os.RemoveAll(sockDir)
		return nil, fmt.Errorf("start corral-agent (%s): %w; agent output: %s", b.binary, err, tailFile(logPath, 8<<10))
	}
	return p, nil
}

const (
	agentLog    = "agent.log" // the agent's stdout and stderr, in its socket directory
	maxSockPath = 107         // sun_path is 108 bytes including the NUL
)

// waitListening returns once h's agent accepts connections on its socket.
func waitListening(ctx context.Context, h *runtimes.Handle, exited <-chan struct{}) error {
	sock := strings.TrimPrefix(h.AgentAddr, "unix://")
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("agent exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("agent did not become ready: %w", ctx.Err())
		case <-time.After(delay):
		}
	}
}

// tailFile returns the last max bytes of path, trimmed ("" when unreadable).
func tailFile(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > max {
		_, _ = f.Seek(st.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	return strings.TrimSpace(string(b))
}

// Recover re-attaches to an agent by pid and socket: one this process
// started, or one a previous Corral process left running.
func (b *Backend) Recover(ctx context.Context, h *runtimes.Handle) (*runtimes.Handle, error) {
	if h == nil {
		return nil, fmt.Errorf("recover: nil handle: %w", runtimes.ErrNotFound)
	}
	b.mu.Lock()
	p := b.procs[h.ID]
	b.mu.Unlock()
	if p != nil {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("agent %s exited: %w", h.ID, runtimes.ErrNotFound)
		default:
			return cloneHandle(p.h), nil
		}
	}
	if !b.alien(h) {
		return nil, fmt.Errorf("local backend: recover sandbox %s (session %s): no corral-agent runs as pid %s on %s: %w",
			h.ID, h.SessionID, h.Meta[metaPID], h.AgentAddr, runtimes.ErrNotFound)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", strings.TrimPrefix(h.AgentAddr, "unix://"))
	if err != nil {
		return nil, fmt.Errorf("local backend: recover sandbox %s: its agent runs but its socket does not answer (%v): %w", h.ID, err, runtimes.ErrNotFound)
	}
	c.Close()
	return cloneHandle(h), nil
}

// alien reports whether h's agent, not started by this process, still runs:
// the pid exists, its start time is the recorded one when one is recorded,
// and it really is a corral-agent listening on h's socket (its command
// line says so), so a recycled pid is never signalled.
func (b *Backend) alien(h *runtimes.Handle) bool {
	pid, err := strconv.Atoi(h.Meta[metaPID])
	if err != nil || pid <= 1 {
		return false
	}
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	if want := h.Meta[metaStart]; want != "" && procStart(pid) != want {
		return false
	}
	return isAgentOn(pid, h.AgentAddr)
}

// isAgentOn reports whether process pid's command line has "--listen addr"
// (a zombie has an empty command line: not an agent).
func isAgentOn(pid int, addr string) bool {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || addr == "" {
		return false
	}
	args := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "--listen" && args[i+1] == addr {
			return true
		}
	}
	return false
}

// Stop sends SIGTERM to the agent's process group, then SIGKILL after
// timeout.
func (b *Backend) Stop(ctx context.Context, h *runtimes.Handle, timeout time.Duration) error {
	b.mu.Lock()
	p := b.procs[h.ID]
	if p != nil {
		p.stopping = true
	}
	b.mu.Unlock()
	if p == nil {
		if b.alien(h) {
			pid, _ := strconv.Atoi(h.Meta[metaPID])
			_ = syscall.Kill(-pid, syscall.SIGCONT)
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			deadline := time.Now().Add(timeout)
			for time.Now().Before(deadline) && b.alien(h) {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
			}
			if b.alien(h) {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
		return nil
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGCONT) // a paused agent cannot handle SIGTERM
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		b.kill(p)
		<-p.exited
	case <-ctx.Done():
		b.kill(p)
		return ctx.Err()
	}
	// Children of the agent (background jobs of the shell) may outlive it
	// in the group: make sure the whole group is gone.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// Destroy kills what is left of the sandbox, removes its socket directory
// and, when the backend created it, its workspace.
func (b *Backend) Destroy(ctx context.Context, h *runtimes.Handle) error {
	if err := b.Stop(ctx, h, 0); err != nil {
		return err
	}
	b.mu.Lock()
	p := b.procs[h.ID]
	b.mu.Unlock()
	if p != nil {
		b.forget(p)
	}
	errs := []error{b.removeState(h)}
	if d := h.Meta[metaSockDir]; d != "" && strings.HasPrefix(filepath.Base(d), "corral-agent-") {
		errs = append(errs, os.RemoveAll(d))
	}
	if h.Meta[runtimes.MetaOwnsWorkspace] == "true" && h.Workspace != "" {
		errs = append(errs, os.RemoveAll(h.Workspace))
	}
	return errors.Join(errs...)
}

func (b *Backend) forget(p *proc) {
	b.mu.Lock()
	if b.procs[p.h.ID] == p {
		delete(b.procs, p.h.ID)
		close(p.destroyed)
	}
	b.mu.Unlock()
}

// Pause stops the agent's process group (SIGSTOP); Resume continues it.
func (b *Backend) Pause(_ context.Context, h *runtimes.Handle) error {
	return b.signal(h, syscall.SIGSTOP)
}

// Resume continues a paused agent.
func (b *Backend) Resume(_ context.Context, h *runtimes.Handle) error {
	return b.signal(h, syscall.SIGCONT)
}

func (b *Backend) signal(h *runtimes.Handle, sig syscall.Signal) error {
	b.mu.Lock()
	p := b.procs[h.ID]
	b.mu.Unlock()
	if p != nil {
		select {
		case <-p.exited:
			return fmt.Errorf("agent %s exited: %w", h.ID, runtimes.ErrNotFound)
		default:
		}
		return syscall.Kill(-p.cmd.Process.Pid, sig)
	}
	if b.alien(h) {
		pid, _ := strconv.Atoi(h.Meta[metaPID])
		return syscall.Kill(-pid, sig)
	}
	return fmt.Errorf("agent %s is not running: %w", h.ID, runtimes.ErrNotFound)
}

// Inspect reports whether the agent runs.
func (b *Backend) Inspect(_ context.Context, h *runtimes.Handle) (runtimes.State, error) {
	b.mu.Lock()
	p := b.procs[h.ID]
	b.mu.Unlock()
	if p != nil {
		select {
		case <-p.exited:
			ex := p.exit
			return runtimes.State{Exit: &ex}, nil
		default:
			return runtimes.State{Running: true, Paused: procState(p.cmd.Process.Pid) == "T"}, nil
		}
	}
	if b.alien(h) {
		pid, _ := strconv.Atoi(h.Meta[metaPID])
		return runtimes.State{Running: true, Paused: procState(pid) == "T"}, nil
	}
	return runtimes.State{}, fmt.Errorf("agent %s: %w", h.ID, runtimes.ErrNotFound)
}

// Wait reports the agent's death on its own (kill -9 from outside, crash).
func (b *Backend) Wait(ctx context.Context, h *runtimes.Handle) (<-chan runtimes.Exit, error) {
	out := make(chan runtimes.Exit, 1)
	b.mu.Lock()
	p := b.procs[h.ID]
	b.mu.Unlock()
	if p == nil {
		if !b.alien(h) {
			return nil, fmt.Errorf("agent %s: %w", h.ID, runtimes.ErrNotFound)
		}
		// Not our child: poll.
		go func() {
			defer close(out)
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if !b.alien(h) {
						out <- runtimes.Exit{Code: -1, Reason: "agent process ended"}
						return
					}
				}
			}
		}()
		return out, nil
	}
	go func() {
		defer close(out)
		select {
		case <-ctx.Done():
		case <-p.destroyed:
		case <-p.exited:
			b.mu.Lock()
			stopping := p.stopping
			b.mu.Unlock()
			if !stopping {
				out <- p.exit
			}
		}
	}()
	return out, nil
}

// Close stops the warm agents. Sandboxes handed out are the caller's to
// Destroy.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.closed = true
	warm := b.warm
	b.warm = nil
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
	b.mu.Lock()
	warm = append(warm, b.warm...)
	b.warm = nil
	b.mu.Unlock()
	var errs []error
	for _, p := range warm {
		errs = append(errs, b.Destroy(context.Background(), p.h))
	}
	return errors.Join(errs...)
}

// claimWarm hands out a healthy warm agent, or nil; it always triggers a
// refill.
func (b *Backend) claimWarm(ctx context.Context) *proc {
	for {
		b.mu.Lock()
		if len(b.warm) == 0 {
			b.refillLocked(0)
			b.mu.Unlock()
			return nil
		}
		p := b.warm[0]
		b.warm = b.warm[1:]
		b.refillLocked(refillDelay)
		b.mu.Unlock()
		if err := alive(ctx, p.h); err != nil {
			b.logger.Warn("warm agent failed its health check; discarding it", "pid", p.h.ID, "err", err)
			_ = b.Destroy(context.Background(), p.h)
			continue
		}
		return p
	}
}

// refillDelay holds back the refill a claim triggers: starting an agent
// (fork, exec, a Go runtime starting) competes for the same cores as the
// session being set up on the claimed one, and on 2 cores that doubled
// the claimed session's start. The pool refills right after.
const refillDelay = 30 * time.Millisecond

// refillLocked starts agents, after delay, until the pool (with starts in
// flight) is full. b.mu must be held.
func (b *Backend) refillLocked(delay time.Duration) {
	for !b.closed && len(b.warm)+b.filling < b.warmSize {
		b.filling++
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-b.ctx.Done():
				}
				// Close may have begun while this waited (select picks
				// either case when both are ready): then start nothing.
				if b.ctx.Err() != nil {
					b.mu.Lock()
					b.filling--
					b.mu.Unlock()
					return
				}
			}
			p, err := b.startWarm()
			b.mu.Lock()
			b.filling--
			if err == nil && !b.closed {
				b.warm = append(b.warm, p)
				p = nil
			}
			b.mu.Unlock()
			if err != nil {
				b.logger.Warn("starting a warm agent", "err", err)
			}
			if p != nil {
				_ = b.Destroy(context.Background(), p.h)
			}
		}()
	}
}

func (b *Backend) startWarm() (*proc, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	ws, err := os.MkdirTemp(b.tempDir, "corral-ws-warm-")
	if err != nil {
		return nil, err
	}
	p, err := b.launch(ctx, "", ws, true, nil, b.owner)
	if err != nil {
		_ = os.RemoveAll(ws)
		return nil, err
	}
	return p, nil
}

// WarmReady returns how many warm agents wait to be claimed.
func (b *Backend) WarmReady() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.warm)
}

// alive is the health check of a warm agent: the agent's /alive endpoint
// (OpenHands' liveness probe) over its unix socket. It is one cheap HTTP
// round trip, where an agentwire hello would cost a second WebSocket dial
// on top of the runtime's own.
func alive(ctx context.Context, h *runtimes.Handle) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sock := strings.TrimPrefix(h.AgentAddr, "unix://")
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/alive", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent /alive answered %s", resp.Status)
	}
	return nil
}

func (b *Backend) kill(p *proc) { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

func exitOf(ps *os.ProcessState, err error) runtimes.Exit {
	if ps == nil {
		return runtimes.Exit{Code: -1, Reason: fmt.Sprint(err)}
	}
	ex := runtimes.Exit{Code: ps.ExitCode()}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ex.Signal = int(ws.Signal())
		ex.Reason = ws.Signal().String()
	}
	return ex
}

// procStart is field 22 of /proc/<pid>/stat (start time in clock ticks).
func procStart(pid int) string {
	f := procStatFields(pid)
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// procState is field 3 of /proc/<pid>/stat ("T" when stopped).
func procState(pid int) string {
	f := procStatFields(pid)
	if len(f) < 1 {
		return ""
	}
	return f[0]
}

// procStatFields returns the fields after the command name.
func procStatFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func safe(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
		if b.Len() >= 32 {
			break
		}
	}
	return b.String()
}

func cloneHandle(h *runtimes.Handle) *runtimes.Handle {
	c := *h
	c.Meta = make(map[string]string, len(h.Meta))
	for k, v := range h.Meta {
		c.Meta[k] = v
	}
	return &c
}

var _ runtimes.Backend = (*Backend)(nil)

// hasKey reports whether env (KEY=VALUE entries) sets key.
func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}
