package agentwire

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"corral/eventbus"
)

// testExec is a small real executor for protocol tests: "run" actions run
// `bash -c` via os/exec and stream their stdout+stderr as it comes. It
// counts executions per command so tests can prove nothing ran twice.
type testExec struct {
	mu      sync.Mutex
	runs    map[string]int
	running map[*exec.Cmd]struct{} // for Interrupt
	total   atomic.Int64
	dir     string
}

func newTestExec(t testing.TB) *testExec {
	return &testExec{runs: map[string]int{}, running: map[*exec.Cmd]struct{}{}, dir: t.TempDir()}
}

// Interrupt sends SIGINT to the process group of every running command,
// as a terminal's Ctrl-C would (agentwire.Interrupter).
func (x *testExec) Interrupt() (bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for c := range x.running {
		if err := syscall.Kill(-c.Process.Pid, syscall.SIGINT); err != nil {
			return true, fmt.Errorf("interrupt %q: %w", c.Args, err)
		}
	}
	return len(x.running) > 0, nil
}

func (x *testExec) count(cmd string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.runs[cmd]
}

func (x *testExec) Execute(ctx context.Context, ev *eventbus.Event, onOutput func([]byte)) *eventbus.Event {
	a, ok := ev.Action.(*eventbus.CmdRunAction)
	if !ok {
		return eventbus.NewError(ev.ID, "", "test executor runs only run actions")
	}
	x.mu.Lock()
	x.runs[a.Command]++
	x.mu.Unlock()
	x.total.Add(1)
	cmd := exec.CommandContext(ctx, "bash", "-c", a.Command)
	cmd.Dir = x.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		return eventbus.NewError(ev.ID, "", err.Error())
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return eventbus.NewError(ev.ID, "", err.Error())
	}
	pw.Close()
	x.mu.Lock()
	x.running[cmd] = struct{}{}
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		delete(x.running, cmd)
		x.mu.Unlock()
	}()
	var out bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		n, err := pr.Read(buf)
		if n > 0 {
			out.Write(buf[:n])
			if onOutput != nil {
				onOutput(buf[:n])
			}
		}
		if err != nil {
			break
		}
	}
	pr.Close()
	_ = cmd.Wait()
	md := eventbus.DefaultMetadata()
	md.ExitCode = cmd.ProcessState.ExitCode()
	return eventbus.NewObservation(ev.ID, out.String(), &eventbus.CmdOutputObservation{Command: a.Command, Metadata: md})
}

func (x *testExec) ListFiles(path string) []string {
	if path == "" {
		path = x.dir
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil
	}
	var dirs, files []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name()+"/")
		} else {
			files = append(files, e.Name())
		}
	}
	sort.Strings(dirs)
	sort.Strings(files)
	return append(dirs, files...)
}

func (x *testExec) UploadZip(dest string, r io.Reader, filename string, recursive bool) error {
	if !filepath.IsAbs(dest) {
		return fmt.Errorf("destination %q must be absolute", dest)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dest, filepath.Base(filename)))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, r)
	return err
}

func (x *testExec) DownloadZip(w io.Writer, path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("path %q must be absolute", path)
	}
	zw := zip.NewWriter(w)
	err := filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		fw, err := zw.Create(rel)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = fw.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	return zw.Close()
}

const testToken = "s3cret-token"

// agent is a Server on a real listener.
type agent struct {
	srv  *Server
	exec *testExec
	http *http.Server
	addr string // Dial address
	ln   net.Listener
}

func startAgent(t testing.TB, network string, opts ...ServerOption) *agent {
	t.Helper()
	x := newTestExec(t)
	return startAgentWith(t, network, x, opts...)
}

func startAgentWith(t testing.TB, network string, x *testExec, opts ...ServerOption) *agent {
	t.Helper()
	a := startAgentExec(t, network, x, opts...)
	a.exec = x
	return a
}

