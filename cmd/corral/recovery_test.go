package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveProc is a real `corral serve` process of a test.
type serveProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	stderr *syncBuffer
}

// buildCorral builds corral and corral-agent into dir.
func buildCorral(t *testing.T, dir string) (corral, agent string) {
	t.Helper()
	corral, agent = filepath.Join(dir, "corral"), filepath.Join(dir, "corral-agent")
	for _, b := range []struct{ out, pkg string }{{corral, "corral/cmd/corral"}, {agent, "corral/cmd/corral-agent"}} {
		c := exec.Command("go", "build", "-o", b.out, b.pkg)
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return corral, agent
}

// startServe starts `corral serve --config cfg [extra...]` and waits for
// its URL.
func startServe(t *testing.T, corral, cfg string, extra ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(corral, append([]string{"serve", "--config", cfg}, extra...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{t: t, cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	urls := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`open (http://127\.0\.0\.1:\d+/)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		close(urls)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("serve exited before serving; stderr:\n%s", p.stderr.String())
		}
		p.base = u
	case <-time.After(60 * time.Second):
		t.Fatalf("serve printed no URL in 60s; stderr:\n%s", p.stderr.String())
	}
	return p
}

// kill ends the process with SIGKILL, as a crash does.
func (p *serveProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

func (p *serveProc) do(method, path, body string) (int, []byte) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

type apiEvent struct {
	ID          int64          `json:"id"`
	Action      string         `json:"action"`
	Observation string         `json:"observation"`
	Cause       *int64         `json:"cause"`
	Content     string         `json:"content"`
	Extras      map[string]any `json:"extras"`
}

// observationOf polls the session's events until the observation of
// action id is stored.
func (p *serveProc) observationOf(sid string, id int64) apiEvent {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		code, b := p.do("GET", fmt.Sprintf("api/sessions/%s/events?after=%d", sid, id), "")
		if code != 200 {
			p.t.Fatalf("events = %d %s", code, b)
		}
		var evs []apiEvent
		if err := json.Unmarshal(b, &evs); err != nil {
			var wrapped struct{ Events []apiEvent }
			if err2 := json.Unmarshal(b, &wrapped); err2 != nil {
				p.t.Fatalf("events body: %v: %s", err, b)
			}
			evs = wrapped.Events
		}
		for _, ev := range evs {
			if ev.Observation != "" && ev.Cause != nil && *ev.Cause == id {
				return ev
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("no observation of action %d in 90s; stderr:\n%s", id, p.stderr.String())
	return apiEvent{}
}

func (p *serveProc) submit(sid, command string) int64 {
	p.t.Helper()
	code, b := p.do("POST", "api/sessions/"+sid+"/actions", fmt.Sprintf(`{"action":"run","args":{"command":%q}}`, command))
	if code != 202 && code != 200 {
		p.t.Fatalf("submit %q = %d %s", command, code, b)
	}
	var r struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		p.t.Fatalf("submit reply %s: %v", b, err)
	}
	return r.ID
}

func (p *serveProc) session(sid string) map[string]any {
	p.t.Helper()
	code, b := p.do("GET", "api/sessions/"+sid, "")
	if code != 200 {
		p.t.Fatalf("get session = %d %s", code, b)
	}
	var s map[string]any
	_ = json.Unmarshal(b, &s)
	return s
}

func (p *serveProc) waitRunning(sid string) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		switch s := p.session(sid); s["status"] {
		case "RUNNING":
			return
		case "ERROR", "STOPPED":
			p.t.Fatalf("session %s is %v: %v; stderr:\n%s", sid, s["status"], s["error"], p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("session %s not RUNNING in 60s: %v; stderr:\n%s", sid, p.session(sid), p.stderr.String())
}

func TestServeKilledMidCommandRecoversTheSessionAndTheCommandsOutput(t *testing.T) {
	r := newRig(t, "local", rigOpts{})
	first := r.serve()
	code, b := first.do("POST", "api/sessions", `{"runtime":"local"}`)
	if code != 201 {
		t.Fatalf("create = %d %s", code, b)
	}
	var created struct {
		ID      string    `json:"id"`
		Created time.Time `json:"created"`
	}
	_ = json.Unmarshal(b, &created)
	sid := created.ID
	first.waitRunning(sid)
	first.observationOf(sid, first.submit(sid, "export LEFT_BEFORE_CRASH=still-here"))
	// A command that is running when the server dies, and ends while no
	// server is up.
	inflight := first.submit(sid, "sleep 2; echo finished-while-down")
	time.Sleep(500 * time.Millisecond) // let the agent start it
	first.kill()

	// A second server on the same store while the first holds it is
	// refused; here the first is gone, so the restart takes the store.
	second := r.serve()
	obs := second.observationOf(sid, inflight)
	if obs.Observation != "run" || !strings.Contains(obs.Content, "finished-while-down") {
		t.Fatalf("in-flight action answered with %+v, want its real output", obs)
	}
	if ec, _ := obs.Extras["metadata"].(map[string]any)["exit_code"].(float64); ec != 0 {
		t.Fatalf("exit code = %v, want 0 (extras %v)", ec, obs.Extras)
	}
	second.waitRunning(sid)
	after := second.submit(sid, "echo $LEFT_BEFORE_CRASH")
	if after <= inflight {
		t.Fatalf("new action id %d does not continue after %d", after, inflight)
	}
	if got := second.observationOf(sid, after); !strings.Contains(got.Content, "still-here") {
		t.Fatalf("the recovered session lost its shell: %q", got.Content)
	}
	s := second.session(sid)
	if c, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(s["created"])); !c.Equal(created.Created) {
		t.Fatalf("created = %v after recovery, want %v", s["created"], created.Created)
	}
	code, b = second.do("GET", "api/sessions", "")
	if code != 200 || !strings.Contains(string(b), sid) {
		t.Fatalf("list after recovery = %d %s", code, b)
	}
}

func TestSecondServeOnTheSameStoreIsRefusedNamingTheHolder(t *testing.T) {
	r := newRig(t, "local", rigOpts{})
	first := r.serve()
	out, err := exec.Command(r.corral, "serve", "--config", r.cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("second serve on the same store started: %s", out)
	}
	pid := fmt.Sprint(first.cmd.Process.Pid)
	if !strings.Contains(string(out), "in use") || !strings.Contains(string(out), pid) {
		t.Fatalf("refusal does not name the holder (pid %s): %s", pid, out)
	}
}

func TestStoppedSessionStartsAgainKeepingItsEventIDs(t *testing.T) {
	r := newRig(t, "local", rigOpts{})
	p := r.serve()
	s := struct{ ID string }{r.create(p)}
	p.waitRunning(s.ID)
	firstID := p.submit(s.ID, "echo one")
	p.observationOf(s.ID, firstID)
	if code, b := p.do("DELETE", "api/sessions/"+s.ID, ""); code != 200 {
		t.Fatalf("stop = %d %s", code, b)
	}
	if code, b := p.do("POST", "api/sessions/"+s.ID+"/actions", `{"action":"run","args":{"command":"echo no"}}`); code != 409 {
		t.Fatalf("action on a stopped session = %d %s, want 409", code, b)
	}
	if code, b := p.do("POST", "api/sessions/"+s.ID+"/start", ""); code != 200 {
		t.Fatalf("start again = %d %s", code, b)
	}
	p.waitRunning(s.ID)
	again := p.submit(s.ID, "echo two")
	if got := p.observationOf(s.ID, again); !strings.Contains(got.Content, "two") {
		t.Fatalf("after restart: %q", got.Content)
	}
	if again <= firstID {
		t.Fatalf("ids restarted: %d after %d", again, firstID)
	}
}
