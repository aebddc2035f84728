package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// A port-forward is one upgraded connection to the API server's
// pods/portforward subresource of a pod (a websocket tunnel carrying SPDY,
// or plain SPDY on servers without the tunnel). Each dial opens one
// error/data stream pair on it, as kubectl's port-forward does for each
// accepted local connection, but without a local listener: the data stream
// is the net.Conn agentwire speaks over. The connection is shared by every
// dial to the pod and re-established by the first dial after it drops, so
// agentwire's reconnect after an API server restart finds a fresh one.

// errStreamWait bounds how long a data stream's EOF waits for the error
// stream's message (the kubelet writes why it could not reach the port,
// then closes both streams).
const errStreamWait = time.Second

// streamReplyGrace is how long a stream being opened when its dial's ctx
// ends may still get its reply before the connection is judged dead.
const streamReplyGrace = 2 * time.Second

// forwarders holds the port-forward of every pod the backend has open
// connections to, reference counted: the last release closes it. The zero
// value is ready to use.
type forwarders struct {
	mu sync.Mutex
	m  map[string]*podForward // by namespace/pod
	// opening counts the streams being opened on any port-forward, also
	// those abandoned by a dial whose ctx ended (they end within
	// CreateStream's 30 s reply timeout).
	opening openings
}

// acquire returns the pod's port-forward, taking a reference that release
// gives back.
func (f *forwarders) acquire(rc *rest.Config, podURL *url.URL, ns, pod string, port int) *podForward {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := ns + "/" + pod + ":" + strconv.Itoa(port)
	if f.m == nil {
		f.m = map[string]*podForward{}
	}
	pf := f.m[key]
	if pf == nil {
		pf = &podForward{
			key: key, rest: rc, url: podURL, ns: ns, pod: pod, port: port,
			sem: make(chan struct{}, 1), opening: &openings{}, all: &f.opening,
		}
		f.m[key] = pf
	}
	pf.refs++
	return pf
}

// release gives back a reference from acquire.
func (f *forwarders) release(pf *podForward) {
	f.mu.Lock()
	pf.refs--
	last := pf.refs == 0
	if last && f.m[pf.key] == pf {
		delete(f.m, pf.key)
	}
	f.mu.Unlock()
	if last {
		pf.close()
	}
}

// closeAll closes every port-forward (Backend.Close): connections still
// using one see their streams end.
func (f *forwarders) closeAll() {
	f.mu.Lock()
	all := f.m
	f.m = nil
	f.mu.Unlock()
	for _, pf := range all {
		pf.close()
	}
}

// cut closes the upgraded connection of every port-forward, keeping the
// port-forwards, as a dropped API server connection would (tests). It
// returns how many connections it closed.
func (f *forwarders) cut() int {
	f.mu.Lock()
	all := make([]*podForward, 0, len(f.m))
	for _, pf := range f.m {
		all = append(all, pf)
	}
	f.mu.Unlock()
	n := 0
	for _, pf := range all {
		if pf.cut() {
			n++
		}
	}
	return n
}

// open returns the number of port-forwards held (tests).
func (f *forwarders) open() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

// podForward is the shared upgraded connection to one pod's port-forward.
type podForward struct {
	key  string
	rest *rest.Config
	url  *url.URL
	ns   string
	pod  string
	port int
	refs int // guarded by forwarders.mu

	sem     chan struct{} // held while (re)connecting: one upgrade at a time
	mu      sync.Mutex
	conn    httpstream.Connection
	closed  bool
	nextID  int
	opening *openings // this pod's streams being opened (close waits)
	all     *openings // every pod's (forwarders.opening)
}

// dial opens one stream pair to the pod's port, (re)connecting to the API
// server first when there is no live connection. A connection that turns
// out dead while opening the streams is replaced once.
func (pf *podForward) dial(ctx context.Context) (net.Conn, error) {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		conn, err := pf.connection(ctx)
		if err != nil {
			return nil, err
		}
		c, err := pf.streamsCtx(ctx, conn)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break // streamsCtx has judged the connection
		}
		pf.drop(conn)
	}
	return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", pf.ns, pf.pod, pf.port, lastErr)
}

