package agentwire

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"corral/eventbus"
)

// deadController plays a controller process that sends exec id and dies
// (kill -9) once the action has started: its one connection is closed
// under it, without a cancel frame, and it never reconnects.
func deadController(t *testing.T, a *agent, id, cmd string) {
	t.Helper()
	var mu sync.Mutex
	var conn net.Conn
	dialer := func(ctx context.Context) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if conn != nil {
			return nil, errors.New("this controller is dead")
		}
		network, address, _, err := parseAddr(a.addr)
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		conn, err = d.DialContext(ctx, network, address)
		return conn, err
	}
	c := dial(t, a.addr, WithDialer(dialer), WithGracePeriod(100*time.Millisecond), WithBackoff(10*time.Millisecond, 10*time.Millisecond))
	started := make(chan struct{})
	done := make(chan error, 1)
	var once sync.Once
	go func() {
		_, err := c.Execute(context.Background(), id, runAction(cmd), func(uint64, []byte) { once.Do(func() { close(started) }) })
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the first controller's Execute ended before any output: %v", err)
	}
	mu.Lock()
	conn.Close() // the process is gone: no cancel, no close frame
	mu.Unlock()
	if err := <-done; !errors.Is(err, ErrAgentLost) {
		t.Fatalf("the dead controller's Execute: %v, want ErrAgentLost", err)
	}
	c.Close()
	// The agent sees the connection go away; the request has no client now.
	if err := waitFor(10*time.Second, func() bool {
		a.srv.mu.Lock()
		defer a.srv.mu.Unlock()
		return len(a.srv.conns) == 0
	}); err != nil {
		t.Fatal("the agent still counts the dead controller's connection")
	}
}

func requestDone(s *Server, id string) bool {
	s.mu.Lock()
	r := s.reqs[id]
	s.mu.Unlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

func TestNewControllerResumesARequestWhoseControllerDied(t *testing.T) {
	tests := []struct {
		name string
		// finishFirst: the action completes while no client is connected.
		finishFirst bool
		chunkBuffer int
		// extra output the action prints before waiting (to be evicted)
		bulk      string
		wantGap   bool
		wantStart string
	}{
		{name: "a running action keeps running and its output is replayed from seq 1", wantStart: "started\n"},
		{name: "an action that finished while nobody was connected is answered from its retained result", finishFirst: true, wantStart: "started\n"},
		{name: "output evicted before the new controller came is reported as a gap and the result is complete", finishFirst: true, chunkBuffer: 64 << 10,
			bulk: `head -c 300000 /dev/zero | tr '\0' x; `, wantGap: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []ServerOption
			if tt.chunkBuffer > 0 {
				opts = append(opts, WithChunkBuffer(tt.chunkBuffer))
			}
			a := startAgent(t, "unix", opts...)
			gate := filepath.Join(t.TempDir(), "gate")
			cmd := `echo started; ` + tt.bulk + `while [ ! -e ` + gate + ` ]; do sleep 0.02; done; echo done`
			const id = "sess-1:ev-7"
			deadController(t, a, id, cmd)
			if requestDone(a.srv, id) {
				t.Fatal("the action ended when its controller died")
			}
			if tt.finishFirst {
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := waitFor(10*time.Second, func() bool { return requestDone(a.srv, id) }); err != nil {
					t.Fatal("the action did not finish with no client connected")
				}
			}

			var lost uint64
			c2 := dial(t, a.addr, WithGapHandler(func(_ string, n uint64) { lost += n }))
			var streamed strings.Builder
			var seqs []uint64
			obs, err := c2.Execute(context.Background(), id, runAction(cmd), func(seq uint64, d []byte) {
				if len(seqs) == 0 && !tt.finishFirst {
					_ = os.WriteFile(gate, nil, 0o644) // attached: let the action end
				}
				seqs = append(seqs, seq)
				streamed.Write(d)
			})
			if err != nil {
				t.Fatal(err)
			}
			run, ok := obs.Observation.(*eventbus.CmdOutputObservation)
			if !ok || run.Metadata.ExitCode != 0 || !strings.HasSuffix(obs.Content, "done\n") {
				t.Fatalf("observation %T %q, want exit 0 ending in done", obs.Observation, obs.Content)
			}
			if n := a.exec.count(cmd); n != 1 {
				t.Fatalf("the action ran %d times, want once", n)
			}
			if tt.wantGap {
				if lost == 0 || uint64(streamed.Len())+lost != uint64(len(obs.Content)) {
					t.Fatalf("streamed %d + lost %d bytes, output %d: want a gap accounting for the rest", streamed.Len(), lost, len(obs.Content))
				}
				return
			}
			if lost != 0 || streamed.String() != obs.Content || !strings.HasPrefix(streamed.String(), tt.wantStart) {
				t.Fatalf("streamed %q (lost %d), want the whole output %q from the start", streamed.String(), lost, obs.Content)
			}
			for i, s := range seqs {
				if s != uint64(i+1) {
					t.Fatalf("seqs %v, want 1, 2, ...", seqs)
				}
			}
		})
	}
}

