package docker

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"corral/runtimes"
)

func TestContainersRecordTheirOwnerAndTheUser(t *testing.T) {
	b := newBackend(t)
	o := runtimes.Owner{ID: "store-x", Instance: "run-1", Host: runtimes.Hostname(), LockPath: "/tmp/x/LOCK", Durable: true}
	// A spec's labels cannot forge an owner.
	h := start(t, b, runtimes.Spec{Owner: o, Labels: map[string]string{LabelOwner: "forged", LabelOwnerLock: "/forged"}})
	labels := inspect(t, b, h.ID).Config.Labels
	for k, want := range map[string]string{
		LabelOwner: "store-x", LabelOwnerInst: "run-1", LabelOwnerHost: o.Host, LabelOwnerLock: "/tmp/x/LOCK",
		LabelOwnerDurable: "true", LabelUser: b.user,
	} {
		if got := labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if got, ok := runtimes.OwnerFromMeta(h.Meta); !ok || got != o {
		t.Errorf("Start's Handle.Meta owner = %+v, %v; want %+v", got, ok, o)
	}
	rh, err := b.Recover(testCtx(t, time.Minute), &runtimes.Handle{ID: h.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := runtimes.OwnerFromMeta(rh.Meta); !ok || got != o {
		t.Errorf("Recover's Handle.Meta owner = %+v, %v; want %+v", got, ok, o)
	}
}

// TestReapRemovesOnlyDeadOwnersContainers starts containers for owners in
// every state, makes a new backend (as a restarted Corral would) and reaps.
func TestReapRemovesOnlyDeadOwnersContainers(t *testing.T) {
	dir := t.TempDir()
	host := runtimes.Hostname()
	// Every owner holds its lock while its container starts (a concurrent
	// reaper, such as a serve or exec another package's test runs, must
	// leave the container of a live owner alone); the dead ones die once
	// all containers are up.
	var dies []func()
	lockOf := func(name string, alive bool) string {
		p := filepath.Join(dir, name)
		l, err := runtimes.AcquireOwnerLock(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if !alive {
			dies = append(dies, func() { l.Close() })
		}
		return p
	}
	self := runtimes.Owner{ID: t.Name() + "-self", Host: host, LockPath: lockOf("self", true), Durable: true}
	owners := map[string]runtimes.Owner{
		"self-wanted":             self,
		"self-unwanted":           self,
		"ephemeral-alive":         {ID: t.Name() + "-e-alive", Host: host, LockPath: lockOf("e-alive", true)},
		"ephemeral-dead":          {ID: t.Name() + "-e-dead", Host: host, LockPath: lockOf("e-dead", false)},
		"durable-dead-lock-kept":  {ID: t.Name() + "-d-kept", Host: host, LockPath: lockOf("d-kept", false), Durable: true},
		"durable-lock-removed":    {ID: t.Name() + "-d-gone", Host: host, LockPath: lockOf("d-gone", false), Durable: true},
		"other-host-lock-removed": {ID: t.Name() + "-far", Host: host + "-far", LockPath: filepath.Join(dir, "nope")},
	}
	b1 := newBackend(t)
	byName := map[string]*runtimes.Handle{}
	for name, o := range owners {
		byName[name] = start(t, b1, runtimes.Spec{SessionID: name, Owner: o})
	}
	for _, die := range dies {
		die()
	}
	if err := os.Remove(owners["durable-lock-removed"].LockPath); err != nil {
		t.Fatal(err)
	}
	b1.Close()

	// From here on any Corral on this host may reap the dead owners'
	// containers (Reap is what every serve and exec runs at start); only
	// self's leftover is this owner's alone to reap. So: after this Reap
	// all of want are gone whoever reaped them, this Reap reaped nothing
	// else and at least self's leftover, and the others survive every
	// reaper.
	b2 := newBackend(t) // a backend never reaps on its own
	ctx := testCtx(t, 2*time.Minute)
	want := []string{"durable-lock-removed", "ephemeral-dead", "self-unwanted"}
	for name, h := range byName {
		if slices.Contains(want, name) && name != "self-unwanted" {
			continue // may already be reaped by a concurrent Corral
		}
		if _, err := b2.Inspect(ctx, h); err != nil {
			t.Fatalf("%s: container gone before Reap: %v", name, err)
		}
	}
	wanted := func(h *runtimes.Handle) bool { return h.SessionID == "self-wanted" }
	reaped, err := runtimes.Reap(ctx, b2, self, wanted, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range reaped {
		if _, mine := byName[h.SessionID]; mine && byName[h.SessionID].ID == h.ID {
			got = append(got, h.SessionID)
		}
	}
	slices.Sort(got)
	if !slices.Contains(got, "self-unwanted") {
		t.Errorf("reaped %q, want self-unwanted among them", got)
	}
	for _, name := range got {
		if !slices.Contains(want, name) {
			t.Errorf("reaped %q, want only some of %q (those no concurrent Corral reaped first)", got, want)
			break
		}
	}
	for name, h := range byName {
		_, err := b2.Inspect(ctx, h)
		if slices.Contains(want, name) {
			if !errors.Is(err, runtimes.ErrNotFound) {
				t.Errorf("%s: Inspect after Reap = %v, want ErrNotFound", name, err)
			}
			if _, err := os.Stat(h.Meta["run_dir"]); !os.IsNotExist(err) {
				t.Errorf("%s: socket directory survived the reap: %v", name, err)
			}
		} else if err != nil {
			t.Errorf("%s: must not be touched, Inspect = %v", name, err)
		}
	}
}
