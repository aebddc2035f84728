package actors

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestForkLocalCopiesWorkspaceAndHistory: a fork of a local session sees
// the parent's files, holds the parent's events under the same ids with
// new ids continuing, names its fork point, and writes in the child do not
// reach the parent.
func TestForkLocalCopiesWorkspaceAndHistory(t *testing.T) {
	e, _ := newLocalEngine(t, testConfig())
	ctx := ctxT(t)
	parent := startSession(t, e, SessionSpec{})
	if _, obs, err := e.Run(ctx, parent, cmd("echo from-parent > shared.txt")); err != nil || obs == nil {
		t.Fatalf("write in parent: %v %v", obs, err)
	}
	before := history(t, e, parent)
	last := before[len(before)-1].ID

	ci, point, err := e.Fork(ctx, parent, -1, "")
	if err != nil {
		t.Fatalf("Fork: %v", err)
	}
	if point.Session != parent || point.EventID != last {
		t.Fatalf("fork point = %+v, want %s@%d", point, parent, last)
	}
	if err := e.WaitReady(ctx, ci.ID); err != nil {
		t.Fatalf("child WaitReady: %v", err)
	}
	_, obs, err := e.Run(ctx, ci.ID, cmd("cat shared.txt && echo from-child > child.txt"))
	if err != nil {
		t.Fatalf("run in child: %v", err)
	}
	if out := obs.Content; !strings.Contains(out, "from-parent") {
		t.Fatalf("child reads %q, want the parent's file content", out)
	}
	child := history(t, e, ci.ID)
	for i, ev := range before {
		if child[i].ID != ev.ID || child[i].Type() != ev.Type() {
			t.Fatalf("child event %d = %d %s, want the parent's %d %s", i, child[i].ID, child[i].Type(), ev.ID, ev.Type())
		}
	}
	if n := child[len(before)].ID; n != last+1 {
		t.Fatalf("the child's first own event has id %d, want %d", n, last+1)
	}
	pinfo, err := e.Get(ctx, parent)
	if err != nil {
		t.Fatal(err)
	}
	cinfo, err := e.Get(ctx, ci.ID)
	if err != nil {
		t.Fatal(err)
	}
	if pinfo.Handle.Workspace == cinfo.Handle.Workspace {
		t.Fatalf("parent and child share workspace %s", pinfo.Handle.Workspace)
	}
	if _, err := os.Stat(filepath.Join(pinfo.Handle.Workspace, "child.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the child's write reached the parent's workspace: %v", err)
	}
	if _, err := e.Delete(ctx, ci.ID); err != nil {
		t.Fatalf("Delete child: %v", err)
	}
	if _, err := os.Stat(cinfo.Handle.Workspace); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the child's workspace copy outlived its session: %v", err)
	}
}

// TestForkAtMiddleKeepsEventsUpToThePoint: fork at an earlier id copies
// only events up to it.
func TestForkAtMiddleKeepsEventsUpToThePoint(t *testing.T) {
	e, _ := newLocalEngine(t, testConfig())
	ctx := ctxT(t)
	parent := startSession(t, e, SessionSpec{})
	id, _, err := e.Run(ctx, parent, cmd("echo one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Run(ctx, parent, cmd("echo two")); err != nil {
		t.Fatal(err)
	}
	ci, point, err := e.Fork(ctx, parent, id, "mid-fork")
	if err != nil {
		t.Fatalf("Fork at %d: %v", id, err)
	}
	if ci.ID != "mid-fork" || point.EventID != id {
		t.Fatalf("fork = %s at %d, want mid-fork at %d", ci.ID, point.EventID, id)
	}
	if err := e.WaitReady(ctx, ci.ID); err != nil {
		t.Fatal(err)
	}
	child := history(t, e, ci.ID)
	var copied int
	for _, ev := range child {
		if ev.ID <= id {
			copied++
		}
		if ev.ID == id+1 && ev.IsAction() {
			t.Fatalf("event %d (after the fork point) is the parent's: %s", ev.ID, ev.Type())
		}
	}
	if copied != int(id)+1 {
		t.Fatalf("the child holds %d events up to %d, want %d: %s", copied, id, id+1, describe(child))
	}
}

// TestForkRefusesBadInput: unknown, stopped, beyond the stream, taken id.
func TestForkRefusesBadInput(t *testing.T) {
	e, _ := newLocalEngine(t, testConfig())
	ctx := ctxT(t)
	if _, _, err := e.Fork(ctx, "nope", -1, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fork of an unknown session: %v, want ErrNotFound", err)
	}
	parent := startSession(t, e, SessionSpec{})
	evs := history(t, e, parent)
	last := evs[len(evs)-1].ID
	_, _, err := e.Fork(ctx, parent, last+5, "")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "last event id is") {
		t.Fatalf("fork beyond the stream: %v, want ErrInvalid naming the last id", err)
	}
	if _, _, err := e.Fork(ctx, parent, -1, parent); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("fork into the parent's own id: %v, want ErrAlreadyExists", err)
	}
	if _, err := e.Stop(ctx, parent); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Fork(ctx, parent, -1, ""); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("fork of a stopped session: %v, want ErrNotRunning", err)
	}
}

// TestForkRefusedWhereTheRuntimeCannot: the cli runtime has no Forker; the
// refusal names the runtimes that can fork.
func TestForkRefusedWhereTheRuntimeCannot(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	parent := startSession(t, e, SessionSpec{})
	_, _, err := e.Fork(ctxT(t), parent, -1, "")
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "local and docker") {
		t.Fatalf("fork on cli: %v, want ErrNotSupported naming local and docker", err)
	}
}

// TestForkWhoseSnapshotFailsLeavesNothing: a workspace that cannot be
// copied fails the fork with the copy's error, and no child session or
// stored events are left behind.
func TestForkWhoseSnapshotFailsLeavesNothing(t *testing.T) {
	e, _ := newLocalEngine(t, testConfig())
	ctx := ctxT(t)
	parent := startSession(t, e, SessionSpec{})
	info, err := e.Get(ctx, parent)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(info.Handle.Workspace); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.Fork(ctx, parent, -1, "doomed")
	if !strings.Contains(err.Error(), "snapshot its sandbox") || !strings.Contains(err.Error(), "copy workspace") {
		t.Fatalf("fork of a sandbox whose workspace is gone: %v, want the copy's error", err)
	}
	if _, err := e.Get(ctx, "doomed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the failed fork left a session: %v", err)
	}
	if !e.store.LastWrite("doomed").IsZero() {
		t.Fatal("the failed fork left stored events")
	}
}
