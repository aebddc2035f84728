package docker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"corral/runtimes"
)

// Labels on every container the backend creates.
const (
	LabelManaged = "corral.managed" // always "true"
	LabelSession = "corral.session" // Spec.SessionID
	LabelNode    = "corral.node"    // WithNodeID
	LabelUser    = "corral.user"    // Spec.Labels["corral.user"], else the OS user running Corral
	LabelRunDir  = "corral.rundir"  // host directory holding the agent socket

	// The owning engine (Spec.Owner), read by runtimes.Reap; the keys are
	// runtimes' Meta* keys. Containers made by older Corral versions have
	// none and are never reaped.
	LabelOwner        = runtimes.MetaOwnerID      // Owner.ID
	LabelOwnerInst    = runtimes.MetaOwnerInst    // Owner.Instance
	LabelOwnerHost    = runtimes.MetaOwnerHost    // Owner.Host
	LabelOwnerLock    = runtimes.MetaOwnerLock    // Owner.LockPath
	LabelOwnerDurable = runtimes.MetaOwnerDurable // "true" or "false"
)

// Paths inside the container.
const (
	AgentPath    = "/.corral/corral-agent" // the bind-mounted agent binary
	RunDirInside = "/.corral/run"          // the bind-mounted socket directory
	socketName   = "agent.sock"
	pausedMarker = "paused-by-stop" // file in the run dir: paused in PauseStop mode
	tokenEnv     = "CORRAL_AGENT_TOKEN"
	maxSockPath  = 107 // sun_path is 108 bytes including the NUL
)

// Backend runs sandboxes as Docker containers. It is safe for concurrent
// use. Close it to stop its event watcher.
type Backend struct {
	cfg      config
	cli      client.APIClient
	ownCli   bool
	user     string // OS user running Corral (LabelUser default)
	sem      chan struct{}
	watch    *watcher
	stateDir string
	pool     *pool // nil without WithWarmPool
}

var _ runtimes.Backend = (*Backend)(nil)

// New connects to the Docker Engine (DOCKER_HOST or the default socket,
// API version negotiated), checks the agent binary and starts the event
// watcher. It never removes containers by itself: leftovers are the
// engine's to reap (runtimes.Reap with List).
func New(ctx context.Context, opts ...Option) (*Backend, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	switch cfg.pauseMode {
	case PauseFreeze, PauseStop:
	default:
		return nil, fmt.Errorf("docker backend: pause mode %q: want %q or %q", cfg.pauseMode, PauseFreeze, PauseStop)
	}
	switch cfg.oomPolicy {
	case OOMKillSandbox, OOMIgnore:
	default:
		return nil, fmt.Errorf("docker backend: OOM policy %q: want %q or %q", cfg.oomPolicy, OOMKillSandbox, OOMIgnore)
	}
	switch cfg.readiness {
	case ReadySocket, ReadyLogs:
	default:
		return nil, fmt.Errorf("docker backend: readiness %q: want %q or %q", cfg.readiness, ReadySocket, ReadyLogs)
	}
	if cfg.nodeID == "" {
		return nil, errors.New("docker backend: empty node id (WithNodeID)")
	}
	agent, err := findAgent(cfg.agentBinary)
	if err != nil {
		return nil, err
	}
	cfg.agentBinary = agent

	stateDir, err := filepath.Abs(cfg.stateDir)
	if err != nil {
		return nil, fmt.Errorf("docker backend: state dir %q: %w", cfg.stateDir, err)
	}
	if n := len(stateDir) + len("/0123456789ab/") + len(socketName); n > maxSockPath {
		return nil, fmt.Errorf("docker backend: state dir %q is too long: agent socket paths would be %d bytes, over the %d-byte unix socket limit; choose a shorter WithStateDir", stateDir, n, maxSockPath)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("docker backend: make state dir: %w", err)
	}

	b := &Backend{cfg: cfg, sem: make(chan struct{}, cfg.concurrency), stateDir: stateDir}
	b.user = "corral"
	if u, err := user.Current(); err == nil {
		b.user = u.Username
	}
	if cfg.cli != nil {
		b.cli = cfg.cli
	} else {
		c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("docker backend: make Docker client from the environment (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH): %w", err)
		}
		b.cli, b.ownCli = c, true
	}
	ping, err := b.cli.Ping(ctx)
	if err != nil {
		b.closeClient()
		return nil, fmt.Errorf("docker backend: %w", mapDaemonErr(b.cli, err))
	}
	// Negotiate now, before any concurrent use: the client's lazy
	// negotiation writes its version field unsynchronised with requests
	// already in flight (the event stream).
	b.cli.NegotiateAPIVersionPing(ping)
	b.watch = newWatcher(b)
	if cfg.warmPool > 0 {
		b.pool = newPool(b, cfg.warmPool, cfg.owner)
		b.pool.mu.Lock()
		b.pool.idle[cfg.image] = nil
		b.pool.refillLocked(cfg.image, 0)
		b.pool.mu.Unlock()
	}
	return b, nil
}

