package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recoveryRuntimes are the runtimes the fault tests run on; docker cases
// skip (or fail with CORRAL_REQUIRE_DOCKER=1) without an engine.
var recoveryRuntimes = []string{"local", "docker"}

func TestSandboxRemovedWhileServeIsDownAnswersTheInflightActionOnceAndFollowsOnLostSandbox(t *testing.T) {
	for _, rt := range recoveryRuntimes {
		for _, policy := range []string{"restart", "stop"} {
			t.Run(rt+"/"+policy, func(t *testing.T) {
				r := newRig(t, rt, rigOpts{engine: fmt.Sprintf("on_lost_sandbox = %q", policy)})
				first := r.serve()
				sid := r.create(first)
				first.waitRunning(sid)
				first.observationOf(sid, first.submit(sid, "export LEFT_BEFORE_CRASH=old-shell"))
				lost := r.handleOf(sid)
				inflight := first.submit(sid, "sleep 30; echo never")
				time.Sleep(500 * time.Millisecond) // let the agent start it
				first.kill()
				r.remove(lost)

				second := r.serve()
				obs := second.observationOf(sid, inflight)
				if obs.Observation != "error" || obs.Extras["error_id"] != "AGENT_ERROR$SANDBOX_LOST" {
					t.Fatalf("in-flight action answered with %+v, want an error AGENT_ERROR$SANDBOX_LOST", obs)
				}
				if policy == "stop" {
					second.waitState(sid, "STOPPED")
					if code, b := second.do("POST", "api/sessions/"+sid+"/actions", `{"action":"run","args":{"command":"echo no"}}`); code != 409 {
						t.Fatalf("action on the stopped session = %d %s, want 409", code, b)
					}
					if ids := r.sandboxes(); len(ids) != 0 {
						t.Fatalf("the stopped session left sandboxes %v", ids)
					}
					if code, b := second.do("POST", "api/sessions/"+sid+"/start", ""); code != 200 {
						t.Fatalf("start again = %d %s", code, b)
					}
				}
				second.waitRunning(sid)
				next := second.submit(sid, "echo next-runs:$LEFT_BEFORE_CRASH:")
				got := second.observationOf(sid, next)
				if !strings.Contains(got.Content, "next-runs::") || exitCodeOf(got) != float64(0) {
					t.Fatalf("next action in the new sandbox = %+v, want next-runs:: (a new shell)", got)
				}
				if n := len(answersTo(second.events(sid), inflight)); n != 1 {
					t.Fatalf("in-flight action has %d observations, want exactly 1", n)
				}
				now := r.handleOf(sid)
				if now == "" || now == lost {
					t.Fatalf("session's sandbox is %q, want a new one (lost %s)", now, lost)
				}
				if ids := r.sandboxes(); len(ids) != 1 || ids[0] != now {
					t.Fatalf("sandboxes = %v, want only the new %s", ids, now)
				}
				r.shutdown(second)
			})
		}
	}
}

func TestServeKilledDuringSandboxStartRecoversTheSessionAndReapsTheHalfStartedSandbox(t *testing.T) {
	cases := []struct {
		name, runtime string
		slowStart     bool
		// killWhen waits for the moment to kill the first serve.
		killWhen func(t *testing.T, r *rig, p *serveProc, sid string)
	}{
		{name: "local/right after create", runtime: "local", killWhen: func(*testing.T, *rig, *serveProc, string) {}},
		{name: "docker/right after create", runtime: "docker", killWhen: func(*testing.T, *rig, *serveProc, string) {}},
		// The docker backend only mounts an ELF agent, so the slow start
		// (a shell script that sleeps, then execs the agent) is local's.
		{name: "local/agent started, not yet listening", runtime: "local", slowStart: true,
			killWhen: func(t *testing.T, r *rig, p *serveProc, sid string) {
				r.waitSandboxes(func(ids []string) bool { return len(ids) == 1 }, "the half-started sandbox")
				if s := p.session(sid); s["status"] == "RUNNING" {
					t.Fatalf("session RUNNING before its slow agent listens: %v", s)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, c.runtime, rigOpts{slowStart: c.slowStart})
			first := r.serve()
			sid := r.create(first)
			c.killWhen(t, r, first, sid)
			first.kill()
			// The Docker daemon may still finish a create the dead serve
			// asked for; a container that appears after the restarted
			// serve's one reap at start is not reaped until the next
			// serve or exec starts (a known gap). Let it settle first.
			before := r.sandboxes()
			for settled := 0; settled < 2; {
				time.Sleep(time.Second)
				now := r.sandboxes()
				if strings.Join(now, ",") == strings.Join(before, ",") {
					settled++
				} else {
					settled, before = 0, now
				}
			}

			second := r.serve()
			// The 201 of the create may come before the session's first
			// record is stored: then nothing of it was stored and it is
			// unknown (404). Once its record is stored, it comes up: a
			// crash during a start is not the user's problem.
			if code, b := second.do("GET", "api/sessions/"+sid, ""); code == 404 {
				t.Logf("the session was not stored yet: %s", b)
				if _, err := os.Stat(filepath.Join(r.store, sid+".events")); err == nil {
					t.Fatalf("an unknown session has an event log")
				}
				r.waitSandboxes(func(ids []string) bool { return len(ids) == 0 }, "the unknown session's sandbox to be reaped")
				r.shutdown(second)
				return
			}
			second.waitRunning(sid)
			got := second.observationOf(sid, second.submit(sid, "echo up-after-crash"))
			if !strings.Contains(got.Content, "up-after-crash") {
				t.Fatalf("first action after recovery = %+v", got)
			}
			now := r.handleOf(sid)
			// The half-started sandbox of the first serve is reaped (or
			// re-attached, when its handle made it to the record).
			if ids := r.sandboxes(); len(ids) != 1 || ids[0] != now {
				t.Fatalf("sandboxes = %v (before restart %v), want only the session's %s", ids, before, now)
			}
			r.shutdown(second)
		})
	}
}