// connection returns the live upgraded connection, making one if needed.
func (pf *podForward) connection(ctx context.Context) (httpstream.Connection, error) {
	select {
	case pf.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("port-forward to pod %s/%s: waiting for the connection to the API server: %w", pf.ns, pf.pod, ctx.Err())
	}
	defer func() { <-pf.sem }()
	pf.mu.Lock()
	conn, closed := pf.conn, pf.closed
	pf.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("port-forward to pod %s/%s: closed", pf.ns, pf.pod)
	}
	if conn != nil && !isClosed(conn) {
		return conn, nil
	}
	conn, err := pf.upgrade(ctx)
	if err != nil {
		return nil, err
	}
	pf.mu.Lock()
	if pf.closed {
		pf.mu.Unlock()
		conn.Close()
		return nil, fmt.Errorf("port-forward to pod %s/%s: closed", pf.ns, pf.pod)
	}
	old := pf.conn
	pf.conn = conn
	pf.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return conn, nil
}

// upgrade opens a new connection to the portforward subresource: the
// websocket tunnel first, SPDY when the server does not offer it (as
// kubectl does). httpstream's Dial takes no context, so a ctx that ends
// first abandons the dial and closes its connection when it arrives.
func (pf *podForward) upgrade(ctx context.Context) (httpstream.Connection, error) {
	spdyRT, upgrader, err := spdy.RoundTripperFor(pf.rest)
	if err != nil {
		return nil, fmt.Errorf("port-forward: SPDY transport for %s: %w", pf.rest.Host, err)
	}
	// Round trippers hold the connection they upgrade: one pair per upgrade.
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: spdyRT}, http.MethodPost, pf.url)
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(pf.url, pf.rest)
	if err != nil {
		return nil, fmt.Errorf("port-forward: websocket transport for %s: %w", pf.rest.Host, err)
	}
	dialer := portforward.NewFallbackDialer(wsDialer, spdyDialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	type result struct {
		conn httpstream.Connection
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		ch <- result{conn, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("port-forward to pod %s/%s through %s: %w (check that the pod exists and runs, and that you may create pods/portforward in namespace %q)", pf.ns, pf.pod, pf.rest.Host, r.err, pf.ns)
		}
		return r.conn, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("port-forward to pod %s/%s through %s: %w", pf.ns, pf.pod, pf.rest.Host, ctx.Err())
	}
}

// streamsCtx is streams bounded by ctx. CreateStream waits up to 30 s
// for the server's reply and cannot be cancelled; closing the connection
// does not end that wait. So when ctx ends first, a reply is awaited for
// streamReplyGrace more (a live connection answers in milliseconds; the
// streams are then closed, nothing lingers); a connection that stays
// silent (a black-holed API server) is dropped, so the next dial upgrades
// a new one within agentwire's grace period, and the abandoned
// CreateStream ends at its own timeout.
func (pf *podForward) streamsCtx(ctx context.Context, conn httpstream.Connection) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := pf.streams(conn)
		ch <- result{c, err}
	}()
	var r result
	select {
	case r = <-ch:
		return r.c, r.err
	case <-ctx.Done():
	}
	t := time.NewTimer(streamReplyGrace)
	defer t.Stop()
	select {
	case r = <-ch:
		if r.c != nil {
			r.c.Close()
		}
		if r.err != nil {
			pf.drop(conn)
		}
	case <-t.C:
		pf.drop(conn)
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
	}
	return nil, fmt.Errorf("opening streams: %w", ctx.Err())
}

// streams opens the error/data stream pair of one forwarded connection.
func (pf *podForward) streams(conn httpstream.Connection) (net.Conn, error) {
	pf.mu.Lock()
	id := pf.nextID
	pf.nextID++
	pf.mu.Unlock()
	pf.opening.begin()
	pf.all.begin()
	defer pf.all.end()
	defer pf.opening.end()
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(pf.port))
	headers.Set(corev1.PortForwardRequestIDHeader, strconv.Itoa(id))
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		return nil, fmt.Errorf("opening the error stream: %w", err)
	}
	// Nothing is written to the error stream: half-close it at once.
	_ = errStream.Close()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		_ = errStream.Reset()
		conn.RemoveStreams(errStream)
		return nil, fmt.Errorf("opening the data stream: %w", err)
	}
	c := &streamConn{conn: conn, data: data, errStream: errStream, errDone: make(chan struct{}),
		addr:   pfAddr(fmt.Sprintf("%s/%s:%d", pf.ns, pf.pod, pf.port)),
		failed: func() { pf.drop(conn) }}
	go c.readErrors()
	return c, nil
}