// findAgent resolves and checks the agent binary.
func findAgent(p string) (string, error) {
	if p == "" {
		if exe, err := os.Executable(); err == nil {
			cand := filepath.Join(filepath.Dir(exe), "corral-agent")
			if _, err := os.Stat(cand); err == nil {
				p = cand
			}
		}
	}
	if p == "" {
		lp, err := exec.LookPath("corral-agent")
		if err != nil {
			return "", errors.New("docker backend: corral-agent binary not found next to this executable or in PATH: build it with `CGO_ENABLED=0 go build -o corral-agent ./cmd/corral-agent` and pass WithAgentBinary (or put it in PATH)")
		}
		p = lp
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("docker backend: agent binary %q: %w", p, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", fmt.Errorf("docker backend: agent binary: %w (build it with `CGO_ENABLED=0 go build -o corral-agent ./cmd/corral-agent`)", err)
	}
	defer f.Close()
	if err := checkStaticELF(f, abs); err != nil {
		return "", fmt.Errorf("docker backend: agent binary: %w", err)
	}
	return abs, nil
}

// Close removes the warm pool's idle containers (starting no more), stops
// the event watcher, closes every pending Wait channel and, if the Backend
// made its own client, closes it. Sandboxes handed out keep running.
func (b *Backend) Close() error {
	if b.pool != nil {
		b.pool.close()
	}
	if b.watch != nil {
		b.watch.close()
	}
	b.closeClient()
	return nil
}

func (b *Backend) closeClient() {
	if b.ownCli {
		if c, ok := b.cli.(interface{ Close() error }); ok {
			c.Close()
		}
	}
}

// Client returns the Docker API client the backend uses.
func (b *Backend) Client() client.APIClient { return b.cli }

// NodeID returns the node id written to container labels.
func (b *Backend) NodeID() string { return b.cfg.nodeID }

// Name implements runtimes.Backend.
func (b *Backend) Name() string { return "docker" }

// Capabilities implements runtimes.Backend.
func (b *Backend) Capabilities() runtimes.Capabilities {
	return runtimes.Capabilities{Pause: true, Recover: true, Images: true, Limits: true, Networks: true}
}

var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Start implements runtimes.Backend: hand out a warm-pool container when
// the pool can honour spec (see poolable), else create and start the
// container, then wait until the agent answers GET /alive on its socket.
func (b *Backend) Start(ctx context.Context, spec runtimes.Spec) (*runtimes.Handle, error) {
	if spec.SessionID == "" {
		return nil, errors.New("docker backend: start: empty Spec.SessionID")
	}
	spec = b.cfg.specDefaults(spec)
	if b.pool != nil && b.poolable(spec) {
		h, err := b.pool.claim(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("docker backend: start session %s: %w", spec.SessionID, err)
		}
		if h != nil {
			return h, nil
		}
	}
	c, ws, err := b.launch(ctx, spec, "start session "+spec.SessionID, false)
	if err != nil {
		return nil, err
	}
	h := c.handle(spec, b.cfg.nodeID)
	if ws != nil && !ws.Named {
		h.Workspace = ws.Source
	}
	forkMeta(h, spec)
	b.cfg.logger.Debug("sandbox started", "session", spec.SessionID, "container", c.name, "image", spec.Image)
	return h, nil
}

// started is a container whose agent answered.
type started struct {
	id, name, runDir, token, image string
}

// handle is the runtimes.Handle of c serving spec's session.
func (c *started) handle(spec runtimes.Spec, node string) *runtimes.Handle {
	h := &runtimes.Handle{
		Backend:   "docker",
		ID:        c.id,
		SessionID: spec.SessionID,
		AgentAddr: "unix://" + filepath.Join(c.runDir, socketName),
		Token:     c.token,
		Meta:      spec.Owner.Meta(),
	}
	for k, v := range map[string]string{"container_name": c.name, "run_dir": c.runDir, "image": c.image, "node": node} {
		h.Meta[k] = v
	}
	return h
}

// launch creates and starts a container for spec (defaults applied) and
// waits for its agent; what names the operation in errors. pooled marks
// it as a warm-pool container (label corral.pool, name corral-pool-*).
func (b *Backend) launch(ctx context.Context, spec runtimes.Spec, what string, pooled bool) (*started, *volumeMount, error) {
	img := spec.Image
	mounts, ws, err := mountsFor(spec.Workspace, spec.Volumes)
	if err != nil {
		return nil, nil, fmt.Errorf("docker backend: %s: %w", what, err)
	}
	env, err := containerEnv(spec.Env)
	if err != nil {
		return nil, nil, fmt.Errorf("docker backend: %s: %w", what, err)
	}

	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("docker backend: %s: waiting for a start slot (%d at once): %w", what, cap(b.sem), ctx.Err())
	}
	defer func() { <-b.sem }()
	ctx, cancel := context.WithTimeout(ctx, b.cfg.startTimeout)
	defer cancel()

	short, runDir, err := b.makeRunDir()
	if err != nil {
		return nil, nil, err
	}
	token := randHex(32)
	env = append(env, tokenEnv+"="+token)
	cc, hc := b.containerConfig(spec, env, runDir, mounts, ws == nil)
	name := "corral-" + truncate(nameUnsafe.ReplaceAllString(spec.SessionID, "_"), 40) + "-" + short
	if pooled {
		cc.Labels[LabelPool] = "true"
		name = "corral-pool-" + short
	}

	// Create is not cancelled with ctx: a daemon finishes a create whose
	// client went away, and a container we never learnt the id of would
	// leak. It is short; ctx is checked right after.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	created, err := b.cli.ContainerCreate(cctx, cc, hc, nil, nil, name)
	ccancel()
	if err != nil {
		os.RemoveAll(runDir)
		return nil, nil, fmt.Errorf("docker backend: %s: create container from %s: %w", what, img, mapCreateErr(b.cli, img, err))
	}
	id := created.ID
	if err := ctx.Err(); err != nil {
		b.discard(id, runDir)
		return nil, nil, fmt.Errorf("docker backend: %s: %w", what, err)
	}
	died := b.watch.arm(id)
	ok := false
	defer func() {
		if !ok {
			b.discard(id, runDir)
		}
	}()
	var logReady <-chan error
	if b.cfg.readiness == ReadyLogs {
		// Attach before start so the agent's first line cannot be missed.
		att, err := b.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
		if err != nil {
			return nil, nil, fmt.Errorf("docker backend: %s: attach to container %s: %w", what, name, mapDaemonErr(b.cli, err))
		}
		defer att.Close()
		logReady = watchListening(att.Reader)
	}
	if err := b.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return nil, nil, fmt.Errorf("docker backend: %s: start container %s: %w", what, name, mapCreateErr(b.cli, img, err))
	}
	for _, n := range b.cfg.extraNetworks {
		if err := b.cli.NetworkConnect(ctx, n, id, nil); err != nil {
			return nil, nil, fmt.Errorf("docker backend: %s: connect to network %q: %w", what, n, mapCreateErr(b.cli, img, err))
		}
	}
	sock := filepath.Join(runDir, socketName)
	if logReady != nil {
		err = b.waitListening(ctx, id, logReady, died)
	} else {
		err = b.waitReady(ctx, id, sock, died)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("docker backend: %s (container %s, image %s): %w", what, name, img, err)
	}
	ok = true
	return &started{id: id, name: name, runDir: runDir, token: token, image: img}, ws, nil
}

