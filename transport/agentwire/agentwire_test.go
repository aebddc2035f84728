package agentwire

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"corral/eventbus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var networks = []string{"unix", "tcp"}

func TestExecuteReturnsObservationOverUnixAndTCP(t *testing.T) {
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			a := startAgent(t, nw)
			c := dial(t, a.addr)
			obs, err := c.Execute(context.Background(), "", runAction("echo hi; exit 3"), nil)
			if err != nil {
				t.Fatal(err)
			}
			out, ok := obs.Observation.(*eventbus.CmdOutputObservation)
			if !ok {
				t.Fatalf("observation is %T, want run observation", obs.Observation)
			}
			if obs.Content != "hi\n" || out.Metadata.ExitCode != 3 {
				t.Fatalf("got content %q exit %d, want \"hi\\n\" exit 3", obs.Content, out.Metadata.ExitCode)
			}
			if c.AgentVersion() != "dev" {
				t.Fatalf("agent version %q", c.AgentVersion())
			}
		})
	}
}

func TestChunksArriveInOrderWhileTheActionRuns(t *testing.T) {
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			a := startAgent(t, nw)
			c := dial(t, a.addr)
			var seqs []uint64
			var data bytes.Buffer
			firstChunk := make(chan time.Time, 1)
			cmd := `for i in $(seq 1 10); do echo line$i; sleep 0.05; done`
			start := time.Now()
			obs, err := c.Execute(context.Background(), "", runAction(cmd), func(seq uint64, d []byte) {
				if len(seqs) == 0 {
					firstChunk <- time.Now()
				}
				seqs = append(seqs, seq)
				data.Write(d)
			})
			if err != nil {
				t.Fatal(err)
			}
			end := time.Now()
			for i, s := range seqs {
				if s != uint64(i+1) {
					t.Fatalf("chunk seqs %v are not 1..n", seqs)
				}
			}
			if len(seqs) < 2 {
				t.Fatalf("expected output streamed in several chunks, got %d", len(seqs))
			}
			if data.String() != obs.Content {
				t.Fatalf("streamed %q, observation %q", data.String(), obs.Content)
			}
			if first := <-firstChunk; first.Sub(start) > end.Sub(start)/2 {
				t.Fatalf("first chunk came at %v of %v: output was not streamed live", first.Sub(start), end.Sub(start))
			}
		})
	}
}

