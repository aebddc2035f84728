package remote

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"corral/runtimes"
	"corral/transport/agentwire"
)

// Config lists the remote hosts.
type Config struct {
	Hosts []HostConfig `toml:"hosts"`
	// AgentBinary is the local static corral-agent uploaded to ssh hosts;
	// default: corral-agent next to the running executable.
	AgentBinary string `toml:"agent_binary"`
}

// HostConfig is one remote host.
type HostConfig struct {
	Name string `toml:"name"` // unique; default the address
	Mode string `toml:"mode"` // "agent" or "ssh"
	// MaxSandboxes bounds the sandboxes placed on the host (ssh mode;
	// default 16). An agent-mode host serves exactly one sandbox.
	MaxSandboxes int `toml:"max_sandboxes"`

	// Mode "agent": a corral-agent already listening at Addr.
	Addr       string `toml:"addr"`        // host:port
	Token      string `toml:"token"`       // the agent's token
	TokenFile  string `toml:"token_file"`  // or a file holding it
	CAFile     string `toml:"ca_file"`     // CA (or the self-signed cert) that signed the agent's certificate
	CertFile   string `toml:"cert_file"`   // optional client certificate
	KeyFile    string `toml:"key_file"`    // and its key
	ServerName string `toml:"server_name"` // name to verify; default the host of Addr
	// Plaintext allows talking to the agent without TLS. Off by default; a
	// warning is logged at start when it is on.
	Plaintext bool `toml:"plaintext"`

	// Mode "ssh".
	SSH SSHConfig `toml:"ssh"`
	// KeepWorkspace leaves the per-sandbox directory (and its workspace)
	// on the host after Destroy; by default Destroy removes it.
	KeepWorkspace bool `toml:"keep_workspace"`
}

// Backend places sandboxes on remote hosts. It implements runtimes.Backend.
type Backend struct {
	cfg    Config
	logger *slog.Logger
	hosts  []*host
	agent  string // local agent binary for ssh hosts
	grace  time.Duration

	mu     sync.Mutex
	active map[string]int // host name -> sandboxes placed

	readers logReaders // followed logs, ended by Stop (logs.go)
}

type host struct {
	cfg   HostConfig
	tls   *tls.Config
	token string
	ssh   *sshHost
	max   int
}

// Option configures New.
type Option func(*Backend)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(b *Backend) { b.logger = l } }

// WithAgentGracePeriod sets how long a dropped agent connection keeps
// reconnecting (resuming output) before it is lost for good (0:
// agentwire's default). A remote host can be cut off by the network, so
// unlike local agents no minimum is imposed.
func WithAgentGracePeriod(d time.Duration) Option { return func(b *Backend) { b.grace = d } }

// Connect opens an agentwire connection to hd's agent: TLS for agent-mode
// hosts, the SSH tunnel for ssh hosts.
func (b *Backend) Connect(ctx context.Context, hd *runtimes.Handle) (runtimes.AgentConn, error) {
	if hd == nil {
		return nil, errors.New("remote runtime: connect: nil handle")
	}
	opts := []agentwire.DialOption{agentwire.WithClientLogger(b.logger)}
	if b.grace > 0 {
		opts = append(opts, agentwire.WithGracePeriod(b.grace))
	}
	c, err := b.dial(ctx, hd, opts...)
	if err != nil {
		return nil, fmt.Errorf("remote runtime: connect to sandbox %s on %s: %w", hd.ID, hd.Meta["host"], err)
	}
	return c, nil
}

// New checks the configuration and returns the backend. It does not
// connect to any host yet.
func New(cfg Config, opts ...Option) (*Backend, error) {
	b := &Backend{cfg: cfg, logger: slog.Default(), active: map[string]int{}}
	for _, o := range opts {
		o(b)
	}
	if len(cfg.Hosts) == 0 {
		return nil, errors.New("remote runtime: no hosts configured ([[runtime.remote.hosts]])")
	}
	names := map[string]bool{}
	for i, hc := range cfg.Hosts {
		h, err := b.newHost(hc)
		if err != nil {
			return nil, fmt.Errorf("remote runtime: hosts[%d]: %w", i, err)
		}
		if names[h.cfg.Name] {
			return nil, fmt.Errorf("remote runtime: hosts[%d]: duplicate name %q", i, h.cfg.Name)
		}
		names[h.cfg.Name] = true
		b.hosts = append(b.hosts, h)
	}
	b.agent = cfg.AgentBinary
	if b.agent == "" {
		if exe, err := os.Executable(); err == nil {
			b.agent = exe[:strings.LastIndexByte(exe, '/')+1] + "corral-agent"
		}
	}
	return b, nil
}