// containerConfig is the container and host configuration of a sandbox
// (spec already has the backend's defaults applied); env includes the
// agent token. anonWorkspace: /workspace is an anonymous volume.
func (b *Backend) containerConfig(spec runtimes.Spec, env []string, runDir string, mounts []volumeMount, anonWorkspace bool) (*container.Config, *container.HostConfig) {
	workDir := spec.WorkDir
	if workDir == "" {
		workDir = WorkspaceDir
	}
	args := []string{"--listen", "unix://" + RunDirInside + "/" + socketName, "--workdir", workDir}
	if spec.User != "" {
		args = append(args, "--user", spec.User)
	}

	cc := &container.Config{
		Image:      spec.Image,
		Entrypoint: []string{AgentPath},
		Cmd:        args,
		Env:        env,
		WorkingDir: workDir,
		Labels:     b.labelsFor(spec, runDir),
		User:       b.cfg.agentUser,
	}
	if anonWorkspace {
		cc.Volumes = map[string]struct{}{WorkspaceDir: {}}
	}
	hc := &container.HostConfig{
		Init:        ptr(true),
		NetworkMode: container.NetworkMode(spec.Network),
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: b.cfg.agentBinary, Target: AgentPath, ReadOnly: true},
			{Type: mount.TypeBind, Source: runDir, Target: RunDirInside},
		},
		Resources: container.Resources{
			Memory:   spec.Resources.MemoryBytes,
			NanoCPUs: spec.Resources.NanoCPUs,
		},
	}
	res := spec.Resources
	if res.MemoryBytes > 0 {
		hc.Resources.MemorySwap = res.MemoryBytes // no swap: hitting the limit means an OOM kill, not thrashing
	}
	if res.PidsLimit > 0 {
		hc.Resources.PidsLimit = ptr(res.PidsLimit)
	}
	for _, m := range mounts {
		hc.Binds = append(hc.Binds, m.bind())
	}
	return cc, hc
}

