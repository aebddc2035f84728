package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"corral/runtimes"
	"corral/transport/agentwire"
)

// Heartbeats of agent connections. A port-forward crosses the API server
// and the kubelet, both busy on a small node: a few seconds of silence is
// load, not death (a dead pod is seen by the pod watch; a dropped
// port-forward ends its streams at once).
const (
	heartbeatInterval = 2 * time.Second
	heartbeatTimeout  = 10 * time.Second
)

// Bounds of waitAgent's retries while the agent is not listening yet.
const (
	waitAttemptTimeout = 10 * time.Second
	waitBackoffMin     = 50 * time.Millisecond
	waitBackoffMax     = 500 * time.Millisecond
)

var _ runtimes.HTTPAgent = (*agentConn)(nil)

// agentConn is an agentwire client that gives back its pod's port-forward
// reference when closed. Embedding keeps the client's HTTP API (RoundTrip)
// and Resume.
type agentConn struct {
	*agentwire.Client
	release func()
	once    sync.Once
}

// Close closes the client, then releases the port-forward (the last
// connection to a pod closes its upgraded connection).
func (c *agentConn) Close() error {
	err := c.Client.Close()
	c.once.Do(c.release)
	return err
}

// Connect opens an agentwire connection to h's agent (h from Start or
// Recover): through the API server's port-forward, or straight to the pod
// IP, as h.Meta["connect"] says (default: the backend's connect setting).
func (b *Backend) Connect(ctx context.Context, h *runtimes.Handle) (runtimes.AgentConn, error) {
	c, err := b.dial(ctx, h, b.dialOptions()...)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (b *Backend) dialOptions() []agentwire.DialOption {
	opts := []agentwire.DialOption{
		agentwire.WithClientLogger(b.logger),
		agentwire.WithClientHeartbeat(heartbeatInterval, heartbeatTimeout),
	}
	if b.o.grace > 0 {
		opts = append(opts, agentwire.WithGracePeriod(b.o.grace))
	}
	return opts
}

// dial connects an agentwire client to h's agent with opts.
func (b *Backend) dial(ctx context.Context, h *runtimes.Handle, opts ...agentwire.DialOption) (*agentConn, error) {
	t, err := b.target(h)
	if err != nil {
		return nil, err
	}
	release := func() {}
	if t.mode == ConnectPortForward {
		var pf *podForward
		pf, release = b.holdForward(h, t)
		opts = append(opts, agentwire.WithDialer(pf.dial))
	}
	c, err := agentwire.Dial(ctx, t.addr, h.Token, opts...)
	if err != nil {
		release()
		return nil, fmt.Errorf("kubernetes backend: connect to the agent of pod %s/%s (session %s, %s): %w", t.ns, h.ID, h.SessionID, t.mode, err)
	}
	return &agentConn{Client: c, release: release}, nil
}

// holdForward takes a reference on the port-forward of h's pod; release
// gives it back.
func (b *Backend) holdForward(h *runtimes.Handle, t target) (pf *podForward, release func()) {
	u := b.client.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(t.ns).Name(h.ID).SubResource("portforward").URL()
	pf = b.fwd.acquire(b.rest, u, t.ns, h.ID, t.port)
	return pf, func() { b.fwd.release(pf) }
}

// target is where and how a handle's agent is reached.
type target struct {
	mode string // ConnectPortForward or ConnectPodIP
	ns   string
	addr string // host:port for agentwire (the pod IP's, or a name)
	port int    // the agent's port inside the pod
}

// target reads the handle: connect mode, namespace and agent port.
func (b *Backend) target(h *runtimes.Handle) (target, error) {
	if h == nil || h.ID == "" {
		return target{}, errors.New("kubernetes backend: connect: the handle names no pod; pass a handle from Start or Recover")
	}
	t := target{mode: h.Meta[metaConnect], ns: h.Meta[metaNamespace], addr: h.AgentAddr, port: b.cfg.AgentPort}
	if t.mode == "" {
		t.mode = b.cfg.Connect
	}
	if t.ns == "" {
		t.ns = b.cfg.Namespace
	}
	if h.AgentAddr != "" {
		_, p, err := net.SplitHostPort(h.AgentAddr)
		port, perr := strconv.Atoi(p)
		if err != nil || perr != nil || port <= 0 || port > 65535 {
			return target{}, fmt.Errorf("kubernetes backend: pod %s/%s: agent address %q is not host:port; pass a handle from Start or Recover", t.ns, h.ID, h.AgentAddr)
		}
		t.port = port
	}
	switch t.mode {
	case ConnectPortForward:
		if t.addr == "" {
			t.addr = net.JoinHostPort(h.ID+"."+t.ns, strconv.Itoa(t.port))
		}
	case ConnectPodIP:
		if t.addr == "" {
			return target{}, fmt.Errorf("kubernetes backend: pod %s/%s: connect = %q but the handle has no agent address (the pod IP); Recover the handle once the pod runs", t.ns, h.ID, ConnectPodIP)
		}
	default:
		return target{}, fmt.Errorf("kubernetes backend: pod %s/%s: handle meta connect = %q: want %q or %q", t.ns, h.ID, t.mode, ConnectPortForward, ConnectPodIP)
	}
	return t, nil
}

// waitAgent dials h's agent until its hello succeeds: a Running pod's
// agent may not listen yet. A wrong token or protocol fails at once; other
// failures are retried until ctx ends, whose error then carries the last.
func (b *Backend) waitAgent(ctx context.Context, h *runtimes.Handle) error {
	delay := waitBackoffMin
	var lastErr error
	t0 := time.Now()
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, waitAttemptTimeout)
		c, err := b.dial(actx, h, agentwire.WithClientLogger(b.logger), agentwire.WithGracePeriod(0))
		cancel()
		if err == nil {
			b.logger.Debug("agent answered", "pod", h.ID, "attempts", attempt, "after", time.Since(t0))
			return c.Close()
		}
		if errors.Is(err, agentwire.ErrUnauthorized) || errors.Is(err, agentwire.ErrVersionMismatch) {
			return err
		}
		// An attempt cut short by ctx says less than the one before it
		// (the kubelet's "connection refused", the API server's "not found").
		if ctx.Err() == nil || lastErr == nil {
			lastErr = err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("kubernetes backend: the agent of pod %s did not answer: %w (last error: %v)", h.ID, ctx.Err(), lastErr)
		case <-t.C:
		}
		delay = min(2*delay, waitBackoffMax)
	}
}
