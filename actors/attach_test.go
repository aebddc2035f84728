package actors

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
)

func TestKeepAliveThenAttach(t *testing.T) {
	e, b := newLocalEngine(t, testConfig())
	ctx := ctxT(t)
	first := startSession(t, e, SessionSpec{KeepRuntimeAlive: true})
	if _, _, err := e.Run(ctx, first, cmd("export LEFT_BY_FIRST=yes")); err != nil {
		t.Fatal(err)
	}
	info, err := e.Stop(ctx, first)
	if err != nil || info.Handle == nil {
		t.Fatalf("Stop: %+v %v", info, err)
	}
	h := info.Handle
	pid := agentPIDOf(t, h)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("kept-alive agent %d is gone: %v", pid, err)
	}
	second := startSession(t, e, SessionSpec{Attach: h})
	_, obs, err := e.Run(ctx, second, cmd("echo $LEFT_BY_FIRST"))
	if err != nil || strings.TrimSpace(obs.Content) != "yes" {
		t.Fatalf("attached session does not see the first one's shell: %v %v", obs, err)
	}
	if got := agentPID(t, e, second); got != pid {
		t.Fatalf("attached to agent %d, want %d", got, pid)
	}
	if _, err := e.Stop(ctx, second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return syscall.Kill(pid, 0) != nil })
	if _, err := b.Recover(ctx, h); err == nil {
		t.Fatal("Recover of a destroyed sandbox succeeded")
	}
}

func agentPIDOf(t *testing.T, h *runtimes.Handle) int {
	t.Helper()
	var pid int
	for _, c := range h.ID {
		pid = pid*10 + int(c-'0')
	}
	return pid
}

func TestChunksStreamWhileRunning(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	sid := startSession(t, e, SessionSpec{})
	ctx, cancel := context.WithTimeout(ctxT(t), 30*time.Second)
	defer cancel()
	chunks, err := e.SubscribeChunks(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.Submit(ctx, sid, cmd("for i in 1 2 3; do echo tick$i; sleep 0.3; done"))
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	var first time.Time
	for c := range chunks {
		if c.ActionID != id {
			t.Fatalf("chunk for action %d, want %d", c.ActionID, id)
		}
		if first.IsZero() {
			first = time.Now()
		}
		got.Write(c.Data)
		if strings.Contains(got.String(), "tick3") {
			break
		}
	}
	obs, err := waitObservation(ctx, e, sid, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(obs.Content, "tick1") || !strings.Contains(got.String(), "tick1") {
		t.Fatalf("chunks %q, observation %q", got.String(), obs.Content)
	}
	// The first chunk came while the command was still running.
	ev := history(t, e, sid)
	var stored time.Time
	for _, x := range ev {
		if !x.IsAction() && x.Cause != nil && *x.Cause == id {
			stored, _ = time.ParseInLocation(eventbus.TimestampLayout, x.Timestamp, time.Local)
		}
	}
	if !first.Before(stored) {
		t.Fatalf("first chunk at %v, observation stored at %v: not streamed live", first, stored)
	}
}