func ptr[T any](v T) *T { return &v }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// containerEnv renders env sorted (stable container configs) and refuses
// names Docker or the agent cannot take.
func containerEnv(m map[string]string) ([]string, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("env var name %q: must be non-empty without '=' or NUL", k)
		}
		if k == tokenEnv {
			return nil, fmt.Errorf("env var %s is reserved for the agent's token", tokenEnv)
		}
		if strings.ContainsRune(m[k], 0) {
			return nil, fmt.Errorf("env var %s: value contains a NUL byte", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		out = append(out, k+"="+m[k])
	}
	return out, nil
}

// makeRunDir creates the per-sandbox socket directory with a short random
// name so the socket path stays far below the unix limit.
func (b *Backend) makeRunDir() (short, dir string, err error) {
	for range 5 {
		short = randHex(6)
		dir = filepath.Join(b.stateDir, short)
		err = os.Mkdir(dir, 0o700)
		if err == nil {
			return short, dir, nil
		}
		if !errors.Is(err, os.ErrExist) {
			break
		}
	}
	return "", "", fmt.Errorf("docker backend: make socket directory in %s: %w", b.stateDir, err)
}

// discard removes a container that failed to start, with a context of its
// own: the caller's may be what failed.
func (b *Backend) discard(id, runDir string) {
	b.watch.forget(id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		b.cfg.logger.Warn("remove failed sandbox container", "container", id, "err", err)
	}
	b.removeRunDir(runDir)
}

