package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHConfig says how to reach one host over SSH.
type SSHConfig struct {
	Addr       string `toml:"addr"`        // host:port of sshd
	User       string `toml:"user"`        // login user
	KeyFile    string `toml:"key_file"`    // private key (PEM/OpenSSH), unencrypted
	KnownHosts string `toml:"known_hosts"` // known_hosts file; default ~/.ssh/known_hosts
	// InsecureIgnoreHostKey skips host-key checking. Only for throwaway test
	// hosts; a warning is logged when it is set.
	InsecureIgnoreHostKey bool `toml:"insecure_ignore_host_key"`
	// AgentDir is where the agent binary and per-sandbox directories live on
	// the host; default /tmp/corral.
	AgentDir string `toml:"agent_dir"`
}

func (c SSHConfig) agentDir() string {
	if c.AgentDir == "" {
		return "/tmp/corral"
	}
	return strings.TrimRight(c.AgentDir, "/")
}

// sshHost is one SSH connection, re-dialled when it breaks.
type sshHost struct {
	cfg SSHConfig

	mu     sync.Mutex
	client *ssh.Client
}

func (c SSHConfig) clientConfig() (*ssh.ClientConfig, error) {
	if c.Addr == "" || c.User == "" || c.KeyFile == "" {
		return nil, errors.New("ssh host needs addr, user and key_file")
	}
	pem, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("ssh key for %s: %w", c.Addr, err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w (an unencrypted private key is needed)", c.KeyFile, err)
	}
	var hostKey ssh.HostKeyCallback
	if c.InsecureIgnoreHostKey {
		hostKey = ssh.InsecureIgnoreHostKey()
	} else {
		path := c.KnownHosts
		if path == "" {
			home, _ := os.UserHomeDir()
			path = home + "/.ssh/known_hosts"
		}
		cb, err := knownhosts.New(path)
		if err != nil {
			return nil, fmt.Errorf("known_hosts for %s: %w (add the host with ssh-keyscan, or set known_hosts)", c.Addr, err)
		}
		hostKey = func(host string, remote net.Addr, key ssh.PublicKey) error {
			if err := cb(host, remote, key); err != nil {
				var ke *knownhosts.KeyError
				if errors.As(err, &ke) && len(ke.Want) == 0 {
					return fmt.Errorf("host key of %s is not in %s: add it (ssh-keyscan -p PORT HOST >> %s) after checking its fingerprint %s",
						host, path, path, ssh.FingerprintSHA256(key))
				}
				if errors.As(err, &ke) {
					return fmt.Errorf("host key of %s does not match %s (possible man-in-the-middle): got %s", host, path, ssh.FingerprintSHA256(key))
				}
				return err
			}
			return nil
		}
	}
	return &ssh.ClientConfig{
		User:            c.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKey,
		Timeout:         10 * time.Second,
	}, nil
}

// conn returns a live client, dialling when there is none.
func (h *sshHost) conn(ctx context.Context) (*ssh.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client != nil {
		return h.client, nil
	}
	cc, err := h.cfg.clientConfig()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", h.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", h.cfg.Addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	c, chans, reqs, err := ssh.NewClientConn(raw, h.cfg.Addr, cc)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("ssh %s: %w", h.cfg.Addr, err)
	}
	_ = raw.SetDeadline(time.Time{})
	client := ssh.NewClient(c, chans, reqs)
	h.client = client
	go func() {
		// Forget the client once the connection dies so the next call redials.
		_ = client.Wait()
		h.mu.Lock()
		if h.client == client {
			h.client = nil
		}
		h.mu.Unlock()
	}()
	return client, nil
}

