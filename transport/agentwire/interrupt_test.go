package agentwire

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"corral/eventbus"
)

// execWatched starts an Execute of cmd on c; seen closes once its live
// output contains want, res receives the observation (or error).
func execWatched(c *Client, cmd, want string) (seen <-chan struct{}, res <-chan execResult) {
	s, r := make(chan struct{}), make(chan execResult, 1)
	var mu sync.Mutex
	var out strings.Builder
	var once sync.Once
	go func() {
		obs, err := c.Execute(context.Background(), "", runAction(cmd), func(_ uint64, b []byte) {
			mu.Lock()
			defer mu.Unlock()
			out.Write(b)
			if strings.Contains(out.String(), want) {
				once.Do(func() { close(s) })
			}
		})
		r <- execResult{obs, err}
	}()
	return s, r
}

type execResult struct {
	obs *eventbus.Event
	err error
}

// The interrupt goes past the running exec, from any connection: the
// command is signalled now and its exec answers with its observation.
func TestInterruptReachesTheRunningActionFromAnotherConnection(t *testing.T) {
	a := startAgent(t, "unix")
	runner, other := dial(t, a.addr), dial(t, a.addr)
	seen, res := execWatched(runner, "echo started; sleep 100; echo not-interrupted", "started")
	<-seen
	if err := other.Interrupt(context.Background()); err != nil {
		t.Fatalf("Interrupt: %v", err)
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("the interrupted exec failed: %v", r.err)
	}
	if strings.Contains(r.obs.Content, "not-interrupted") {
		t.Errorf("the command ran to its end: %q", r.obs.Content)
	}
	if a.exec.count("echo started; sleep 100; echo not-interrupted") != 1 {
		t.Errorf("the action ran %d times", a.exec.count("echo started; sleep 100; echo not-interrupted"))
	}
	// Nothing runs now: a no-op, not an error.
	if err := other.Interrupt(context.Background()); err != nil {
		t.Errorf("Interrupt with nothing running: %v", err)
	}
}

func TestAgentAnnouncesAndAnswersInterrupt(t *testing.T) {
	a := startAgent(t, "unix")
	r := rawDial(t, a, false)
	r.send(&Frame{Type: TypeHello, Protocol: ProtocolVersion, Version: "test"})
	hello := r.read()
	if hello.Type != TypeHello || len(hello.Features) != 1 || hello.Features[0] != FeatureInterrupt {
		t.Fatalf("hello %+v, want features [%q]", hello, FeatureInterrupt)
	}
	r.send(&Frame{Type: TypeInterrupt, ReqID: "i-1"})
	if f := r.read(); f.Type != TypeInterrupted || f.ReqID != "i-1" || f.Running {
		t.Fatalf("got %+v, want interrupted i-1 with nothing running", f)
	}
	r.send(&Frame{Type: TypeInterrupt})
	if f := r.read(); f.Type != TypeError || f.Code != CodeBadFrame || !strings.Contains(f.Message, "req_id") {
		t.Fatalf("interrupt without req_id: got %+v, want bad_frame naming req_id", f)
	}
}

// noInterrupt hides the executor's Interrupt: an agent built before the
// feature.
type noInterrupt struct{ Executor }

func TestOlderAgentWithoutInterruptIsAClearError(t *testing.T) {
	a := startAgentExec(t, "unix", noInterrupt{newTestExec(t)}, WithAgentVersion("v0.old"))
	c := dial(t, a.addr)
	err := c.Interrupt(context.Background())
	if !errors.Is(err, ErrInterruptUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Interrupt on an older agent: %v; want ErrInterruptUnsupported (errors.ErrUnsupported)", err)
	}
	for _, want := range []string{"predates the interrupt frame", `"v0.old"`, a.addr[len("unix://"):]} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// A frame sent anyway is refused naming its request, so a waiting
	// client fails at once.
	r := rawDial(t, a, true)
	r.send(&Frame{Type: TypeInterrupt, ReqID: "i-2"})
	if f := r.read(); f.Type != TypeError || f.ReqID != "i-2" || f.Code != CodeBadFrame || !strings.Contains(f.Message, "cannot interrupt") {
		t.Fatalf("got %+v, want a bad_frame error for i-2", f)
	}
}

// A frame this agent cannot decode (say, from a newer client) is answered
// with an error that names its request when it has a valid req_id.
func TestUndecodableFrameErrorNamesItsRequest(t *testing.T) {
	a := startAgent(t, "unix")
	r := rawDial(t, a, true)
	cases := []struct{ name, data, id string }{
		{"unknown type with an id", `{"type":"from_the_future","req_id":"f-1"}`, "f-1"},
		{"unknown type with a bad id", `{"type":"from_the_future","req_id":"a b"}`, ""},
		{"no id", `{"type":"from_the_future"}`, ""},
	}
	for _, tc := range cases {
		r.sendRaw(websocket.MessageText, []byte(tc.data))
		if f := r.read(); f.Type != TypeError || f.Code != CodeBadFrame || f.ReqID != tc.id {
			t.Errorf("%s: got %+v, want bad_frame for %q", tc.name, f, tc.id)
		}
	}
}