func (b *Backend) removeRunDir(dir string) {
	// Only directories this backend made: a label could name anything.
	if dir == "" || filepath.Dir(dir) != b.stateDir {
		return
	}
	os.RemoveAll(dir)
}

// waitReady polls the agent's socket until GET /alive answers 200, the
// container dies, or ctx ends.
func (b *Backend) waitReady(ctx context.Context, id, sock string, died <-chan struct{}) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	tick := time.NewTicker(b.cfg.readyPoll)
	defer tick.Stop()
	var last error
	for {
		last = probeAlive(ctx, hc)
		if last == nil {
			return nil
		}
		select {
		case <-died:
			return fmt.Errorf("the container exited before its agent was ready (%s); last output: %s", b.exitOf(id), b.tailLogs(id))
		case <-ctx.Done():
			return fmt.Errorf("the agent did not answer at unix://%s (last probe: %v; output so far: %s): %w", sock, last, b.tailLogs(id), ctx.Err())
		case <-tick.C:
		}
	}
}

func probeAlive(ctx context.Context, hc *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/alive", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /alive: %s", resp.Status)
	}
	return nil
}

// exitOf describes a dead container's exit for error messages.
func (b *Backend) exitOf(id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	insp, err := b.cli.ContainerInspect(ctx, id)
	if err != nil || insp.State == nil {
		return "exit status unknown"
	}
	return exitFromState(insp.State).Reason
}

// tailLogs returns the last lines the container printed, for error messages.
func (b *Backend) tailLogs(id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := b.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"})
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	defer rc.Close()
	var buf bytes.Buffer
	stdcopy.StdCopy(&buf, &buf, rc)
	s := strings.TrimSpace(buf.String())
	if s == "" {
		return "(none)"
	}
	return fmt.Sprintf("%q", truncate(s, 2000))
}

func exitFromState(st *container.State) runtimes.Exit {
	e := runtimes.Exit{Code: st.ExitCode, OOMKilled: st.OOMKilled}
	switch {
	case st.OOMKilled:
		e.Reason = fmt.Sprintf("killed by the kernel OOM killer (out of memory; exit code %d)", st.ExitCode)
	case st.ExitCode > 128 && st.ExitCode < 160:
		e.Signal = st.ExitCode - 128
		e.Reason = fmt.Sprintf("killed by signal %d (exit code %d)", e.Signal, st.ExitCode)
	default:
		e.Reason = fmt.Sprintf("exited with code %d", st.ExitCode)
	}
	if st.OOMKilled && st.ExitCode > 128 && st.ExitCode < 160 {
		e.Signal = st.ExitCode - 128
	}
	if st.Error != "" {
		e.Reason += ": " + st.Error
	}
	return e
}