func (b *Backend) newHost(hc HostConfig) (*host, error) {
	h := &host{cfg: hc}
	switch hc.Mode {
	case "agent":
		if hc.Addr == "" {
			return nil, errors.New("mode agent needs addr (host:port of the corral-agent)")
		}
		if hc.Name == "" {
			h.cfg.Name = hc.Addr
		}
		h.token = hc.Token
		if hc.TokenFile != "" {
			t, err := os.ReadFile(hc.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("token_file: %w", err)
			}
			h.token = strings.TrimSpace(string(t))
		}
		if h.token == "" {
			return nil, errors.New("mode agent needs the agent's token (token or token_file)")
		}
		if hc.Plaintext {
			b.logger.Warn("remote host configured WITHOUT TLS: the token and every action cross the network in clear text",
				"host", h.cfg.Name, "addr", hc.Addr)
		} else {
			cfg, err := clientTLS(hc)
			if err != nil {
				return nil, err
			}
			h.tls = cfg
		}
		h.max = 1
	case "ssh":
		if hc.SSH.Addr == "" {
			return nil, errors.New("mode ssh needs ssh.addr (host:port of sshd)")
		}
		if hc.Name == "" {
			h.cfg.Name = hc.SSH.Addr
		}
		if hc.SSH.InsecureIgnoreHostKey {
			b.logger.Warn("remote host: SSH host key NOT checked (insecure_ignore_host_key)", "host", h.cfg.Name)
		}
		if _, err := hc.SSH.clientConfig(); err != nil {
			return nil, err
		}
		h.ssh = &sshHost{cfg: hc.SSH}
		h.max = hc.MaxSandboxes
		if h.max <= 0 {
			h.max = 16
		}
	default:
		return nil, fmt.Errorf("mode %q: want \"agent\" or \"ssh\"", hc.Mode)
	}
	return h, nil
}

func clientTLS(hc HostConfig) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if hc.CAFile != "" {
		pem, err := os.ReadFile(hc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", hc.CAFile)
		}
		cfg.RootCAs = pool
	}
	if hc.CertFile != "" || hc.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(hc.CertFile, hc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	cfg.ServerName = hc.ServerName
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(hc.Addr)
		if err != nil {
			return nil, fmt.Errorf("addr %q: %w", hc.Addr, err)
		}
		cfg.ServerName = host
	}
	return cfg, nil
}

// Name implements runtimes.Backend.
func (b *Backend) Name() string { return "remote" }

// Capabilities implements runtimes.Backend. Pause freezes an ssh sandbox's
// process group with SIGSTOP.
func (b *Backend) Capabilities() runtimes.Capabilities {
	return runtimes.Capabilities{Pause: true, Recover: true}
}

// pick reserves a slot on the least loaded host with room.
func (b *Backend) pick() (*host, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cands := make([]*host, 0, len(b.hosts))
	for _, h := range b.hosts {
		if b.active[h.cfg.Name] < h.max {
			cands = append(cands, h)
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("all %d remote hosts are at their max_sandboxes; stop a sandbox or add a host", len(b.hosts))
	}
	sort.SliceStable(cands, func(i, j int) bool {
		li := float64(b.active[cands[i].cfg.Name]) / float64(cands[i].max)
		lj := float64(b.active[cands[j].cfg.Name]) / float64(cands[j].max)
		return li < lj
	})
	h := cands[0]
	b.active[h.cfg.Name]++
	return h, nil
}

func (b *Backend) release(name string) {
	b.mu.Lock()
	if b.active[name] > 0 {
		b.active[name]--
	}
	b.mu.Unlock()
}

// Load returns the number of sandboxes placed per host.
func (b *Backend) Load() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.active))
	for k, v := range b.active {
		out[k] = v
	}
	return out
}

