package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/client-go/rest"

	"corral/eventbus"
	"corral/runtimes"
	"corral/transport/agentwire"
)

// connBackend makes a backend on the test cluster (main_test.go's
// newBackend) that reaches agents as mode says; rc, when not nil, replaces
// the kubeconfig's REST config.
func connBackend(t testing.TB, mode string, rc *rest.Config) *Backend {
	t.Helper()
	opts := []Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	if testing.Verbose() {
		opts[0] = WithLogger(slog.Default())
	}
	if rc != nil {
		opts = append(opts, WithRESTConfig(rc))
	}
	return newBackend(t, func(c *Config) { c.Connect = mode }, opts...)
}

// connStart starts a sandbox (main_test.go's start, which destroys it at
// the end of the test) and checks that its pod is gone afterwards.
func connStart(t testing.TB, b *Backend, session string) *runtimes.Handle {
	t.Helper()
	var h *runtimes.Handle
	// Registered before start's Destroy, so it runs after it.
	t.Cleanup(func() {
		if h != nil && !podGone(t, b.cfg.Namespace, h.ID) {
			t.Errorf("pod %s/%s still exists after Destroy", b.cfg.Namespace, h.ID)
		}
	})
	h = start(t, b, runtimes.Spec{SessionID: session})
	return h
}

// connLeakOpts are the goroutine-leak options of the connection tests:
// what ran before the connection, and the API client's pooled HTTP
// connections (client-go caches its transport for the process; a cut
// makes the pod watch dial a new one, which stays idle in that pool).
func connLeakOpts(ignore goleak.Option) []goleak.Option {
	return []goleak.Option{ignore,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*http2ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
	}
}

// connSettle waits until no port-forward stream of b is being opened: a
// dial abandoned when its ctx ended leaves CreateStream waiting for a
// reply, at most its 30 s timeout.
func connSettle(t testing.TB, b *Backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	if err := b.fwd.opening.wait(ctx); err != nil {
		t.Errorf("port-forward streams never settled: %v", err)
	}
}

// cmdEvent is a confirmed bash action with a hard timeout.
func cmdEvent(command string, timeout float64) *eventbus.Event {
	ev := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{
		Command: command, ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
	ev.ID = 1
	ev.SetHardTimeout(timeout, false)
	return ev
}

// runCmd runs command on c and returns the observation's content.
func runCmd(t testing.TB, c runtimes.AgentConn, command string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obs, err := c.Execute(ctx, "", cmdEvent(command, 30), nil)
	if err != nil {
		t.Fatalf("%q: %v", command, err)
	}
	return obs.Content
}

// cutProxy is a loopback TCP proxy to the API server that the test owns:
// Cut closes every connection through it, as a restarted API server or a
// dropped network would, while new connections still get through.
type cutProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	conns    map[net.Conn]bool
	accepted int
	wg       sync.WaitGroup
}

func newCutProxy(t testing.TB, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = true, true
		p.accepted++
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes every open connection and returns how many there were.
func (p *cutProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for c := range p.conns {
		c.Close()
	}
	return n
}

func (p *cutProxy) acceptedSoFar() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// proxiedConfig is the kubeconfig's REST config sent through a new
// cutProxy (TLS still verified against the API server's name).
func proxiedConfig(t testing.TB) (*rest.Config, *cutProxy) {
	t.Helper()
	needCluster(t)
	rc := env.rest
	u, err := url.Parse(rc.Host)
	if err != nil {
		t.Fatalf("kubeconfig server %q: %v", rc.Host, err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "443")
	}
	p := newCutProxy(t, target)
	rc = rest.CopyConfig(rc)
	if rc.TLSClientConfig.ServerName == "" {
		rc.TLSClientConfig.ServerName = u.Hostname()
	}
	rc.Host = "https://" + p.ln.Addr().String()
	return rc, p
}

// numberedOutput checks that out holds line-1..line-n, each once, in
// order, and returns n.
func numberedOutput(t *testing.T, out string) int {
	t.Helper()
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), "line-")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(v)
		if err != nil || i != n+1 {
			t.Fatalf("output line %q after line-%d: want line-%d (a chunk lost or repeated)\n%s", l, n, n+1, out)
		}
		n = i
	}
	return n
}

