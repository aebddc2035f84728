package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"corral/runtimes"
	"corral/transport/agentwire"
)

var _ runtimes.LogSource = (*Backend)(nil)

// Logs implements runtimes.LogSource with the agent's own log, which the
// agent serves over its HTTP API (agentwire.PathLogs: the lines of its log
// it keeps in memory, stamped). The request goes through a connection of
// its own made like Connect's (TLS for agent-mode hosts, the SSH tunnel for
// ssh hosts), so it needs nothing but the agent. A followed log ends when
// the agent ends its stream (it shuts down) or is found gone (its process
// group exited, its address stopped answering); an agent that is gone
// before the call is runtimes.ErrNotFound, its log went with it.
func (b *Backend) Logs(ctx context.Context, hd *runtimes.Handle, opts runtimes.LogOptions) (io.ReadCloser, error) {
	if hd == nil {
		return nil, fmt.Errorf("remote runtime: logs: no sandbox handle: %w", runtimes.ErrNotFound)
	}
	where := fmt.Sprintf("sandbox %s on remote host %s", hd.ID, hd.Meta["host"])
	c, err := b.dial(ctx, hd, agentwire.WithGracePeriod(0), agentwire.WithClientLogger(b.logger))
	if err != nil {
		if b.agentGone(hd, 0) {
			return nil, fmt.Errorf("remote runtime: the agent of %s has exited and its log with it (%v): %w", where, err, runtimes.ErrNotFound)
		}
		return nil, fmt.Errorf("remote runtime: logs of %s: %w", where, err)
	}
	rctx, cancel := context.WithCancel(ctx)
	resp, err := b.requestLogs(rctx, c, hd, opts)
	if err != nil {
		cancel()
		c.Close()
		return nil, fmt.Errorf("remote runtime: logs of %s: %w", where, err)
	}
	lr := &logReader{b: b, hd: hd, body: resp.Body, client: c, ctx: rctx, cancel: cancel, follow: opts.Follow}
	if opts.Follow {
		b.readers.add(lr)
		lr.wg.Add(1)
		go lr.watch(rctx)
	}
	return lr, nil
}

// logReaders are the followed logs open on a backend, so that Stop and
// Destroy end them: an agent-mode host's agent outlives its sandbox (it is
// the operator's), and its log would otherwise follow on forever.
type logReaders struct {
	mu sync.Mutex
	m  map[*logReader]struct{}
}

func (r *logReaders) add(l *logReader) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[*logReader]struct{}{}
	}
	r.m[l] = struct{}{}
}

func (r *logReaders) remove(l *logReader) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, l)
}

// end ends the followed logs of sandbox id cleanly (EOF after what was
// read): the sandbox is stopped.
func (r *logReaders) end(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for l := range r.m {
		if l.hd.ID == id {
			l.exited.Store(true)
			l.cancel()
		}
	}
}

// requestLogs sends GET agentwire.PathLogs and checks the answer.
func (b *Backend) requestLogs(ctx context.Context, c *agentwire.Client, hd *runtimes.Handle, opts runtimes.LogOptions) (*http.Response, error) {
	q := url.Values{"tail": {strconv.Itoa(max(opts.Tail, -1))}}
	if opts.Follow {
		q.Set("follow", "true")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+agentwire.PathLogs+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	// RoundTrip adds no credential outside the preview ports: the log is
	// the agent's own API, guarded by its token.
	req.Header.Set("Authorization", "Bearer "+hd.Token)
	resp, err := c.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: the agent serves no log at %s (HTTP 404 %s); a corral-agent older than this Corral has none: upload the current one (ssh hosts get it at their next sandbox start)",
			runtimes.ErrNotSupported, agentwire.PathLogs, msg)
	}
	return nil, fmt.Errorf("the agent answered HTTP %d to GET %s: %s", resp.StatusCode, agentwire.PathLogs, msg)
}

// goneWithin is how long a broken log stream waits for its agent to be
// seen gone: a killed agent's process lingers (a zombie until the host's
// init reaps it) a little after its socket closed.
const goneWithin = 10 * time.Second

// agentGone reports whether the agent of hd has exited (its process group
// on an ssh host, its address on an agent-mode host), looking again every
// quarter second for up to within; an unreachable ssh host is not "gone",
// it is an error of its own.
func (b *Backend) agentGone(hd *runtimes.Handle, within time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), within+15*time.Second)
	defer cancel()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := b.Inspect(ctx, hd)
		if err == nil && st.Exit != nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// logReader is what Logs returns. A read error of a followed log whose
// agent is gone is the log's end (EOF), not a failure; Close ends the
// request, the connection and the watcher, and waits for them.
type logReader struct {
	b      *Backend
	hd     *runtimes.Handle
	body   io.ReadCloser
	client *agentwire.Client
	ctx    context.Context // the request's
	cancel context.CancelFunc
	follow bool
	exited atomic.Bool // the watcher saw the agent exit (and ended the request)
	wg     sync.WaitGroup
	once   sync.Once
}

func (l *logReader) Read(p []byte) (int, error) {
	n, err := l.body.Read(p)
	if err == nil || errors.Is(err, io.EOF) {
		return n, err
	}
	switch {
	case l.exited.Load():
		return n, io.EOF // the watcher saw the agent exit: its log ends here
	case l.ctx.Err() != nil:
		return n, err // the caller's context ended or the reader was closed
	case l.follow && l.b.agentGone(l.hd, goneWithin):
		return n, io.EOF // the agent went away mid-stream: its log ends here
	}
	return n, fmt.Errorf("remote runtime: reading the log of sandbox %s on %s: %w", l.hd.ID, l.hd.Meta["host"], err)
}

// watch ends a followed log once the backend sees the agent exit: a host
// that vanished from the network would otherwise leave the read hanging.
func (l *logReader) watch(ctx context.Context) {
	defer l.wg.Done()
	exited, err := l.b.Wait(ctx, l.hd)
	if err != nil {
		return
	}
	select {
	case _, ok := <-exited:
		if ok {
			l.exited.Store(true)
			l.cancel()
		}
	case <-ctx.Done():
	}
	for range exited { // Wait's goroutine closes the channel as it ends
	}
}

func (l *logReader) Close() error {
	l.once.Do(func() {
		l.b.readers.remove(l)
		l.cancel()
		_ = l.body.Close()
		l.wg.Wait()
		_ = l.client.Close()
	})
	return nil
}