// lookup finds the container behind a handle: by id, or, for a handle with
// only a session id, by the session label (newest first).
func (b *Backend) lookup(ctx context.Context, h *runtimes.Handle) (container.InspectResponse, error) {
	if h == nil {
		return container.InspectResponse{}, errors.New("docker backend: nil handle")
	}
	if h.ID != "" {
		insp, err := b.cli.ContainerInspect(ctx, h.ID)
		if err == nil {
			if insp.Config == nil || insp.Config.Labels[LabelManaged] != "true" {
				return insp, fmt.Errorf("docker backend: container %s is not managed by Corral (no %s=true label)", h.ID, LabelManaged)
			}
			return insp, nil
		}
		if !cerrdefs.IsNotFound(err) {
			return insp, fmt.Errorf("docker backend: inspect container %s: %w", h.ID, mapDaemonErr(b.cli, err))
		}
		// The container is gone: another container of the same session
		// (e.g. on another node) is not this sandbox.
		return insp, fmt.Errorf("docker backend: container %s: %w", h.ID, runtimes.ErrNotFound)
	}
	if h.SessionID == "" {
		return container.InspectResponse{}, errors.New("docker backend: handle has neither a container id nor a session id")
	}
	list, err := b.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelSession+"="+h.SessionID),
	)})
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("docker backend: list containers of session %s: %w", h.SessionID, mapDaemonErr(b.cli, err))
	}
	if len(list) == 0 {
		list, err = b.claimedPoolContainers(ctx, h.SessionID)
		if err != nil {
			return container.InspectResponse{}, err
		}
	}
	if len(list) == 0 {
		return container.InspectResponse{}, fmt.Errorf("docker backend: session %s: no container: %w", h.SessionID, runtimes.ErrNotFound)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Created > list[j].Created })
	insp, err := b.cli.ContainerInspect(ctx, list[0].ID)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return insp, fmt.Errorf("docker backend: session %s: %w", h.SessionID, runtimes.ErrNotFound)
		}
		return insp, fmt.Errorf("docker backend: inspect container %s: %w", list[0].ID, mapDaemonErr(b.cli, err))
	}
	return insp, nil
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// Recover implements runtimes.Backend. It finds the container by h.ID or,
// failing that, by its corral.session label; thaws or restarts it if it was
// paused or stopped; waits for the agent and returns a fresh handle (token
// and socket read back from the container, so a handle with only SessionID
// is enough).
func (b *Backend) Recover(ctx context.Context, h *runtimes.Handle) (*runtimes.Handle, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.startTimeout)
	defer cancel()
	insp, err := b.lookup(ctx, h)
	if err != nil {
		return nil, err
	}
	labels := insp.Config.Labels
	runDir := labels[LabelRunDir]
	token := envValue(insp.Config.Env, tokenEnv)
	if runDir == "" || token == "" {
		return nil, fmt.Errorf("docker backend: recover container %s: it has no %s label or no agent token; it was not started by this backend", insp.ID, LabelRunDir)
	}
	sock := filepath.Join(runDir, socketName)
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return nil, fmt.Errorf("docker backend: recover container %s: socket directory: %w", insp.ID, err)
	}
	st := insp.State
	var died <-chan struct{}
	switch {
	case st.Running && st.Paused:
		died = b.watch.arm(insp.ID)
		if err := b.cli.ContainerUnpause(ctx, insp.ID); err != nil && !isConflict(err) {
			return nil, fmt.Errorf("docker backend: recover container %s: unpause: %w", insp.ID, mapDaemonErr(b.cli, err))
		}
	case st.Running:
		died = b.watch.arm(insp.ID)
		if _, err := os.Stat(sock); err != nil {
			// The host side of the socket directory was lost (e.g. a
			// cleaned /tmp): the agent's socket lives in a directory the host
			// can no longer reach, so restart the container to get a new one.
			if err := b.stopSettled(ctx, insp.ID, b.cfg.stopTimeout, true); err != nil {
				return nil, fmt.Errorf("docker backend: recover container %s: restart for a new socket: %w", insp.ID, mapDaemonErr(b.cli, err))
			}
			died = b.watch.arm(insp.ID)
			if err := b.cli.ContainerStart(ctx, insp.ID, container.StartOptions{}); err != nil {
				return nil, fmt.Errorf("docker backend: recover container %s: start: %w", insp.ID, mapDaemonErr(b.cli, err))
			}
		}
	default:
		// Exited or created: start it again (as OpenHands does when
		// attaching to an exited container). The agent makes a new socket.
		os.Remove(filepath.Join(runDir, pausedMarker))
		os.Remove(sock)
		died = b.watch.arm(insp.ID)
		if err := b.cli.ContainerStart(ctx, insp.ID, container.StartOptions{}); err != nil {
			return nil, fmt.Errorf("docker backend: recover container %s: start: %w", insp.ID, mapDaemonErr(b.cli, err))
		}
	}
	if err := b.waitReady(ctx, insp.ID, sock, died); err != nil {
		return nil, fmt.Errorf("docker backend: recover container %s: %w", insp.ID, err)
	}
	out := &runtimes.Handle{
		Backend:   "docker",
		ID:        insp.ID,
		SessionID: sessionOf(labels),
		AgentAddr: "unix://" + sock,
		Token:     token,
		Meta:      handleMeta(strings.TrimPrefix(insp.Name, "/"), insp.Config.Image, labels),
	}
	for _, m := range insp.Mounts {
		if m.Destination == WorkspaceDir && m.Type == mount.TypeBind {
			out.Workspace = m.Source
		}
	}
	return out, nil
}