func TestServeKilledDuringStopLeavesNoSandboxAndAConsistentSession(t *testing.T) {
	// A stop is durable once its final STOPPED record is written; until
	// then (the DELETE was not answered) the session is recovered like
	// any running one. Either way exactly the sandboxes the record names
	// exist, and the session is usable: running, or startable again.
	for _, rt := range recoveryRuntimes {
		t.Run(rt, func(t *testing.T) {
			r := newRig(t, rt, rigOpts{})
			first := r.serve()
			sid := r.create(first)
			first.waitRunning(sid)
			first.observationOf(sid, first.submit(sid, "echo before-stop"))
			req, _ := http.NewRequest("DELETE", first.base+"api/sessions/"+sid, nil)
			go func() {
				if res, err := http.DefaultClient.Do(req); err == nil {
					res.Body.Close()
				}
			}()
			time.Sleep(20 * time.Millisecond) // the DELETE is on its way; the stop is under way or not
			first.kill()

			second := r.serve()
			switch st := second.waitState(sid, "RUNNING", "STOPPED"); st {
			case "STOPPED":
				if h := r.handleOf(sid); h != "" {
					t.Fatalf("stopped session's record still names sandbox %s", h)
				}
				if ids := r.sandboxes(); len(ids) != 0 {
					t.Fatalf("stopped session left sandboxes %v", ids)
				}
				if code, b := second.do("POST", "api/sessions/"+sid+"/start", ""); code != 200 {
					t.Fatalf("start again = %d %s", code, b)
				}
				second.waitRunning(sid)
			case "RUNNING":
				t.Logf("the stop had not completed: session recovered")
			}
			got := second.observationOf(sid, second.submit(sid, "echo after-stop-crash"))
			if !strings.Contains(got.Content, "after-stop-crash") {
				t.Fatalf("action after recovery = %+v", got)
			}
			if ids, h := r.sandboxes(), r.handleOf(sid); len(ids) != 1 || ids[0] != h {
				t.Fatalf("sandboxes = %v, want only the session's %s", ids, h)
			}
			if code, b := second.do("DELETE", "api/sessions/"+sid, ""); code != 200 {
				t.Fatalf("stop = %d %s", code, b)
			}
			r.waitSandboxes(func(ids []string) bool { return len(ids) == 0 }, "no sandbox after the stop")
			r.shutdown(second)
		})
	}
}

// slowBody is a multipart upload body of size bytes that stalls after
// half of them until released.
type slowBody struct {
	r       io.Reader
	sent    int
	half    int
	reached chan struct{}
	release chan struct{}
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.sent >= b.half && b.reached != nil {
		close(b.reached)
		b.reached = nil
		<-b.release
		return 0, io.ErrUnexpectedEOF
	}
	if b.sent < b.half && len(p) > b.half-b.sent {
		p = p[:b.half-b.sent]
	}
	n, err := b.r.Read(p)
	b.sent += n
	return n, err
}