// run runs cmd on the host (through the login shell) with stdin, and returns
// its stdout. A non-zero exit is an error carrying stderr.
func (h *sshHost) run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	c, err := h.conn(ctx)
	if err != nil {
		return nil, err
	}
	s, err := c.NewSession()
	if err != nil {
		h.drop(c)
		return nil, fmt.Errorf("ssh %s: new session: %w", h.cfg.Addr, err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &out, &errb, stdin
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		s.Close()
		<-done
		return nil, fmt.Errorf("ssh %s: %q: %w", h.cfg.Addr, firstWord(cmd), ctx.Err())
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("ssh %s: %q failed: %w: %s", h.cfg.Addr, firstWord(cmd), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func (h *sshHost) drop(c *ssh.Client) {
	h.mu.Lock()
	if h.client == c {
		h.client = nil
	}
	h.mu.Unlock()
	c.Close()
}

// dialUnix opens a stream to a unix socket on the host, tunnelled through
// the SSH connection (OpenSSH's direct-streamlocal channel).
func (h *sshHost) dialUnix(ctx context.Context, path string) (net.Conn, error) {
	c, err := h.conn(ctx)
	if err != nil {
		return nil, err
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		conn, err := c.Dial("unix", path)
		ch <- result{conn, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("ssh %s: tunnel to %s: %w", h.cfg.Addr, path, r.err)
		}
		return r.c, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (h *sshHost) close() {
	h.mu.Lock()
	c := h.client
	h.client = nil
	h.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// ensureAgent uploads the local agent binary to the host unless an identical
// copy (same SHA-256) is already there, and returns the remote path.
func (h *sshHost) ensureAgent(ctx context.Context, localPath string) (string, error) {
	data, err := os.ReadFile(localPath)
	if err != nil {
		return "", fmt.Errorf("agent binary: %w (build it with `make build`)", err)
	}
	sum := sha256.Sum256(data)
	hexsum := hex.EncodeToString(sum[:])
	dir := h.cfg.agentDir()
	remote := dir + "/bin/corral-agent-" + hexsum[:16]
	out, err := h.run(ctx, "sha256sum "+shellQuote(remote)+" 2>/dev/null || true", nil)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(string(out), hexsum) {
		return remote, nil
	}
	tmp := remote + ".tmp." + strconv.FormatInt(time.Now().UnixNano(), 36)
	cmd := fmt.Sprintf("umask 077 && mkdir -p %s && cat > %s && chmod 755 %s && mv -f %s %s",
		shellQuote(dir+"/bin"), shellQuote(tmp), shellQuote(tmp), shellQuote(tmp), shellQuote(remote))
	if _, err := h.run(ctx, cmd, bytes.NewReader(data)); err != nil {
		return "", fmt.Errorf("upload agent: %w", err)
	}
	out, err = h.run(ctx, "sha256sum "+shellQuote(remote), nil)
	if err != nil || !strings.HasPrefix(string(out), hexsum) {
		return "", fmt.Errorf("upload agent to %s: checksum mismatch after upload (%v)", h.cfg.Addr, err)
	}
	return remote, nil
}

// remoteAgent is an agent process started on the host.
type remoteAgent struct {
	Dir    string // per-sandbox directory
	Socket string // unix socket path on the host
	PGID   int    // process group (the agent is a session leader)
}

// startAgent starts the agent in its own session/process group on the host,
// listening on a unix socket, and waits until the socket accepts.
func (h *sshHost) startAgent(ctx context.Context, bin, id, token, workdir string, env map[string]string) (*remoteAgent, error) {
	dir := h.cfg.agentDir() + "/run/" + id
	sock := dir + "/agent.sock"
	if workdir == "" {
		workdir = dir + "/workspace"
	}
	var envs strings.Builder
	for k, v := range env {
		envs.WriteString(shellQuote(k + "=" + v))
		envs.WriteByte(' ')
	}
	if _, ok := env["HOME"]; !ok {
		// A home of its own per sandbox: OpenHands' env persistence appends
		// to ~/.bashrc, which must not leak between sandboxes on one host.
		envs.WriteString(shellQuote("HOME=" + dir + "/home"))
		envs.WriteByte(' ')
	}
	// The token goes through a 0600 file, never the command line (ps shows
	// it). The shell waits (in the same SSH round trip) for the agent's
	// "listening on" line, which it prints once its executor is ready.
	cmd := fmt.Sprintf(`set -e; umask 077; mkdir -p %[1]s %[2]s %[1]s/home; cat > %[1]s/token; `+
		`env %[5]s setsid %[3]s --listen %[4]s --token-file %[1]s/token --workdir %[2]s >%[1]s/agent.log 2>&1 </dev/null & pid=$!; `+
		`i=0; while [ $i -lt 6000 ]; do grep -q '^listening on' %[1]s/agent.log 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; i=$((i+1)); done; `+
		`if grep -q '^listening on' %[1]s/agent.log; then echo $pid; else echo FAILED; tail -c 2000 %[1]s/agent.log; kill -KILL -$pid 2>/dev/null; fi`,
		shellQuote(dir), shellQuote(workdir), shellQuote(bin), shellQuote("unix://"+sock), envs.String())
	out, err := h.run(ctx, cmd, strings.NewReader(token))
	if err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	if rest, failed := strings.CutPrefix(string(out), "FAILED\n"); failed {
		return nil, fmt.Errorf("agent on %s did not start: %s", h.cfg.Addr, strings.TrimSpace(rest))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return nil, fmt.Errorf("start agent on %s: unexpected output %q", h.cfg.Addr, out)
	}
	ra := &remoteAgent{Dir: dir, Socket: sock, PGID: pid}
	c, err := h.dialUnix(ctx, sock)
	if err != nil {
		_ = h.killGroup(context.Background(), pid)
		return nil, fmt.Errorf("agent on %s listens but its socket is unreachable through SSH: %w", h.cfg.Addr, err)
	}
	c.Close()
	return ra, nil
}

// killGroup ends the agent's process group: TERM, then KILL after a grace.
func (h *sshHost) killGroup(ctx context.Context, pgid int) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	cmd := fmt.Sprintf(`kill -TERM -%[1]d 2>/dev/null || exit 0; for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 -%[1]d 2>/dev/null || exit 0; sleep 0.2; done; kill -KILL -%[1]d 2>/dev/null; exit 0`, pgid)
	_, err := h.run(ctx, cmd, nil)
	return err
}

// alive reports whether any process of the group still runs.
func (h *sshHost) alive(ctx context.Context, pgid int) (bool, error) {
	out, err := h.run(ctx, fmt.Sprintf("kill -0 -%d 2>/dev/null && echo yes || echo no", pgid), nil)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(out)) == "yes", nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func firstWord(cmd string) string {
	if i := strings.IndexAny(cmd, " ;"); i > 0 {
		return cmd[:i]
	}
	return cmd
}