// drop forgets conn (dead or failing) so the next dial reconnects.
func (pf *podForward) drop(conn httpstream.Connection) {
	pf.mu.Lock()
	if pf.conn == conn {
		pf.conn = nil
	}
	pf.mu.Unlock()
	conn.Close()
}

// close ends the connection; later dials fail. Streams still being
// opened get up to streamReplyGrace to finish first: a connection closed
// under CreateStream leaves it waiting 30 s for a reply that cannot come
// (http.Transport finishes a dial in the background after its request
// gave up, so the last connection's Close can race one).
func (pf *podForward) close() {
	pf.mu.Lock()
	conn := pf.conn
	pf.conn, pf.closed = nil, true
	pf.mu.Unlock()
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), streamReplyGrace)
	_ = pf.opening.wait(ctx)
	cancel()
	conn.Close()
}

// openings counts streams being opened; wait returns when none are.
type openings struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0
}

func (o *openings) begin() {
	o.mu.Lock()
	if o.n == 0 {
		o.idle = make(chan struct{})
	}
	o.n++
	o.mu.Unlock()
}

func (o *openings) end() {
	o.mu.Lock()
	if o.n--; o.n == 0 {
		close(o.idle)
	}
	o.mu.Unlock()
}

// wait returns nil once no stream is being opened, or ctx's error.
func (o *openings) wait(ctx context.Context) error {
	o.mu.Lock()
	idle := o.idle
	n := o.n
	o.mu.Unlock()
	if n == 0 {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d port-forward streams still being opened: %w", n, ctx.Err())
	}
}

// cut closes the current upgraded connection without closing the
// port-forward (forwarders.cut).
func (pf *podForward) cut() bool {
	pf.mu.Lock()
	conn := pf.conn
	pf.conn = nil
	pf.mu.Unlock()
	if conn == nil {
		return false
	}
	conn.Close()
	return true
}

func isClosed(conn httpstream.Connection) bool {
	select {
	case <-conn.CloseChan():
		return true
	default:
		return false
	}
}

// streamConn is one forwarded connection: a net.Conn over a data stream.
type streamConn struct {
	conn      httpstream.Connection
	data      httpstream.Stream
	errStream httpstream.Stream
	addr      pfAddr
	// failed retires the connection after the kubelet reported an error:
	// a stream pair that failed can leave the server's frame worker of
	// its partition blocked, so later streams on that connection may
	// never be answered (seen here as CreateStream waiting out its 30 s).
	failed func()

	errDone chan struct{} // closed when the error stream ended
	errMsg  string        // what the kubelet reported, read after errDone

	closeOnce sync.Once
}

// readErrors reads the error stream until the kubelet (or Close) ends it.
func (c *streamConn) readErrors() {
	defer close(c.errDone)
	msg, err := io.ReadAll(c.errStream)
	switch {
	case len(msg) > 0:
		c.errMsg = strings.TrimSpace(string(msg))
	case err != nil && !errors.Is(err, io.EOF):
		c.errMsg = err.Error()
	}
}

// Read returns the kubelet's error (e.g. nothing listens on the port yet)
// instead of a bare EOF when the stream ends with one.
func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.data.Read(p)
	if err != io.EOF {
		return n, err
	}
	t := time.NewTimer(errStreamWait)
	defer t.Stop()
	select {
	case <-c.errDone:
		if c.errMsg != "" {
			c.failed()
			return n, fmt.Errorf("port-forward to %s: %s", c.addr, c.errMsg)
		}
	case <-t.C:
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) { return c.data.Write(p) }

// Close resets both streams (discarding unsent data, so the kubelet ends
// the forwarded connection at once) and waits for the error reader.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.data.Reset()
		_ = c.errStream.Reset()
		c.conn.RemoveStreams(c.data, c.errStream)
	})
	<-c.errDone
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return c.addr }
func (c *streamConn) RemoteAddr() net.Addr { return c.addr }

// Deadlines are not supported by httpstream streams. Nothing above uses
// them: agentwire bounds its calls with contexts and heartbeats, and a
// dead connection ends every stream.
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// pfAddr names a forwarded connection: namespace/pod:port.
type pfAddr string

func (a pfAddr) Network() string { return "portforward" }
func (a pfAddr) String() string  { return string(a) }
