package actors

import (
	"context"
	"errors"
	"strings"
	"testing"

	"corral/eventbus"
)

const ctrlCSuffix130 = "\n[The command completed with exit code 130. CTRL+C was sent.]"

// interruptEngines are the engines the interrupt runs through: the local
// backend (a corral-agent process over agentwire) and the in-process one.
func interruptEngines(t *testing.T) map[string]*Engine {
	local, _ := newLocalEngine(t, testConfig())
	return map[string]*Engine{"local": local, "cli": newCLIEngine(t, testConfig())}
}

// waitChunk reads chunks of action id until their text contains want,
// failing on any PS1 block: live output is what commands print.
func waitChunk(t *testing.T, chunks <-chan Chunk, id int64, want string) {
	t.Helper()
	var got strings.Builder
	for c := range chunks {
		if c.ActionID != id {
			continue
		}
		got.Write(c.Data)
		if strings.Contains(got.String(), "PS1") {
			t.Fatalf("a PS1 block reached the live output: %q", got.String())
		}
		if strings.Contains(got.String(), want) {
			return
		}
	}
	t.Fatalf("chunks ended before %q: %q", want, got.String())
}

// TestInterruptInFlight: the in-flight action ends at once with C-c
// semantics; the action queued behind it stays queued and runs after, with
// its own observation. (A short name: the local agent's socket lives
// under t.TempDir.)
func TestInterruptInFlight(t *testing.T) {
	for name, e := range interruptEngines(t) {
		t.Run(name, func(t *testing.T) {
			cases := []struct{ name, command string }{
				{"Sleep", "echo started; sleep 100"},
				{"BusyLoop", "echo started; while true; do echo tick; sleep 0.5; done"},
			}
			sid := startSession(t, e, SessionSpec{})
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					ctx, cancel := context.WithCancel(ctxT(t))
					defer cancel()
					chunks, err := e.SubscribeChunks(ctx, sid)
					if err != nil {
						t.Fatal(err)
					}
					running, err := e.Submit(ctx, sid, cmd(tc.command))
					if err != nil {
						t.Fatal(err)
					}
					queued, err := e.Submit(ctx, sid, cmd("echo queued"))
					if err != nil {
						t.Fatal(err)
					}
					waitChunk(t, chunks, running, "started")
					if err := e.Interrupt(ctx, sid); err != nil {
						t.Fatalf("Interrupt: %v", err)
					}
					obs, err := waitObservation(ctx, e, sid, running)
					if err != nil {
						t.Fatal(err)
					}
					o, ok := obs.Observation.(*eventbus.CmdOutputObservation)
					if !ok || o.Metadata.ExitCode != 130 || o.Metadata.Suffix != ctrlCSuffix130 {
						t.Fatalf("interrupted action: %s %q %+v; want exit 130 and %q", obs.Type(), obs.Content, obs.Observation, ctrlCSuffix130)
					}
					next, err := waitObservation(ctx, e, sid, queued)
					if err != nil {
						t.Fatal(err)
					}
					if next.Content != "queued" || next.ID < obs.ID {
						t.Errorf("queued action: %q (id %d after %d); want it run after the interrupted one", next.Content, next.ID, obs.ID)
					}
					if no, ok := next.Observation.(*eventbus.CmdOutputObservation); !ok || no.Metadata.Suffix != "\n[The command completed with exit code 0.]" {
						t.Errorf("queued action's observation %+v: want a plain completion", next.Observation)
					}
				})
			}
		})
	}
}

func TestInterruptRefusalsAndNoOp(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	ctx := ctxT(t)
	if err := e.Interrupt(ctx, "no-such-session"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown session: %v, want ErrNotFound", err)
	}
	sid := startSession(t, e, SessionSpec{})
	if err := e.Interrupt(ctx, sid); err != nil {
		t.Errorf("nothing running: %v, want nil (a no-op)", err)
	}
	if _, obs, err := e.Run(ctx, sid, cmd("echo still fine")); err != nil || obs.Content != "still fine" {
		t.Errorf("after a no-op interrupt: %v %v", obs, err)
	}
	if _, err := e.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
	err := e.Interrupt(ctx, sid)
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), sid) {
		t.Errorf("stopped session: %v, want ErrNotRunning naming the session", err)
	}
}
