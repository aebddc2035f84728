package actors

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"corral/eventbus"
	"corral/runtimes/local"
)

// TestDeleteStopsForgetsAndRemovesTheStoredSession: Delete of a running
// session stops it, List and Get no longer know it, its event log and
// record are gone from the store, and a second engine on the same store
// does not list it; another session is untouched.
func TestDeleteStopsForgetsAndRemovesTheStoredSession(t *testing.T) {
	dir := t.TempDir()
	cli := local.NewInProcess(local.InProcessTempDir(t.TempDir()))
	e := durableEngine(t, dir, cli, testConfig())
	ctx := ctxT(t)
	gone := startSession(t, e, SessionSpec{})
	kept := startSession(t, e, SessionSpec{})
	for _, sid := range []string{gone, kept} {
		if _, obs, err := e.Run(ctx, sid, cmd("echo hi")); err != nil || obs == nil {
			t.Fatalf("run in %s: %v %v", sid, obs, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, gone+".events")); err != nil {
		t.Fatalf("the session's log should exist before Delete: %v", err)
	}

	info, err := e.Delete(ctx, gone)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if info.ID != gone || info.State != StateStopped {
		t.Fatalf("Delete returned %+v, want the stopped session %s", info, gone)
	}
	if _, err := e.Get(ctx, gone); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, err := e.Start(ctx, gone); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Start after Delete: %v, want ErrNotFound", err)
	}
	list, err := e.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != kept {
		t.Fatalf("List after Delete = %+v, want only %s", list, kept)
	}
	ids, err := e.store.Sessions()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != kept {
		t.Fatalf("store sessions after Delete = %v, want only %s", ids, kept)
	}
	if _, err := e.Delete(ctx, gone); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
	if _, err := e.Delete(ctx, "no-such-session"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete of an unknown session: %v, want ErrNotFound", err)
	}
	if _, obs, err := e.Run(ctx, kept, cmd("echo still here")); err != nil || obs == nil {
		t.Fatalf("the other session no longer runs: %v %v", obs, err)
	}

	// A new engine on the same store knows only the kept session.
	detachAndReopen(t, e)
	e2 := durableEngine(t, dir, cli, testConfig())
	list, err = e2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != kept {
		t.Fatalf("List of the next engine = %+v, want only %s", list, kept)
	}
	if _, err := e2.History(ctx, gone, 0); !errors.Is(err, ErrNotFound) {
		var stored []*eventbus.Item
		stored, _ = e2.History(ctx, kept, 0)
		t.Fatalf("History of the deleted session in the next engine: %v (kept has %d events), want ErrNotFound", err, len(stored))
	}
	// The kept session's sandbox outlived the first engine (Detach): take
	// it back and stop it, so no process of this test outlives it.
	if _, err := e2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.Stop(ctx, kept); err != nil {
		t.Fatalf("Stop of the recovered session: %v", err)
	}
}
