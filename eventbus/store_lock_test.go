package eventbus

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lockHelperEnv makes TestLockHelperProcess, run in a child process, open
// the store directory it names and hold it until killed.
const lockHelperEnv = "CORRAL_EVENTBUS_LOCK_HELPER_DIR"

// TestLockHelperProcess is not a test: it is the body of the child process
// of the cross-process lock tests.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("helper process only (run by the store lock tests)")
	}
	st, err := OpenStore(testConfig(dir))
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	fmt.Printf("locked %s\n", st.ID())
	io.Copy(io.Discard, os.Stdin) // hold the lock until killed or stdin closes
	st.Close()
	os.Exit(0)
}

// startLockHolder starts a child process holding dir's store and returns it
// once it holds the lock, with the store id it saw.
func startLockHolder(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("lock helper process: %v", err)
	}
	id, ok := strings.CutPrefix(strings.TrimSpace(line), "locked ")
	if !ok {
		t.Fatalf("lock helper process did not take the lock: %q", line)
	}
	return cmd, id
}

// dirSnapshot returns every file of dir but LOCK with its content.
func dirSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() == lockFile {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		m[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// seedStore creates a store in dir with one session holding events and a
// torn tail (which opening the session would truncate) and a metadata
// record, and closes it.
func seedStore(t *testing.T, dir string) {
	t.Helper()
	st, err := OpenStore(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.Open("seeded")
	if err != nil {
		t.Fatal(err)
	}
	appendRuns(t, s, 3)
	s.Close()
	if err := st.SaveMeta("seeded", []byte(`{"token":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "seeded"+logExt), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{1, 2, 3})
	f.Close()
}

func TestOpenStoreIsRefusedWhileAnotherStoreHoldsTheDirectory(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name string
		// hold makes something hold dir and returns the holder's pid and a
		// function that ends the hold the way the case says.
		hold        func(t *testing.T, dir string) (pid int, release func())
		wantInError []string
	}{
		{
			name: "another process holds it until killed with SIGKILL",
			hold: func(t *testing.T, dir string) (int, func()) {
				cmd, _ := startLockHolder(t, dir)
				return cmd.Process.Pid, func() {
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
					cmd.Wait()
				}
			},
			wantInError: []string{"is in use by", "-test.run=^TestLockHelperProcess$", "stop that process or use another [events] store_dir"},
		},
		{
			name: "another Store of this process holds it until Close",
			hold: func(t *testing.T, dir string) (int, func()) {
				st, err := OpenStore(testConfig(dir))
				if err != nil {
					t.Fatal(err)
				}
				return os.Getpid(), func() {
					if err := st.Close(); err != nil {
						t.Fatal(err)
					}
				}
			},
			wantInError: []string{"already open in this process", "Close that *Store first"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			seedStore(t, dir)
			pid, release := tc.hold(t, dir)
			before := dirSnapshot(t, dir)

			st, err := OpenStore(testConfig(dir))
			if err == nil {
				st.Close()
				t.Fatal("OpenStore succeeded while the directory was held")
			}
			if !errors.Is(err, ErrStoreLocked) {
				t.Fatalf("error does not wrap ErrStoreLocked: %v", err)
			}
			var le *StoreLockedError
			if !errors.As(err, &le) || le.Holder == nil {
				t.Fatalf("error names no holder: %v", err)
			}
			host, _ := os.Hostname()
			if le.Holder.PID != pid || le.Holder.Host != host || le.Holder.Since.IsZero() || le.Holder.Instance == "" {
				t.Fatalf("holder = %+v, want pid %d on %s with a start time and instance id", le.Holder, pid, host)
			}
			msg := err.Error()
			t.Logf("refusal: %s", msg)
			for _, want := range append(tc.wantInError, dir, "pid "+strconv.Itoa(pid), "on host "+host) {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if after := dirSnapshot(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("a refused OpenStore changed the directory:\nbefore %v\nafter  %v", before, after)
			}

			release()
			st, err = OpenStore(testConfig(dir))
			if err != nil {
				t.Fatalf("OpenStore after the holder let go: %v", err)
			}
			defer st.Close()
			if ids, _ := st.Sessions(); strings.Join(ids, ",") != "seeded" {
				t.Fatalf("Sessions() = %v", ids)
			}
		})
	}
}

func TestStoreIDIsCreatedOnceAndSharedByEveryOpenAndProcess(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	id := st.ID()
	if !validStoreID(id) || len(id) != 32 {
		t.Fatalf("ID() = %q, want 32 hex digits", id)
	}
	if got := st.LockPath(); got != filepath.Join(dir, "LOCK") {
		t.Fatalf("LockPath() = %q", got)
	}
	st.Close()
	if b, _ := os.ReadFile(filepath.Join(dir, "STORE_ID")); strings.TrimSpace(string(b)) != id {
		t.Fatalf("STORE_ID holds %q, want %q", b, id)
	}
	cmd, childID := startLockHolder(t, dir)
	if childID != id {
		t.Fatalf("another process read store id %q, want %q", childID, id)
	}
	cmd.Process.Kill()
	cmd.Wait()
	st, err = OpenStore(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.ID() != id {
		t.Fatalf("reopened store has id %q, want %q", st.ID(), id)
	}
	if st2 := st.InstanceID(); st2 == "" {
		t.Fatal("InstanceID() is empty")
	}
}

func TestOpenStoreRecordsTheInstanceIDItIsGiven(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(testConfig(dir), WithInstanceID("serve-42"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = OpenStore(testConfig(dir))
	var le *StoreLockedError
	if !errors.As(err, &le) || le.Holder == nil || le.Holder.Instance != "serve-42" {
		t.Fatalf("second OpenStore: %v (holder %+v), want the holder's instance serve-42", err, le)
	}
}

func TestOpenStoreRefusesACorruptStoreIDAndLeavesTheDirectoryUnlocked(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "STORE_ID"), []byte("not/an id\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(testConfig(dir)); err == nil || !strings.Contains(err.Error(), "remove it to give the store a new id") {
		t.Fatalf("OpenStore with a corrupt STORE_ID: %v", err)
	}
	os.Remove(filepath.Join(dir, "STORE_ID"))
	st, err := OpenStore(testConfig(dir))
	if err != nil {
		t.Fatalf("the failed OpenStore kept the lock: %v", err)
	}
	st.Close()
}

func TestAClosedStoreRefusesWritesAndClosesTwice(t *testing.T) {
	st, _ := newTestStore(t, nil)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := st.SaveMeta("a", []byte(`{}`)); err == nil {
		t.Fatal("SaveMeta on a closed store succeeded")
	}
	if err := st.Delete("a"); err == nil {
		t.Fatal("Delete on a closed store succeeded")
	}
	if _, err := st.Open("a"); err == nil {
		t.Fatal("Open on a closed store succeeded")
	}
}

// An event log's lock can look taken for a moment after its last user
// closed it (a process forked then shares the descriptor until its exec):
// opening waits that out. A log another user really holds is refused.
func TestALogLockedBrieflyOpensAndOneHeldLongerIsRefused(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hold := func(sid string) *os.File {
		f, err := os.OpenFile(st.path(sid), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		return f
	}

	brief := hold("brief")
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(100 * time.Millisecond) // well inside logLockWait
		brief.Close()
	}()
	s, err := st.Open("brief")
	<-released
	if err != nil {
		t.Fatalf("a log released 100 ms after the open began: %v", err)
	}
	s.Close()

	held := hold("held")
	defer held.Close()
	if _, err := st.Open("held"); err == nil || !strings.Contains(err.Error(), "in use by another process or stream") {
		t.Fatalf("a log held for longer than %v: %v, want the in-use error", logLockWait, err)
	}
}