func (b *Backend) host(name string) (*host, error) {
	for _, h := range b.hosts {
		if h.cfg.Name == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("%w: remote host %q is not configured", runtimes.ErrNotFound, name)
}

// Start implements runtimes.Backend.
func (b *Backend) Start(ctx context.Context, spec runtimes.Spec) (*runtimes.Handle, error) {
	h, err := b.pick()
	if err != nil {
		return nil, err
	}
	hd, err := b.start(ctx, h, spec)
	if err != nil {
		b.release(h.cfg.Name)
		return nil, err
	}
	return hd, nil
}

func (b *Backend) start(ctx context.Context, h *host, spec runtimes.Spec) (*runtimes.Handle, error) {
	hd := &runtimes.Handle{Backend: "remote", SessionID: spec.SessionID, Meta: map[string]string{"host": h.cfg.Name}}
	if h.ssh == nil {
		hd.ID = h.cfg.Name
		hd.AgentAddr = h.cfg.Addr
		hd.Token = h.token
		if err := b.ping(ctx, hd); err != nil {
			return nil, fmt.Errorf("remote host %s: %w", h.cfg.Name, err)
		}
		return hd, nil
	}
	bin, err := h.ssh.ensureAgent(ctx, b.agent)
	if err != nil {
		return nil, fmt.Errorf("remote host %s: %w", h.cfg.Name, err)
	}
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	id := safeID(spec.SessionID) + "-" + hex.EncodeToString(tok[:4])
	ra, err := h.ssh.startAgent(ctx, bin, id, hex.EncodeToString(tok), spec.WorkDir, spec.Env)
	if err != nil {
		return nil, fmt.Errorf("remote host %s: %w", h.cfg.Name, err)
	}
	hd.ID = h.cfg.Name + "/" + strconv.Itoa(ra.PGID)
	hd.AgentAddr = "unix://" + ra.Socket
	hd.Token = hex.EncodeToString(tok)
	hd.Meta["pgid"] = strconv.Itoa(ra.PGID)
	hd.Meta["dir"] = ra.Dir
	hd.Workspace = ""
	return hd, nil
}

func safeID(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
		if b.Len() >= 32 {
			break
		}
	}
	if b.Len() == 0 {
		return "sandbox"
	}
	return b.String()
}

// dialOptions returns the agentwire options that reach the agent of h (TLS
// for agent-mode hosts, the SSH tunnel for ssh hosts).
func (b *Backend) dialOptions(hd *runtimes.Handle) ([]agentwire.DialOption, error) {
	h, err := b.host(hd.Meta["host"])
	if err != nil {
		return nil, err
	}
	if h.ssh != nil {
		sock := strings.TrimPrefix(hd.AgentAddr, "unix://")
		return []agentwire.DialOption{agentwire.WithDialer(func(ctx context.Context) (net.Conn, error) {
			return h.ssh.dialUnix(ctx, sock)
		})}, nil
	}
	if h.tls != nil {
		return []agentwire.DialOption{agentwire.WithTLS(h.tls)}, nil
	}
	return nil, nil
}

// dial connects an agentwire client to the agent of hd.
func (b *Backend) dial(ctx context.Context, hd *runtimes.Handle, extra ...agentwire.DialOption) (*agentwire.Client, error) {
	opts, err := b.dialOptions(hd)
	if err != nil {
		return nil, err
	}
	return agentwire.Dial(ctx, hd.AgentAddr, hd.Token, append(opts, extra...)...)
}

func (b *Backend) ping(ctx context.Context, hd *runtimes.Handle) error {
	c, err := b.dial(ctx, hd, agentwire.WithGracePeriod(0))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Alive(ctx)
}

// Recover implements runtimes.Backend.
func (b *Backend) Recover(ctx context.Context, hd *runtimes.Handle) (*runtimes.Handle, error) {
	h, err := b.host(hd.Meta["host"])
	if err != nil {
		return nil, err
	}
	if h.ssh != nil {
		pgid, _ := strconv.Atoi(hd.Meta["pgid"])
		ok, err := h.ssh.alive(ctx, pgid)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: agent process group %d on %s has exited", runtimes.ErrNotFound, pgid, h.cfg.Name)
		}
	}
	if err := b.ping(ctx, hd); err != nil {
		return nil, fmt.Errorf("%w: %v", runtimes.ErrNotFound, err)
	}
	b.mu.Lock()
	b.active[h.cfg.Name]++ // a recovered sandbox occupies its slot again
	b.mu.Unlock()
	return hd, nil
}