// TestPortForwardCutMidCommandDeliversEveryChunkOnce cuts the
// port-forward twice while a command prints numbered lines: every TCP
// connection to the API server (through a loopback proxy the test owns, as
// an API server restart or a network drop would), or the upgraded
// connection itself (as a reset stream would). The agentwire client
// reconnects through a fresh port-forward each time and resumes, so every
// chunk arrives once, in order, and the observation is complete. Closing
// the connection and the backend leaves no goroutine behind.
func TestPortForwardCutMidCommandDeliversEveryChunkOnce(t *testing.T) {
	tests := []struct {
		name string
		cut  func(b *Backend, p *cutProxy) int
	}{
		{"EveryAPIServerConnectionDropped", func(_ *Backend, p *cutProxy) int { return p.cut() }},
		{"UpgradedConnectionClosed", func(b *Backend, _ *cutProxy) int { return b.fwd.cut() }},
	}
	lifecycle := connBackend(t, ConnectPortForward, nil)
	h := connStart(t, lifecycle, "pf-cut")
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, proxy := proxiedConfig(t)
			b := connBackend(t, ConnectPortForward, rc)
			release := fmt.Sprintf("corral-release-%d", i)
			cutMidCommand(t, lifecycle, b, h, release, func() int { return tc.cut(b, proxy) }, proxy)
		})
	}
}

// chunkLog records live output, checking that seqs run 1, 2, 3, ...
type chunkLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	lastSeq uint64
	err     error
	changed chan struct{}
}

func (l *chunkLog) add(seq uint64, data []byte) {
	l.mu.Lock()
	if seq != l.lastSeq+1 && l.err == nil {
		l.err = fmt.Errorf("chunk seq %d after %d", seq, l.lastSeq)
	}
	l.lastSeq = seq
	l.buf.Write(data)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *chunkLog) lines() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), "\n")
}

// waitLines waits until n lines have streamed.
func (l *chunkLog) waitLines(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for l.lines() < n {
		select {
		case <-l.changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %d output lines: %v (have %d)", n, ctx.Err(), l.lines())
		}
	}
}

// cutMidCommand runs a command that prints until the file /tmp/release
// exists over a connection of b, cuts twice while it prints, then
// releases it through lifecycle's own connection and checks the output.
func cutMidCommand(t *testing.T, lifecycle, b *Backend, h *runtimes.Handle, release string, cut func() int, proxy *cutProxy) {
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := b.Connect(ctx, h)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	// Bounded at 60 s should the release never come.
	command := fmt.Sprintf("for i in $(seq 1 600); do echo line-$i; [ -e /tmp/%s ] && break; sleep 0.1; done", release)
	log := &chunkLog{changed: make(chan struct{}, 1)}
	type result struct {
		obs *eventbus.Event
		err error
	}
	done := make(chan result, 1)
	go func() {
		obs, err := c.Execute(ctx, "", cmdEvent(command, 120), log.add)
		done <- result{obs, err}
	}()
	var cuts []int
	for range 2 {
		log.waitLines(t, ctx, log.lines()+5)
		before := proxy.acceptedSoFar()
		if n := cut(); n == 0 {
			t.Fatal("no connection to cut")
		}
		cuts = append(cuts, log.lines())
		log.waitLines(t, ctx, log.lines()+5) // output flows again
		if proxy.acceptedSoFar() == before {
			t.Fatal("output continued but no new connection reached the API server")
		}
	}
	rel, err := lifecycle.Connect(ctx, h)
	if err != nil {
		t.Fatalf("second connection: %v", err)
	}
	if err := rel.Upload(ctx, "/tmp", strings.NewReader(""), release, false); err != nil {
		t.Fatalf("upload of the release file: %v", err)
	}
	rel.Close()
	r := <-done
	if r.err != nil {
		t.Fatalf("Execute across the cuts: %v", r.err)
	}
	log.mu.Lock()
	streamed, serr := log.buf.String(), log.err
	log.mu.Unlock()
	if serr != nil {
		t.Fatal(serr)
	}
	n := numberedOutput(t, streamed)
	if got := numberedOutput(t, r.obs.Content); got != n {
		t.Fatalf("observation has line-1..line-%d, streamed chunks line-1..line-%d", got, n)
	}
	t.Logf("cut after lines %v of %d; the proxy accepted %d connections", cuts, n, proxy.acceptedSoFar())
	c.Close()
	if got := b.fwd.open(); got != 0 {
		t.Errorf("%d port-forwards open after Close", got)
	}
	b.Close()
	connSettle(t, b)
	goleak.VerifyNone(t, connLeakOpts(ignore)...)
}

// TestConnectClosesCleanly connects both ways, runs a command, and checks
// that Close leaves no port-forward and no goroutine.
func TestConnectClosesCleanly(t *testing.T) {
	for _, mode := range []string{ConnectPortForward, ConnectPodIP} {
		t.Run(mode, func(t *testing.T) {
			b := connBackend(t, mode, nil)
			h := connStart(t, b, "close-"+mode)
			ignore := goleak.IgnoreCurrent()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			conns := make([]runtimes.AgentConn, 3)
			for i := range conns {
				c, err := b.Connect(ctx, h)
				if err != nil {
					t.Fatalf("Connect %d: %v", i, err)
				}
				conns[i] = c
			}
			if b.fwd.open() > 1 {
				t.Errorf("%d port-forwards for one pod, want at most 1", b.fwd.open())
			}
			for i, c := range conns {
				if got := runCmd(t, c, "echo hi-"+strconv.Itoa(i)); !strings.Contains(got, "hi-"+strconv.Itoa(i)) {
					t.Errorf("echo over connection %d: %q", i, got)
				}
				c.Close()
			}
			if got := b.fwd.open(); got != 0 {
				t.Errorf("%d port-forwards open after every connection closed", got)
			}
			connSettle(t, b)
			goleak.VerifyNone(t, connLeakOpts(ignore)...)
		})
	}
}

