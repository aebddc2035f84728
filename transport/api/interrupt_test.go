package api

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"corral/eventbus"
)

// Interrupt: the test engine runs commands with os/exec and cannot
// interrupt them, and says so; the interrupt itself is tested on the real
// engine (TestInterruptThroughTheAPI).
func (e *testEngine) Interrupt(_ context.Context, id string) error {
	if _, err := e.session(id); err != nil {
		return err
	}
	return fmt.Errorf("the test engine cannot interrupt commands: %w", ErrNotSupported)
}

// wsWatch reads a session's WebSocket, failing on any PS1 block in an
// output frame, and collects output and observations by action.
type wsWatch struct {
	t   *testing.T
	ctx context.Context
	ws  *websocket.Conn
	out map[int64]*strings.Builder
	obs map[int64]*eventbus.Event
}

func newWSWatch(ctx context.Context, t *testing.T, ws *websocket.Conn) *wsWatch {
	return &wsWatch{t: t, ctx: ctx, ws: ws, out: map[int64]*strings.Builder{}, obs: map[int64]*eventbus.Event{}}
}

// until reads frames until done() holds.
func (w *wsWatch) until(what string, done func() bool) {
	w.t.Helper()
	for !done() {
		fr, err := readFrame(w.ctx, w.t, w.ws)
		if err != nil {
			w.t.Fatalf("websocket while waiting for %s: %v", what, err)
		}
		switch fr.Type {
		case FrameOutput:
			if strings.Contains(fr.Data, "PS1") {
				w.t.Fatalf("an output frame carries a PS1 block: %q", fr.Data)
			}
			if w.out[fr.ActionID] == nil {
				w.out[fr.ActionID] = &strings.Builder{}
			}
			w.out[fr.ActionID].WriteString(fr.Data)
		case FrameEvent:
			e, err := eventbus.Unmarshal(fr.Event)
			if err != nil {
				w.t.Fatalf("event frame: %v", err)
			}
			if !e.IsAction() && e.Cause != nil {
				w.obs[*e.Cause] = e
			}
		}
	}
}

func (w *wsWatch) output(id int64) string {
	if b := w.out[id]; b != nil {
		return b.String()
	}
	return ""
}

// TestInterruptThroughTheAPI: POST /interrupt ends the running command at
// once with exit code 130 and the C-c suffix; the action queued behind it
// then runs and gets its own observation. No timing is asserted: the test
// waits on the observations (the command would otherwise sleep 100 s).
func TestInterruptThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real local sandbox; skipped in -short mode")
	}
	f := newRealFixture(t, nil)
	id := f.readySession()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ws := f.dial(ctx, id, -1, nil)
	defer ws.CloseNow()
	w := newWSWatch(ctx, t, ws)

	cases := []struct{ name, command, started string }{
		{"sleep", "echo started; sleep 100", "started"},
		{"busy loop", "while true; do echo tick; sleep 0.5; done", "tick"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			var running, queued actionAccepted
			f.mustJSON("POST", "/api/sessions/"+id+"/actions", map[string]any{"action": "run", "args": map[string]any{"command": tc.command}}, 202, &running)
			f.mustJSON("POST", "/api/sessions/"+id+"/actions", map[string]any{"action": "run", "args": map[string]any{"command": "echo queued"}}, 202, &queued)
			w.until("the command's output", func() bool { return strings.Contains(w.output(running.ID), tc.started) })

			var ack interruptAccepted
			f.mustJSON("POST", "/api/sessions/"+id+"/interrupt", nil, 202, &ack)
			if ack.SessionID != id || ack.Status != "delivered" {
				t.Errorf("interrupt answer %+v", ack)
			}
			w.until("both observations", func() bool { return w.obs[running.ID] != nil && w.obs[queued.ID] != nil })
			obs, next := w.obs[running.ID], w.obs[queued.ID]
			o, ok := obs.Observation.(*eventbus.CmdOutputObservation)
			if want := "\n[The command completed with exit code 130. CTRL+C was sent.]"; !ok || o.Metadata.ExitCode != 130 || o.Metadata.Suffix != want {
				t.Fatalf("interrupted command's observation: %s %q %+v; want exit 130 and %q", obs.Type(), obs.Content, obs.Observation, want)
			}
			if next.Content != "queued" || next.ID < obs.ID {
				t.Errorf("queued action: %q (event %d, the interrupted one's is %d); want it run after", next.Content, next.ID, obs.ID)
			}
		})
	}
	w.t = t

	t.Run("NothingRunningIsANoOp", func(t *testing.T) {
		f.mustJSON("POST", "/api/sessions/"+id+"/interrupt", nil, 202, nil)
		code, b, _ := f.do("POST", "/api/sessions/"+id+"/actions?wait=true", map[string]any{"action": "run", "args": map[string]any{"command": "echo fine"}})
		if ev, err := eventbus.Unmarshal(b); code != 200 || err != nil || ev.Content != "fine" {
			t.Errorf("after a no-op interrupt: %d %s", code, b)
		}
	})
	t.Run("UnknownSessionIs404", func(t *testing.T) {
		code, b, _ := f.do("POST", "/api/sessions/no-such-session/interrupt", nil)
		if c, _ := errorCode(t, b); code != 404 || c != "not_found" {
			t.Errorf("= %d %s, want 404 not_found", code, b)
		}
	})
	t.Run("StoppedSessionIs409", func(t *testing.T) {
		f.mustJSON("DELETE", "/api/sessions/"+id, nil, 200, nil)
		code, b, _ := f.do("POST", "/api/sessions/"+id+"/interrupt", nil)
		if c, _ := errorCode(t, b); code != 409 || c != "not_running" {
			t.Errorf("= %d %s, want 409 not_running", code, b)
		}
	})
}

// An engine that cannot interrupt answers 501 with a JSON error.
func TestInterruptUnsupportedIs501(t *testing.T) {
	f := newFixture(t, nil)
	id := f.newSession()
	code, b, _ := f.do("POST", "/api/sessions/"+id+"/interrupt", nil)
	if c, msg := errorCode(t, b); code != 501 || c != "not_supported" || !strings.Contains(msg, "cannot interrupt") {
		t.Errorf("= %d %s, want 501 not_supported", code, b)
	}
}