// Stop implements runtimes.Backend: the ssh agent's process group is
// terminated. An agent-mode host's agent belongs to its operator and is left
// running; only the slot is released (by Destroy).
func (b *Backend) Stop(ctx context.Context, hd *runtimes.Handle, _ time.Duration) error {
	h, err := b.host(hd.Meta["host"])
	if err != nil {
		return err
	}
	// After the kill: an ssh agent ends its own log stream with its last
	// words; only an agent-mode host's (which keeps running) needs this.
	defer b.readers.end(hd.ID)
	if h.ssh == nil {
		return nil
	}
	pgid, _ := strconv.Atoi(hd.Meta["pgid"])
	return h.ssh.killGroup(ctx, pgid)
}

// Destroy implements runtimes.Backend.
func (b *Backend) Destroy(ctx context.Context, hd *runtimes.Handle) error {
	h, err := b.host(hd.Meta["host"])
	if err != nil {
		return err
	}
	defer b.release(h.cfg.Name)
	if h.ssh == nil {
		b.readers.end(hd.ID)
		return nil
	}
	if err := b.Stop(ctx, hd, 0); err != nil {
		return err
	}
	if dir := hd.Meta["dir"]; dir != "" && !h.cfg.KeepWorkspace {
		if !strings.HasPrefix(dir, h.ssh.cfg.agentDir()+"/run/") {
			return fmt.Errorf("refusing to remove %q: not under %s/run", dir, h.ssh.cfg.agentDir())
		}
		if _, err := h.ssh.run(ctx, "rm -rf "+shellQuote(dir), nil); err != nil {
			return err
		}
	}
	return nil
}

// Pause implements runtimes.Backend (ssh hosts: SIGSTOP to the group).
func (b *Backend) Pause(ctx context.Context, hd *runtimes.Handle) error {
	return b.signal(ctx, hd, "STOP")
}

// Resume implements runtimes.Backend (ssh hosts: SIGCONT to the group).
func (b *Backend) Resume(ctx context.Context, hd *runtimes.Handle) error {
	return b.signal(ctx, hd, "CONT")
}

func (b *Backend) signal(ctx context.Context, hd *runtimes.Handle, sig string) error {
	h, err := b.host(hd.Meta["host"])
	if err != nil {
		return err
	}
	if h.ssh == nil {
		return fmt.Errorf("%w: pausing an agent-mode host (its agent belongs to the operator)", runtimes.ErrNotSupported)
	}
	pgid, _ := strconv.Atoi(hd.Meta["pgid"])
	if pgid <= 1 {
		return fmt.Errorf("bad process group %q in handle", hd.Meta["pgid"])
	}
	_, err = h.ssh.run(ctx, fmt.Sprintf("kill -%s -%d", sig, pgid), nil)
	return err
}

// Inspect implements runtimes.Backend.
func (b *Backend) Inspect(ctx context.Context, hd *runtimes.Handle) (runtimes.State, error) {
	h, err := b.host(hd.Meta["host"])
	if err != nil {
		return runtimes.State{}, err
	}
	if h.ssh != nil {
		pgid, _ := strconv.Atoi(hd.Meta["pgid"])
		ok, err := h.ssh.alive(ctx, pgid)
		if err != nil {
			return runtimes.State{}, err
		}
		if !ok {
			return runtimes.State{Exit: &runtimes.Exit{Code: -1, Reason: "agent process group exited"}}, nil
		}
		return runtimes.State{Running: true}, nil
	}
	if err := b.ping(ctx, hd); err != nil {
		return runtimes.State{Exit: &runtimes.Exit{Code: -1, Reason: err.Error()}}, nil
	}
	return runtimes.State{Running: true}, nil
}

// Wait implements runtimes.Backend by polling the host every two seconds;
// the agentwire connection's own heartbeat notices a lost agent sooner.
func (b *Backend) Wait(ctx context.Context, hd *runtimes.Handle) (<-chan runtimes.Exit, error) {
	if _, err := b.host(hd.Meta["host"]); err != nil {
		return nil, err
	}
	ch := make(chan runtimes.Exit, 1)
	go func() {
		defer close(ch)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
			st, err := b.Inspect(ictx, hd)
			cancel()
			if err == nil && st.Exit != nil {
				ch <- *st.Exit
				return
			}
		}
	}()
	return ch, nil
}

// Close drops the SSH connections.
func (b *Backend) Close() error {
	for _, h := range b.hosts {
		if h.ssh != nil {
			h.ssh.close()
		}
	}
	return nil
}

var _ runtimes.Backend = (*Backend)(nil)