// TestWaitAgentNamesWhyTheAgentCannotBeReached: a port nothing listens on
// gives the kubelet's reason once ctx ends; a wrong token fails at once.
func TestWaitAgentNamesWhyTheAgentCannotBeReached(t *testing.T) {
	b := connBackend(t, ConnectPortForward, nil)
	h := connStart(t, b, "wait-agent")
	tests := []struct {
		name string
		edit func(h *runtimes.Handle)
		ctx  time.Duration
		want string
		is   error
	}{
		{"NothingListensOnThePort", func(h *runtimes.Handle) { h.AgentAddr = "127.0.0.1:7" }, 3 * time.Second, "connection refused", context.DeadlineExceeded},
		{"WrongTokenFailsAtOnce", func(h *runtimes.Handle) { h.Token = "wrong" }, time.Minute, "401", agentwire.ErrUnauthorized},
		{"PodThatDoesNotExist", func(h *runtimes.Handle) { h.ID = "corral-no-such-pod" }, 3 * time.Second, "corral-no-such-pod", context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hh := *h
			hh.Meta = map[string]string{}
			for k, v := range h.Meta {
				hh.Meta[k] = v
			}
			tc.edit(&hh)
			ctx, cancel := context.WithTimeout(context.Background(), tc.ctx)
			defer cancel()
			err := b.waitAgent(ctx, &hh)
			if err == nil || !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("waitAgent = %v, want an error matching %v that says %q", err, tc.is, tc.want)
			}
			t.Logf("error: %v", err)
		})
	}
	if err := b.waitAgent(context.Background(), h); err != nil {
		t.Fatalf("waitAgent on the running sandbox: %v", err)
	}
	connSettle(t, b)
}

// TestConnectRefusesBadHandles: handles Connect cannot use are refused
// with what is wrong, before anything is dialled.
func TestConnectRefusesBadHandles(t *testing.T) {
	b := &Backend{cfg: DefaultConfig()}
	tests := []struct {
		name string
		h    *runtimes.Handle
		want string
	}{
		{"NilHandle", nil, "names no pod"},
		{"NoPod", &runtimes.Handle{AgentAddr: "127.0.0.1:7777"}, "names no pod"},
		{"AddressWithoutPort", &runtimes.Handle{ID: "p", AgentAddr: "10.0.0.1"}, "not host:port"},
		{"PortOutOfRange", &runtimes.Handle{ID: "p", AgentAddr: "10.0.0.1:70000"}, "not host:port"},
		{"PodIPWithoutAddress", &runtimes.Handle{ID: "p", Meta: map[string]string{metaConnect: ConnectPodIP}}, "no agent address"},
		{"UnknownConnectMode", &runtimes.Handle{ID: "p", Meta: map[string]string{metaConnect: "carrier-pigeon"}}, `"carrier-pigeon"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Connect(context.Background(), tc.h)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestPortForwardSharesOneUpgradedConnection: connections to one pod used
// concurrently all travel over a single upgraded connection to the API
// server (counted at a proxy the test owns), one stream pair each.
func TestPortForwardSharesOneUpgradedConnection(t *testing.T) {
	lifecycle := connBackend(t, ConnectPortForward, nil)
	h := connStart(t, lifecycle, "pf-shared")
	rc, proxy := proxiedConfig(t)
	b := connBackend(t, ConnectPortForward, rc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := proxy.acceptedSoFar()
	const conns, calls = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, conns*calls)
	for i := range conns {
		c, err := b.Connect(ctx, h)
		if err != nil {
			t.Fatalf("Connect %d: %v", i, err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range calls {
				want := fmt.Sprintf("conn-%d-call-%d", i, j)
				obs, err := c.Execute(ctx, "", cmdEvent("echo "+want, 30), nil)
				switch {
				case err != nil:
					errs <- fmt.Errorf("%s: %w", want, err)
				case !strings.Contains(obs.Content, want):
					errs <- fmt.Errorf("%s: got %q", want, obs.Content)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := proxy.acceptedSoFar() - before; got != 1 {
		t.Errorf("%d new connections to the API server for %d agent connections to one pod, want 1 shared upgraded connection", got, conns)
	}
	if got := b.fwd.open(); got != 1 {
		t.Errorf("%d port-forwards held for one pod, want 1", got)
	}
}