// startAgentExec serves any executor (exec stays nil in the result).
func startAgentExec(t testing.TB, network string, x Executor, opts ...ServerOption) *agent {
	t.Helper()
	srv, err := NewServer(x, testToken, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	var addr string
	switch network {
	case "unix":
		p := filepath.Join(shortTempDir(t), "a.sock")
		ln, err = net.Listen("unix", p)
		addr = "unix://" + p
	default:
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if ln != nil {
			addr = ln.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	a := &agent{srv: srv, http: hs, addr: addr, ln: ln}
	t.Cleanup(func() {
		_ = srv.Close()
		_ = hs.Close()
		<-done
	})
	return a
}

// shortTempDir keeps unix socket paths under the 108-byte limit.
func shortTempDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "aw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func runAction(cmd string) *eventbus.Event {
	return eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: cmd, Blocking: true, ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
}

func dial(t testing.TB, addr string, opts ...DialOption) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, testToken, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a bare WebSocket to the agent, for tests that speak frames.
type rawConn struct {
	t  testing.TB
	ws *websocket.Conn
}

func rawDial(t testing.TB, a *agent, hello bool) *rawConn {
	t.Helper()
	_, address, host, err := parseAddr(a.addr)
	if err != nil {
		t.Fatal(err)
	}
	network := "tcp"
	if strings.HasPrefix(a.addr, "unix://") {
		network = "unix"
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+host+PathWire, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {"Bearer " + testToken}}})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(64 << 20)
	rc := &rawConn{t: t, ws: ws}
	t.Cleanup(func() { ws.CloseNow(); hc.CloseIdleConnections() })
	if hello {
		rc.send(&Frame{Type: TypeHello, Protocol: ProtocolVersion, Version: "test"})
		if f := rc.read(); f.Type != TypeHello {
			t.Fatalf("expected hello, got %+v", f)
		}
	}
	return rc
}

func (r *rawConn) send(f *Frame) {
	r.t.Helper()
	b, _ := json.Marshal(f)
	r.sendRaw(websocket.MessageText, b)
}

func (r *rawConn) sendRaw(typ websocket.MessageType, b []byte) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.ws.Write(ctx, typ, b); err != nil {
		r.t.Fatal(err)
	}
}

// read returns the next frame that is not a heartbeat.
func (r *rawConn) read() *Frame {
	r.t.Helper()
	f, err := r.tryRead(10 * time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	return f
}

func (r *rawConn) tryRead(d time.Duration) (*Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		_, data, err := r.ws.Read(ctx)
		if err != nil {
			return nil, err
		}
		f, err := DecodeFrame(data)
		if err != nil {
			return nil, err
		}
		if f.Type == TypePing {
			b, _ := json.Marshal(&Frame{Type: TypePong})
			_ = r.ws.Write(ctx, websocket.MessageText, b)
			continue
		}
		if f.Type == TypePong && f.ReqID == "" {
			continue
		}
		return f, nil
	}
}

// readUntilResult collects chunk data for id until its result frame.
func (r *rawConn) readUntilResult(id string) (chunks []*Frame, gaps []*Frame, result *Frame) {
	r.t.Helper()
	for {
		f := r.read()
		if f.ReqID != id {
			continue
		}
		switch f.Type {
		case TypeChunk:
			chunks = append(chunks, f)
		case TypeGap:
			gaps = append(gaps, f)
		case TypeResult:
			return chunks, gaps, f
		case TypeError:
			r.t.Fatalf("error frame for %s: %s: %s", id, f.Code, f.Message)
		}
	}
}

func marshalAction(t testing.TB, cmd string) json.RawMessage {
	b, err := eventbus.Marshal(runAction(cmd))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proxy is a TCP forwarder the test controls: it can cut every connection
// (the client sees a reset), stall (forward nothing, answer nothing) or
// refuse (close every new connection at once, as a host that is unreachable).
type proxy struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	conns    []net.Conn
	stalled  bool
	refusing bool
	wg       sync.WaitGroup
}

func startProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.refusing {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c)
		stalled := p.stalled
		p.mu.Unlock()
		if stalled {
			continue // hold it open, forward nothing
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		u, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			stalled := p.stalled
			p.mu.Unlock()
			if stalled {
				continue // swallow silently
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// cut closes every proxied connection; new ones are accepted.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// refuse makes new connections fail (on) or pass again (off).
func (p *proxy) refuse(on bool) {
	p.mu.Lock()
	p.refusing = on
	p.mu.Unlock()
}

func (p *proxy) stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

var errTimeout = errors.New("timeout")

func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errTimeout
}

func newHTTPServer(srv *Server) *http.Server {
	return &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
}

func (p *proxy) setTarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}