func TestReconnectResumesMidCommandWithEveryChunkOnce(t *testing.T) {
	a := startAgent(t, "tcp")
	p := startProxy(t, a.addr)
	c := dial(t, p.addr(), WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	cmd := `for i in $(seq 1 40); do echo line$i; sleep 0.025; done`
	var mu sync.Mutex
	var seqs []uint64
	var data bytes.Buffer
	cuts := 0
	obs, err := c.Execute(context.Background(), "", runAction(cmd), func(seq uint64, d []byte) {
		mu.Lock()
		defer mu.Unlock()
		seqs = append(seqs, seq)
		data.Write(d)
		if len(seqs)%10 == 5 && cuts < 3 {
			cuts++
			go p.cut() // drop the connection mid-command, several times
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if cuts == 0 {
		t.Fatal("the test never cut the connection")
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("chunk seqs %v: want each of 1..n exactly once", seqs)
		}
	}
	if data.String() != obs.Content {
		t.Fatalf("streamed output differs from the observation:\n%q\n%q", data.String(), obs.Content)
	}
	if !strings.Contains(obs.Content, "line40\n") {
		t.Fatalf("observation incomplete: %q", obs.Content)
	}
	if n := a.exec.count(cmd); n != 1 {
		t.Fatalf("command ran %d times, want 1", n)
	}
}

func TestReconnectGetsResultThatCompletedWhileDisconnected(t *testing.T) {
	a := startAgent(t, "tcp")
	p := startProxy(t, a.addr)
	c := dial(t, p.addr(), WithBackoff(300*time.Millisecond, 300*time.Millisecond))
	cmd := `echo start; sleep 0.1; echo end`
	var once sync.Once
	obs, err := c.Execute(context.Background(), "", runAction(cmd), func(seq uint64, d []byte) {
		once.Do(func() { go p.cut() }) // the action finishes during the 300ms backoff
	})
	if err != nil {
		t.Fatal(err)
	}
	if obs.Content != "start\nend\n" || a.exec.count(cmd) != 1 {
		t.Fatalf("content %q runs %d", obs.Content, a.exec.count(cmd))
	}
}

func TestDuplicateRequestIDIsAnsweredWithoutRunningTwice(t *testing.T) {
	a := startAgent(t, "unix")
	cmd := `echo once; sleep 0.2; echo done`
	action := marshalAction(t, cmd)
	r1 := rawDial(t, a, true)
	r2 := rawDial(t, a, true)
	r1.send(&Frame{Type: TypeExec, ReqID: "dup-1", Action: action})
	time.Sleep(50 * time.Millisecond)
	r2.send(&Frame{Type: TypeExec, ReqID: "dup-1", Action: action}) // attaches to the running request
	_, _, res1 := r1.readUntilResult("dup-1")
	chunks2, _, res2 := r2.readUntilResult("dup-1")
	r1.send(&Frame{Type: TypeExec, ReqID: "dup-1", Action: action}) // replays the stored result
	chunks3, _, res3 := r1.readUntilResult("dup-1")
	if n := a.exec.count(cmd); n != 1 {
		t.Fatalf("command ran %d times, want 1", n)
	}
	for i, r := range []*Frame{res1, res2, res3} {
		if !bytes.Equal(r.Observation, res1.Observation) || r.LastSeq != res1.LastSeq {
			t.Fatalf("answer %d differs: %s vs %s", i, r.Observation, res1.Observation)
		}
	}
	for _, cs := range [][]*Frame{chunks2, chunks3} {
		var b strings.Builder
		for _, ch := range cs {
			b.Write(ch.Data)
		}
		if b.String() != "once\ndone\n" {
			t.Fatalf("replayed chunks %q", b.String())
		}
	}
}

func TestResumeAfterEvictionReportsLostBytes(t *testing.T) {
	a := startAgent(t, "unix", WithChunkBuffer(64<<10))
	cmd := `head -c 300000 /dev/zero | tr '\0' x`
	r1 := rawDial(t, a, true)
	r1.send(&Frame{Type: TypeExec, ReqID: "big", Action: marshalAction(t, cmd)})
	_, _, res := r1.readUntilResult("big")

	r2 := rawDial(t, a, true)
	r2.send(&Frame{Type: TypeResume, ReqID: "big", AfterSeq: 0})
	chunks, gaps, res2 := r2.readUntilResult("big")
	if len(gaps) != 1 {
		t.Fatalf("want one gap frame, got %d", len(gaps))
	}
	kept := 0
	for _, ch := range chunks {
		kept += len(ch.Data)
	}
	g := gaps[0]
	if g.LostBytes == 0 || int(g.LostBytes)+kept != 300000 || g.NextOffset != g.LostBytes {
		t.Fatalf("gap %+v with %d bytes kept; want lost+kept = 300000", g, kept)
	}
	if kept > 64<<10+32<<10 {
		t.Fatalf("agent kept %d bytes, more than its buffer", kept)
	}
	if chunks[0].Seq != g.NextSeq || res2.LastSeq != res.LastSeq {
		t.Fatalf("resume continued at seq %d, gap said %d", chunks[0].Seq, g.NextSeq)
	}
}

func TestExpiredResultIsNotRunAgain(t *testing.T) {
	a := startAgent(t, "unix", WithResultRetention(time.Hour, 1))
	r := rawDial(t, a, true)
	r.send(&Frame{Type: TypeExec, ReqID: "first", Action: marshalAction(t, "echo first")})
	r.readUntilResult("first")
	r.send(&Frame{Type: TypeExec, ReqID: "second", Action: marshalAction(t, "echo second")})
	r.readUntilResult("second")
	r.send(&Frame{Type: TypeExec, ReqID: "first", Action: marshalAction(t, "echo first")})
	f := r.read()
	if f.Type != TypeError || f.Code != CodeResultExpired || f.ReqID != "first" {
		t.Fatalf("want result_expired for a dropped result, got %+v", f)
	}
	if n := a.exec.count("echo first"); n != 1 {
		t.Fatalf("ran %d times", n)
	}
	r.send(&Frame{Type: TypeResume, ReqID: "nope"})
	if f := r.read(); f.Type != TypeError || f.Code != CodeUnknownRequest {
		t.Fatalf("want unknown_request, got %+v", f)
	}
}

func TestWrongOrMissingTokenIsRefusedWith401(t *testing.T) {
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			a := startAgent(t, nw)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := Dial(ctx, a.addr, "wrong")
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "401") {
				t.Fatalf("want ErrUnauthorized naming 401, got %v", err)
			}
			if nw != "tcp" {
				return
			}
			for _, hdr := range []string{"", "Bearer wrong", "Basic " + testToken, "Bearer " + testToken + "x"} {
				req, _ := http.NewRequest("GET", "http://"+a.addr+PathWire, nil)
				if hdr != "" {
					req.Header.Set("Authorization", hdr)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var body map[string]string
				_ = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != 401 || body["error"] == "" || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("header %q: status %d body %v", hdr, resp.StatusCode, body)
				}
			}
		})
	}
}