func multipartFile(name string, size int) (body []byte, contentType string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	w, _ := mw.CreateFormFile("file", name)
	_, _ = w.Write(bytes.Repeat([]byte("0123456789abcdef"), size/16))
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

func TestServeKilledDuringAFileUploadKeepsTheSessionAndTheStore(t *testing.T) {
	for _, rt := range recoveryRuntimes {
		t.Run(rt, func(t *testing.T) {
			r := newRig(t, rt, rigOpts{})
			first := r.serve()
			sid := r.create(first)
			first.waitRunning(sid)
			dest := "/tmp/corral-upload-" + sid
			before := first.submit(sid, "mkdir -p "+dest+"; echo before-upload")
			first.observationOf(sid, before)

			const size = 32 << 20
			data, ctype := multipartFile("big.bin", size)
			body := &slowBody{r: bytes.NewReader(data), half: len(data) / 2, reached: make(chan struct{}), release: make(chan struct{})}
			defer close(body.release)
			req, _ := http.NewRequest("POST", first.base+"api/sessions/"+sid+"/files?destination="+dest, body)
			req.Header.Set("Content-Type", ctype)
			req.ContentLength = int64(len(data))
			reached := body.reached
			go func() {
				if res, err := http.DefaultClient.Do(req); err == nil {
					res.Body.Close()
				}
			}()
			select {
			case <-reached:
			case <-time.After(60 * time.Second):
				t.Fatal("the upload did not send half its body in 60s")
			}
			time.Sleep(200 * time.Millisecond) // the server has read what was sent
			first.kill()

			second := r.serve()
			second.waitRunning(sid)
			evs := second.events(sid)
			if len(answersTo(evs, before)) != 1 {
				t.Fatalf("the action before the upload lost its observation: %+v", evs)
			}
			// The upload is retried in full and lands whole.
			data2, ctype2 := multipartFile("big.bin", size)
			res, err := http.Post(second.base+"api/sessions/"+sid+"/files?destination="+dest, ctype2, bytes.NewReader(data2))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 201 {
				t.Fatalf("upload after recovery = %d %s", res.StatusCode, b)
			}
			after := second.submit(sid, "wc -c < "+dest+"/big.bin; rm -rf "+dest)
			if got := second.observationOf(sid, after); !strings.Contains(got.Content, fmt.Sprint(size)) {
				t.Fatalf("uploaded file size: %q, want %d", got.Content, size)
			}
			if after <= before {
				t.Fatalf("ids restarted: %d after %d", after, before)
			}
			r.shutdown(second)
		})
	}
}

// logRecords are the ids and end offsets of the records of an event log
// (eventbus's format: a 16-byte header, then records of a 16-byte header
// [length u32, crc u32, id u64] and length bytes of payload).
func logRecords(t *testing.T, path string) (ids []int64, ends []int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 16 || string(data[:8]) != "CRLEVLOG" {
		t.Fatalf("%s is not an event log", path)
	}
	for off := int64(16); off+16 <= int64(len(data)); {
		n := int64(binary.LittleEndian.Uint32(data[off:]))
		id := int64(binary.LittleEndian.Uint64(data[off+8:]))
		off += 16 + n
		ids, ends = append(ids, id), append(ends, off)
	}
	return ids, ends
}

func TestTornLastRecordIsTruncatedReportedAndIDsContinueFromTheLastWholeEvent(t *testing.T) {
	r := newRig(t, "local", rigOpts{})
	first := r.serve()
	sid := r.create(first)
	first.waitRunning(sid)
	first.observationOf(sid, first.submit(sid, "export LEFT_BEFORE_CRASH=still-here"))
	last := first.submit(sid, "echo last-answer")
	first.observationOf(sid, last)
	first.kill()

	logPath := filepath.Join(r.store, sid+".events")
	ids, ends := logRecords(t, logPath)
	if len(ids) < 2 {
		t.Fatalf("log has %d records", len(ids))
	}
	torn, lastWhole := ids[len(ids)-1], ids[len(ids)-2]
	if err := os.Truncate(logPath, ends[len(ends)-1]-3); err != nil {
		t.Fatal(err)
	}

	second := r.serve()
	second.waitRunning(sid)
	if log := second.stderr.String(); !strings.Contains(log, "torn") || !strings.Contains(log, sid+".events") {
		t.Fatalf("the truncation is not reported in the log:\n%s", log)
	}
	next := second.submit(sid, "echo $LEFT_BEFORE_CRASH")
	if got := second.observationOf(sid, next); !strings.Contains(got.Content, "still-here") {
		t.Fatalf("recovered session lost its shell: %q", got.Content)
	}
	evs := second.events(sid)
	// The last action is answered exactly once, whether or not its
	// observation was the torn record (then the agent answers it again).
	if a := answersTo(evs, last); len(a) != 1 || !strings.Contains(a[0].Content, "last-answer") {
		t.Fatalf("last action's observations after recovery: %+v", a)
	}
	r.shutdown(second)
	// Every id of the log (the API leaves Corral's own events out) runs
	// on from the last whole event: the torn id is given again.
	got, _ := logRecords(t, logPath)
	for i, id := range got {
		if id != int64(i) {
			t.Fatalf("log ids have a gap or repeat at %d: %v", id, got)
		}
	}
	if len(got) <= int(lastWhole)+1 || next <= lastWhole {
		t.Fatalf("log ids %v (next action %d) do not run on from the last whole event %d (torn %d)", got, next, lastWhole, torn)
	}
}