func isConflict(err error) bool {
	return cerrdefs.IsConflict(err) || cerrdefs.IsFailedPrecondition(err)
}

// Stop implements runtimes.Backend (docker stop with the given grace
// period). Pending Wait channels are closed without a value: the sandbox
// did not die on its own.
func (b *Backend) Stop(ctx context.Context, h *runtimes.Handle, timeout time.Duration) error {
	if h == nil || h.ID == "" {
		return errors.New("docker backend: stop: handle without container id")
	}
	insp, err := b.cli.ContainerInspect(ctx, h.ID)
	if err != nil {
		return b.notFound("stop", h.ID, err)
	}
	if err := b.stopSettled(ctx, h.ID, timeout, insp.State.Running); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("docker backend: stop container %s: %w", h.ID, runtimes.ErrNotFound)
		}
		return fmt.Errorf("docker backend: stop container %s: %w", h.ID, mapDaemonErr(b.cli, err))
	}
	b.watch.release(h.ID)
	return nil
}

// Destroy implements runtimes.Backend: force-removes the container with its
// anonymous volumes and deletes its socket directory. Pending Wait channels
// are closed without a value.
func (b *Backend) Destroy(ctx context.Context, h *runtimes.Handle) error {
	if h == nil || (h.ID == "" && h.SessionID == "") {
		return errors.New("docker backend: destroy: empty handle")
	}
	id, runDir := h.ID, ""
	if h.Meta != nil {
		runDir = h.Meta["run_dir"]
	}
	if insp, err := b.lookup(ctx, h); err == nil {
		id, runDir = insp.ID, insp.Config.Labels[LabelRunDir]
	} else if !errors.Is(err, runtimes.ErrNotFound) {
		return err
	}
	if id != "" {
		b.watch.forget(id)
		if err := b.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("docker backend: remove container %s: %w", id, mapDaemonErr(b.cli, err))
		}
	}
	b.removeRunDir(runDir)
	return b.destroyFork(ctx, h)
}

// Pause implements runtimes.Backend according to the pause mode.
func (b *Backend) Pause(ctx context.Context, h *runtimes.Handle) error {
	if h == nil || h.ID == "" {
		return errors.New("docker backend: pause: handle without container id")
	}
	if b.cfg.pauseMode == PauseFreeze {
		if err := b.cli.ContainerPause(ctx, h.ID); err != nil && !isConflict(err) {
			return b.notFound("pause", h.ID, err)
		}
		return nil
	}
	insp, err := b.cli.ContainerInspect(ctx, h.ID)
	if err != nil {
		return b.notFound("pause", h.ID, err)
	}
	runDir := insp.Config.Labels[LabelRunDir]
	if runDir != "" {
		if err := os.WriteFile(filepath.Join(runDir, pausedMarker), nil, 0o600); err != nil {
			return fmt.Errorf("docker backend: pause container %s: mark paused: %w", h.ID, err)
		}
	}
	if err := b.stopSettled(ctx, h.ID, b.cfg.stopTimeout, insp.State.Running); err != nil {
		return b.notFound("pause (stop)", h.ID, err)
	}
	return nil
}