func TestRequestIDUnknownToARestartedAgent(t *testing.T) {
	old := startAgent(t, "unix")
	const id = "sess-1:ev-9"
	c1 := dial(t, old.addr)
	if _, err := c1.Execute(context.Background(), id, runAction("echo first"), nil); err != nil {
		t.Fatal(err)
	}
	recorded := c1.AgentInstance()
	c1.Close()

	restarted := startAgent(t, "unix") // a new agent process for the same sandbox
	c2 := dial(t, restarted.addr)
	if c2.AgentInstance() == recorded || recorded == "" {
		t.Fatalf("instance %q after a restart, %q before: want two different ids", c2.AgentInstance(), recorded)
	}
	tests := []struct {
		name string
		call func() (*eventbus.Event, error)
	}{
		{"Resume fails with ErrUnknownRequest and names the restart", func() (*eventbus.Event, error) {
			return c2.Resume(context.Background(), id, nil)
		}},
		{"Resume of an id the old agent never saw fails the same way", func() (*eventbus.Event, error) {
			return c2.Resume(context.Background(), "never-sent", nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs, err := tt.call()
			var re *RemoteError
			if !errors.Is(err, ErrUnknownRequest) || !errors.As(err, &re) || re.Code != CodeUnknownRequest ||
				!strings.Contains(err.Error(), "restarted") || !strings.Contains(err.Error(), restarted.srv.instance) {
				t.Fatalf("got %v, %v; want ErrUnknownRequest naming the agent instance and a possible restart", obs, err)
			}
		})
	}
	if n := restarted.exec.total.Load(); n != 0 {
		t.Fatalf("the restarted agent ran %d actions", n)
	}
}

func TestResumeAnswersFromTheRunningOrStoredRequestAndNeverRuns(t *testing.T) {
	a := startAgent(t, "unix", WithResultRetention(time.Hour, 1))
	c := dial(t, a.addr)
	if _, err := c.Execute(context.Background(), "r1", runAction("echo one"), nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		id   string
		want string // "" = an invalid-id error
	}{
		{"a stored result is replayed", "r1", "one\n"},
		{"an invalid id is refused before sending", "r/1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs, err := c.Resume(context.Background(), tt.id, nil)
			if tt.want != "" {
				if err != nil || obs.Content != tt.want {
					t.Fatalf("got %v %v, want %q", obs, err, tt.want)
				}
			} else if err == nil || !strings.Contains(err.Error(), "only letters") {
				t.Fatalf("got %v, want an invalid-id error", err)
			}
		})
	}
	// A newer result pushes r1 out (keep 1): r1 is then expired, not run.
	if _, err := c.Execute(context.Background(), "r2", runAction("echo two"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resume(context.Background(), "r1", nil); !errors.Is(err, ErrResultExpired) {
		t.Fatalf("resume of a dropped result: %v, want ErrResultExpired", err)
	}
	if _, err := c.Execute(context.Background(), "r1", runAction("echo one"), nil); !errors.Is(err, ErrResultExpired) {
		t.Fatalf("exec of a dropped result: %v, want ErrResultExpired", err)
	}
	if n := a.exec.count("echo one"); n != 1 {
		t.Fatalf("echo one ran %d times", n)
	}
}

func TestRetentionDefaultsOutlastAControllerRestart(t *testing.T) {
	s, err := NewServer(newTestExec(t), testToken)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.o.resultTTL < 10*time.Minute || s.o.resultTTL != DefaultResultTTL || s.o.keepResults != DefaultKeepResults {
		t.Fatalf("defaults %s / %d results; want >= 10m and the documented constants", s.o.resultTTL, s.o.keepResults)
	}
	for _, bad := range []ServerOption{WithResultRetention(0, 10), WithResultRetention(time.Minute, 0)} {
		if s, err := NewServer(newTestExec(t), testToken, bad); err == nil {
			s.Close()
			t.Fatal("NewServer accepted a retention that keeps nothing")
		}
	}
}
