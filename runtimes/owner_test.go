package runtimes

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// holdLockEnv makes the test binary a helper that takes the owner lock at
// the named path, says "locked" and waits to be killed.
const holdLockEnv = "CORRAL_TEST_HOLD_OWNER_LOCK"

func TestHelperHoldsOwnerLock(t *testing.T) {
	path := os.Getenv(holdLockEnv)
	if path == "" {
		t.Skip("helper process for TestOwnerAliveFlipsWhenTheHolderIsKilled")
	}
	if _, err := AcquireOwnerLock(path); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	bufio.NewReader(os.Stdin).ReadString('\n') // until killed (or stdin closes)
	os.Exit(0)
}

// startLockHolder runs the helper in another process holding path's lock;
// kill it with kill -9 via the returned cmd.
func startLockHolder(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldsOwnerLock$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder said %q, %v", line, err)
	}
	return cmd
}

func TestOwnerAliveFlipsWhenTheHolderIsKilled(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "LOCK")
	holder := startLockHolder(t, lock)
	o := Owner{ID: "store-1", Host: Hostname(), LockPath: lock}
	if !OwnerAlive(o) {
		t.Fatal("owner whose lock is held by a running process reported dead")
	}
	if _, err := AcquireOwnerLock(lock); !errors.Is(err, ErrOwnerLocked) {
		t.Fatalf("AcquireOwnerLock of a held lock = %v, want ErrOwnerLocked", err)
	}
	if err := holder.Process.Kill(); err != nil { // SIGKILL: no chance to unlock
		t.Fatal(err)
	}
	holder.Wait()
	if OwnerAlive(o) {
		t.Fatal("owner reported alive after its process was killed with SIGKILL")
	}
	if OwnerAlive(o) {
		t.Fatal("checking liveness must not leave the lock held")
	}
}

func TestOwnerAlive(t *testing.T) {
	dir := t.TempDir()
	free := filepath.Join(dir, "free")
	if err := os.WriteFile(free, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(dir, "held")
	l, err := AcquireOwnerLock(held)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	host := Hostname()
	for _, tc := range []struct {
		name  string
		o     Owner
		alive bool
	}{
		{"LockHeldInThisProcessIsAlive", Owner{ID: "a", Host: host, LockPath: held}, true},
		{"FreeLockIsDead", Owner{ID: "a", Host: host, LockPath: free}, false},
		{"MissingLockFileIsDead", Owner{ID: "a", Host: host, LockPath: filepath.Join(dir, "gone")}, false},
		{"OtherHostIsAliveWhateverItsLockSays", Owner{ID: "a", Host: host + "-elsewhere", LockPath: free}, true},
		{"NoLockPathRecordedIsAlive", Owner{ID: "a", Host: host}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := OwnerAlive(tc.o); got != tc.alive {
				t.Fatalf("OwnerAlive(%+v) = %v, want %v", tc.o, got, tc.alive)
			}
		})
	}
}

func TestOwnerMetaRoundTrips(t *testing.T) {
	o := Owner{ID: "s", Instance: "i", Host: "h", LockPath: "/l", Durable: true}
	got, ok := OwnerFromMeta(o.Meta())
	if !ok || got != o {
		t.Fatalf("OwnerFromMeta(Meta()) = %+v, %v; want %+v", got, ok, o)
	}
	if _, ok := OwnerFromMeta(Owner{}.Meta()); ok {
		t.Fatal("an owner without ID must not be recorded")
	}
}

// listBackend is a Lister whose Destroy records what it was asked to remove.
type listBackend struct {
	namedBackend
	handles   []*Handle
	destroyed []string
}

func (b *listBackend) List(context.Context) ([]*Handle, error) { return b.handles, nil }
func (b *listBackend) Destroy(_ context.Context, h *Handle) error {
	b.destroyed = append(b.destroyed, h.ID)
	return nil
}

func TestReapDestroysOnlyWhatIsProvablyAbandoned(t *testing.T) {
	dir := t.TempDir()
	host := Hostname()
	free := filepath.Join(dir, "free")
	if err := os.WriteFile(free, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(dir, "held")
	l, err := AcquireOwnerLock(held)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	gone := filepath.Join(dir, "gone")
	self := Owner{ID: "me", Host: host, LockPath: held, Durable: true}
	sandbox := func(id string, o Owner) *Handle { return &Handle{ID: id, Meta: o.Meta()} }
	b := &listBackend{namedBackend: namedBackend{"fake"}, handles: []*Handle{
		sandbox("mine-wanted", self),
		sandbox("mine-unwanted", self),
		sandbox("ephemeral-dead", Owner{ID: "e1", Host: host, LockPath: free}),
		sandbox("ephemeral-dead-lockfile-gone", Owner{ID: "e2", Host: host, LockPath: gone}),
		sandbox("ephemeral-alive", Owner{ID: "e3", Host: host, LockPath: held}),
		sandbox("durable-dead-lock-kept", Owner{ID: "d1", Host: host, LockPath: free, Durable: true}),
		sandbox("durable-lockfile-gone", Owner{ID: "d2", Host: host, LockPath: gone, Durable: true}),
		sandbox("other-host-dead", Owner{ID: "o1", Host: host + "-elsewhere", LockPath: gone}),
		{ID: "no-owner-recorded", Meta: map[string]string{"pid": "1"}},
	}}
	reaped, err := Reap(context.Background(), b, self, func(h *Handle) bool { return h.ID == "mine-wanted" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mine-unwanted", "ephemeral-dead", "ephemeral-dead-lockfile-gone", "durable-lockfile-gone"}
	if !slices.Equal(b.destroyed, want) {
		t.Fatalf("destroyed %q, want %q", b.destroyed, want)
	}
	if len(reaped) != len(want) {
		t.Fatalf("Reap returned %d handles, want %d", len(reaped), len(want))
	}
}

func TestReapSkipsBackendsThatCannotList(t *testing.T) {
	reaped, err := Reap(context.Background(), namedBackend{"remote"}, Owner{ID: "me"}, nil, nil)
	if err != nil || reaped != nil {
		t.Fatalf("Reap on a non-Lister = %v, %v; want nothing", reaped, err)
	}
}