func TestHeartbeatDeclaresAStalledAgentLost(t *testing.T) {
	a := startAgent(t, "tcp", WithHeartbeat(100*time.Millisecond, 500*time.Millisecond))
	p := startProxy(t, a.addr)
	c := dial(t, p.addr(), WithClientHeartbeat(100*time.Millisecond, 500*time.Millisecond), WithGracePeriod(time.Second))
	if err := c.Alive(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.stall()
	start := time.Now()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client did not notice the stalled agent within 10s")
	}
	if !errors.Is(c.Err(), ErrAgentLost) {
		t.Fatalf("Err = %v, want ErrAgentLost", c.Err())
	}
	t.Logf("declared lost after %v", time.Since(start))
	// The agent also drops its side of the dead connection.
	if err := waitFor(5*time.Second, func() bool {
		a.srv.mu.Lock()
		defer a.srv.mu.Unlock()
		return len(a.srv.conns) == 0
	}); err != nil {
		t.Fatal("agent kept the dead connection")
	}
	if _, err := c.Execute(context.Background(), "", runAction("true"), nil); !errors.Is(err, ErrAgentLost) {
		t.Fatalf("Execute after loss: %v", err)
	}
}

func TestMalformedFramesGetErrorFramesAndTheConnectionSurvives(t *testing.T) {
	a := startAgent(t, "unix", WithBodyLimits(1<<20, 1<<20, 1<<20))
	r := rawDial(t, a, true)
	cases := []struct {
		name string
		typ  websocket.MessageType
		data string
		code string
	}{
		{"not json", websocket.MessageText, "not json", CodeBadFrame},
		{"unknown type", websocket.MessageText, `{"type":"bogus"}`, CodeBadFrame},
		{"exec without action", websocket.MessageText, `{"type":"exec","req_id":"a"}`, CodeBadFrame},
		{"exec without id", websocket.MessageText, `{"type":"exec","action":{"action":"run"}}`, CodeBadFrame},
		{"binary message", websocket.MessageBinary, `{}`, CodeBadFrame},
		{"action that is not an event", websocket.MessageText, `{"type":"exec","req_id":"b","action":{"foo":1}}`, CodeBadAction},
		{"observation instead of action", websocket.MessageText, `{"type":"exec","req_id":"c","action":{"observation":"run","content":"x","extras":{"command":"x","metadata":{}}}}`, CodeBadAction},
		{"server frame from client", websocket.MessageText, `{"type":"result","req_id":"d","observation":{}}`, CodeBadFrame},
	}
	for _, tc := range cases {
		r.sendRaw(tc.typ, []byte(tc.data))
		f := r.read()
		if f.Type != TypeError || f.Code != tc.code || f.Message == "" {
			t.Fatalf("%s: got %+v, want error %s", tc.name, f, tc.code)
		}
	}
	r.send(&Frame{Type: TypePing, ReqID: "still-there"})
	if f := r.read(); f.Type != TypePong || f.ReqID != "still-there" {
		t.Fatalf("connection did not survive: %+v", f)
	}
	// A frame over the limit closes that connection cleanly...
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = r.ws.Write(wctx, websocket.MessageText, bytes.Repeat([]byte("x"), 2<<20)) // the agent may close mid-write
	wcancel()
	if _, err := r.tryRead(5 * time.Second); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: want close 1009, got %v", err)
	}
	// ...and the agent keeps serving.
	c := dial(t, a.addr)
	if _, err := c.Execute(context.Background(), "", runAction("true"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestHelloIsRequiredAndVersionMismatchNamesBoth(t *testing.T) {
	a := startAgent(t, "unix", WithAgentVersion("9.9.9"))
	r := rawDial(t, a, false)
	r.send(&Frame{Type: TypeHello, Protocol: 99, Version: "future"})
	f := r.read()
	if f.Type != TypeError || f.Code != CodeVersionMismatch {
		t.Fatalf("got %+v", f)
	}
	for _, want := range []string{"protocol 99", `"future"`, fmt.Sprintf("protocol %d", ProtocolVersion), `"9.9.9"`} {
		if !strings.Contains(f.Message, want) {
			t.Fatalf("message %q does not name %s", f.Message, want)
		}
	}
	r2 := rawDial(t, a, false)
	r2.send(&Frame{Type: TypePing})
	if f := r2.read(); f.Type != TypeError || f.Code != CodeBadFrame {
		t.Fatalf("frame before hello: got %+v", f)
	}
}

func TestCancelledContextCancelsTheAction(t *testing.T) {
	a := startAgent(t, "unix")
	c := dial(t, a.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Execute(ctx, "", runAction("sleep 30"), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	// The agent stops the action and stores its observation.
	if err := waitFor(5*time.Second, func() bool {
		a.srv.mu.Lock()
		defer a.srv.mu.Unlock()
		return len(a.srv.completed) == 1
	}); err != nil {
		t.Fatalf("action still running %v after cancel", time.Since(start))
	}
}

func TestConcurrentExecutesAreAllAnswered(t *testing.T) {
	a := startAgent(t, "unix")
	c := dial(t, a.addr)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obs, err := c.Execute(context.Background(), "", runAction(fmt.Sprintf("echo n%d", i)), nil)
			if err == nil && obs.Content != fmt.Sprintf("n%d\n", i) {
				err = fmt.Errorf("request %d got %q", i, obs.Content)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestListFilesUploadAndDownloadThroughTheClient(t *testing.T) {
	a := startAgent(t, "unix")
	c := dial(t, a.addr)
	ctx := context.Background()
	dest := filepath.Join(a.exec.dir, "up")
	if err := c.Upload(ctx, dest, strings.NewReader("payload"), "f.txt", false); err != nil {
		t.Fatal(err)
	}
	files, err := c.ListFiles(ctx, "")
	if err != nil || len(files) != 1 || files[0] != "up/" {
		t.Fatalf("list: %v %v", files, err)
	}
	files, err = c.ListFiles(ctx, dest)
	if err != nil || len(files) != 1 || files[0] != "f.txt" {
		t.Fatalf("list %s: %v %v", dest, files, err)
	}
	var zipBuf bytes.Buffer
	if err := c.Download(ctx, dest, &zipBuf); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipBuf.Bytes()), int64(zipBuf.Len()))
	if err != nil || len(zr.File) != 1 || zr.File[0].Name != "f.txt" {
		t.Fatalf("download is not a zip holding f.txt: %v", err)
	}
	rc, _ := zr.File[0].Open()
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "payload" {
		t.Fatalf("round trip gave %q", got)
	}
	if err := c.Download(ctx, "relative", io.Discard); err == nil || !strings.Contains(err.Error(), "absolute") || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("download of a relative path: %v", err)
	}
	// A missing path is a 404 on the wire and fs.ErrNotExist to the caller
	// (the public API answers 404 with it, not 500).
	if err := c.Download(ctx, filepath.Join(a.exec.dir, "missing"), io.Discard); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("download of a missing path = %v, want fs.ErrNotExist", err)
	}
	if err := c.Upload(ctx, "rel", strings.NewReader("x"), "f", false); err == nil {
		t.Fatal("upload to a relative path succeeded")
	}
}

func TestCloseFailsPendingCallsAndEndsDone(t *testing.T) {
	a := startAgent(t, "unix")
	c := dial(t, a.addr)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Execute(context.Background(), "", runAction("sleep 5"), nil)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending Execute: %v", err)
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err = %v", c.Err())
	}
}

func TestDialRejectsBadAddresses(t *testing.T) {
	for _, addr := range []string{"unix://", "nohostport", "/tmp/x.sock"} {
		if _, err := Dial(context.Background(), addr, "t"); err == nil || !strings.Contains(err.Error(), "host:port") && !strings.Contains(err.Error(), "socket path") {
			t.Fatalf("%q: %v", addr, err)
		}
	}
	if _, err := NewServer(newTestExec(t), ""); err == nil {
		t.Fatal("empty token accepted")
	}
	_ = os.Getpid
}

func TestAgentRestartFailsInFlightActionsInsteadOfRunningThemAgain(t *testing.T) {
	a := startAgent(t, "tcp")
	b := startAgent(t, "tcp")
	p := startProxy(t, a.addr)
	c := dial(t, p.addr(), WithBackoff(10*time.Millisecond, 50*time.Millisecond))
	cmd := `echo started; sleep 2; echo end`
	var once sync.Once
	_, err := c.Execute(context.Background(), "", runAction(cmd), func(uint64, []byte) {
		once.Do(func() {
			p.setTarget(b.addr) // the "agent" comes back as a new process
			go p.cut()
		})
	})
	if !errors.Is(err, ErrAgentRestarted) {
		t.Fatalf("want ErrAgentRestarted, got %v", err)
	}
	if n := b.exec.count(cmd); n != 0 {
		t.Fatalf("the new agent ran the in-flight action %d times", n)
	}
	// The client keeps working against the new agent.
	obs, err := c.Execute(context.Background(), "", runAction("echo again"), nil)
	if err != nil || obs.Content != "again\n" {
		t.Fatalf("after restart: %v %v", obs, err)
	}
}

func TestClientReportsOutputLostWhileDisconnected(t *testing.T) {
	a := startAgent(t, "tcp", WithChunkBuffer(64<<10))
	p := startProxy(t, a.addr)
	var lost uint64
	gaps := 0
	c := dial(t, p.addr(), WithBackoff(100*time.Millisecond, 100*time.Millisecond),
		WithGapHandler(func(id string, n uint64) { gaps++; lost += n }))
	// The big output starts only once the client is cut off, and the client
	// can come back only once it has ended, so far more than the agent's
	// 64 KiB chunk buffer is produced while nobody listens, however slow the
	// machine.
	dir := t.TempDir()
	away, written := filepath.Join(dir, "away"), filepath.Join(dir, "written")
	cmd := fmt.Sprintf(`echo first; while [ ! -e %s ]; do sleep 0.01; done; head -c 300000 /dev/zero | tr '\0' x; touch %s`, away, written)
	var streamed int
	var once sync.Once
	obs, err := c.Execute(context.Background(), "", runAction(cmd), func(seq uint64, d []byte) {
		streamed += len(d)
		once.Do(func() {
			p.refuse(true)
			p.cut()
			if err := os.WriteFile(away, nil, 0o600); err != nil {
				t.Error(err)
			}
			go func() {
				_ = waitFor(time.Minute, func() bool { _, err := os.Stat(written); return err == nil })
				p.refuse(false)
			}()
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if gaps == 0 || lost == 0 {
		t.Fatalf("want a gap with lost bytes, got %d gaps, %d bytes", gaps, lost)
	}
	if uint64(streamed)+lost != uint64(len(obs.Content)) {
		t.Fatalf("streamed %d + lost %d != output %d", streamed, lost, len(obs.Content))
	}
	if a.exec.count(cmd) != 1 {
		t.Fatal("ran twice")
	}
}