// stopSettled stops a container we mean to stop and, if it was running,
// waits until the watcher has seen its die event, so that event cannot be
// mistaken later for the death of the next run (Resume, Recover).
func (b *Backend) stopSettled(ctx context.Context, id string, grace time.Duration, wasRunning bool) error {
	died := b.watch.expectStop(id)
	secs := int((grace + time.Second - 1) / time.Second)
	if err := b.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil {
		return err
	}
	if !wasRunning {
		return nil
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-died:
	case <-t.C:
		b.cfg.logger.Warn("no die event after stopping a container", "container", id)
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Resume implements runtimes.Backend. In PauseStop mode it starts the
// container again and waits for the agent.
func (b *Backend) Resume(ctx context.Context, h *runtimes.Handle) error {
	if h == nil || h.ID == "" {
		return errors.New("docker backend: resume: handle without container id")
	}
	insp, err := b.cli.ContainerInspect(ctx, h.ID)
	if err != nil {
		return b.notFound("resume", h.ID, err)
	}
	if insp.State.Paused {
		if err := b.cli.ContainerUnpause(ctx, h.ID); err != nil && !isConflict(err) {
			return b.notFound("resume", h.ID, err)
		}
		return nil
	}
	if insp.State.Running {
		return nil
	}
	runDir := insp.Config.Labels[LabelRunDir]
	sock := filepath.Join(runDir, socketName)
	ctx, cancel := context.WithTimeout(ctx, b.cfg.startTimeout)
	defer cancel()
	os.Remove(sock)
	os.Remove(filepath.Join(runDir, pausedMarker))
	died := b.watch.arm(h.ID)
	if err := b.cli.ContainerStart(ctx, h.ID, container.StartOptions{}); err != nil {
		return b.notFound("resume (start)", h.ID, err)
	}
	if err := b.waitReady(ctx, h.ID, sock, died); err != nil {
		return fmt.Errorf("docker backend: resume container %s: %w", h.ID, err)
	}
	return nil
}

func (b *Backend) notFound(op, id string, err error) error {
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker backend: %s container %s: %w", op, id, runtimes.ErrNotFound)
	}
	return fmt.Errorf("docker backend: %s container %s: %w", op, id, mapDaemonErr(b.cli, err))
}

// Inspect implements runtimes.Backend. A container stopped by Pause in
// PauseStop mode reports Paused, not an exit.
func (b *Backend) Inspect(ctx context.Context, h *runtimes.Handle) (runtimes.State, error) {
	insp, err := b.lookup(ctx, h)
	if err != nil {
		return runtimes.State{}, err
	}
	st := insp.State
	out := runtimes.State{Running: st.Running && !st.Paused, Paused: st.Paused}
	if !st.Running && st.Status != "created" {
		if _, err := os.Stat(filepath.Join(insp.Config.Labels[LabelRunDir], pausedMarker)); err == nil {
			out.Paused = true
			return out, nil
		}
		e := exitFromState(st)
		out.Exit = &e
	}
	return out, nil
}

// Wait implements runtimes.Backend.
func (b *Backend) Wait(ctx context.Context, h *runtimes.Handle) (<-chan runtimes.Exit, error) {
	if h == nil || h.ID == "" {
		return nil, errors.New("docker backend: wait: handle without container id")
	}
	return b.watch.wait(ctx, h.ID)
}

// watchListening reads the agent's attached output until its "listening
// on" line; the channel gets nil then, or the read error. The goroutine
// ends when the attach connection is closed.
func watchListening(r *bufio.Reader) <-chan error {
	out := make(chan error, 1)
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, r)
		pw.CloseWithError(err)
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				out <- nil
				io.Copy(io.Discard, pr)
				return
			}
		}
		err := sc.Err()
		if err == nil {
			err = io.EOF
		}
		out <- fmt.Errorf("agent output ended before its \"listening on\" line: %w", err)
		io.Copy(io.Discard, pr)
	}()
	return out
}

func (b *Backend) waitListening(ctx context.Context, id string, ready <-chan error, died <-chan struct{}) error {
	select {
	case err := <-ready:
		if err == nil {
			return nil
		}
		select {
		case <-died:
			return fmt.Errorf("the container exited before its agent was ready (%s); last output: %s", b.exitOf(id), b.tailLogs(id))
		case <-time.After(time.Second):
			return err
		}
	case <-died:
		return fmt.Errorf("the container exited before its agent was ready (%s); last output: %s", b.exitOf(id), b.tailLogs(id))
	case <-ctx.Done():
		return fmt.Errorf("the agent did not print its \"listening on\" line (output so far: %s): %w", b.tailLogs(id), ctx.Err())
	}
}
