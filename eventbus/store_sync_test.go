package eventbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// appendConcurrently runs perSession goroutines per stream, each appending n
// events whose Content is unique, and returns the acknowledged Content by
// session and id. Errors are returned, not fatal (they happen off the test
// goroutine).
func appendConcurrently(streams []*Stream, perSession, n int) (map[string]map[int64]string, error) {
	var mu sync.Mutex
	acked := map[string]map[int64]string{}
	var errs []error
	for _, s := range streams {
		acked[s.SessionID()] = map[int64]string{}
	}
	var wg sync.WaitGroup
	for si, s := range streams {
		for g := 0; g < perSession; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					e := runObs(0, i)
					e.Content = fmt.Sprintf("session %d goroutine %d event %d", si, g, i)
					got, err := s.Append(context.Background(), e)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						acked[s.SessionID()][got.ID] = e.Content
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return acked, errors.Join(errs...)
}

func openSessions(t *testing.T, st *Store, n int) []*Stream {
	t.Helper()
	streams := make([]*Stream, n)
	for i := range streams {
		s, err := st.Open(fmt.Sprintf("s%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		streams[i] = s
	}
	return streams
}

func TestConcurrentBatchAppendsOver20SessionsAreReadableAfterReopen(t *testing.T) {
	checkLeaks(t)
	for _, method := range []SyncMethod{SyncMethodSyncfs, SyncMethodFsync} {
		t.Run(string(method), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir)
			cfg.SyncMethod = method
			st, err := OpenStore(cfg)
			if err != nil {
				t.Fatal(err)
			}
			streams := openSessions(t, st, 20)
			acked, err := appendConcurrently(streams, 3, 20)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}

			st, err = OpenStore(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for sid, want := range acked {
				if len(want) != 60 {
					t.Fatalf("session %s: %d appends acknowledged, want 60", sid, len(want))
				}
				s, err := st.Open(sid)
				if err != nil {
					t.Fatal(err)
				}
				if s.Recovered() != nil {
					t.Fatalf("session %s needed recovery after a clean close: %v", sid, s.Recovered())
				}
				items, err := s.Search(context.Background(), Filter{})
				if err != nil {
					t.Fatal(err)
				}
				if len(items) != len(want) {
					t.Fatalf("session %s has %d events after reopen, want the %d acknowledged", sid, len(items), len(want))
				}
				checkConsecutive(t, items, 0)
				for _, it := range items {
					e, err := it.Event()
					if err != nil {
						t.Fatal(err)
					}
					if e.Content != want[it.ID] {
						t.Fatalf("session %s event %d: content %q, want the acknowledged %q", sid, it.ID, e.Content, want[it.ID])
					}
				}
				s.Close()
			}
		})
	}
}

// TestSyncfsSyncsAtOnceAndBatchesWhatArrivesDuringASync pins the
// leader/follower protocol without relying on timing: the first round is
// held until every other session has written and queued for the next one,
// so exactly two rounds cover all 20 sessions (the first, alone, with its
// file's fdatasync; the second with one syncfs); and a lone writer gets one
// fdatasync of its own file per append (it never waits for company).
func TestSyncfsSyncsAtOnceAndBatchesWhatArrivesDuringASync(t *testing.T) {
	checkLeaks(t)
	for _, policy := range []SyncPolicy{SyncBatch, SyncAlways} {
		t.Run(string(policy), func(t *testing.T) {
			st, _ := newTestStore(t, func(c *Config) {
				c.Sync = policy
				c.SyncMethod = SyncMethodSyncfs
				c.SyncMaxDelay = time.Second // must not matter: no timer
			})
			streams := openSessions(t, st, 20)
			var mu sync.Mutex
			var rounds []int
			first := make(chan struct{})
			st.syncer.mu.Lock()
			st.syncer.onRound = func(waiters int) {
				mu.Lock()
				rounds = append(rounds, waiters)
				n := len(rounds)
				mu.Unlock()
				if n == 1 {
					close(first)
					// Hold the first sync until the 19 other sessions wait
					// for the next round (a state, not a duration).
					for st.syncer.queued() < len(streams)-1 {
						runtime.Gosched()
					}
				}
			}
			st.syncer.mu.Unlock()
			before := st.syncCount(streams...)
			errs := make(chan error, len(streams))
			go func() { _, err := streams[0].Append(context.Background(), runObs(0, 0)); errs <- err }()
			<-first
			for _, s := range streams[1:] {
				go func() { _, err := s.Append(context.Background(), runObs(0, 0)); errs <- err }()
			}
			for range streams {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			got := fmt.Sprint(rounds)
			mu.Unlock()
			if got != "[1 19]" {
				t.Fatalf("sync rounds covered %s writers, want [1 19]", got)
			}
			if n := st.syncCount(streams...) - before; n != 2 {
				t.Fatalf("%d sync calls, want 2 (an fdatasync, then one syncfs for 19 sessions)", n)
			}
			if n := streams[0].log.syncs.Load(); n != 1 {
				t.Fatalf("the first session fdatasynced %d times, want 1 (it synced alone)", n)
			}
			before = st.syncCount(streams...)
			for i := 0; i < 5; i++ {
				mustAppend(t, streams[1], runObs(0, i))
			}
			if n := streams[1].log.syncs.Load(); n != 5 || st.syncCount(streams...)-before != 5 {
				t.Fatalf("a lone writer's 5 sequential appends took %d fdatasyncs of its file (%d syncs in all), want 5 and 5",
					n, st.syncCount(streams...)-before)
			}
		})
	}
}

// setSyncFn replaces the store's sync call (test hook) while holding the
// syncer's lock, which the leader takes before calling it.
func setSyncFn(st *Store, fn func() error) func() error {
	st.syncer.mu.Lock()
	defer st.syncer.mu.Unlock()
	old := st.syncer.syncFn
	st.syncer.syncFn = fn
	return old
}

func TestSyncfsFailureFailsEveryWaiterAndKeepsEarlierEvents(t *testing.T) {
	checkLeaks(t)
	st, logs := newTestStore(t, func(c *Config) { c.SyncMethod = SyncMethodSyncfs })
	streams := openSessions(t, st, 3)
	var before [][][]byte
	var sizes []int64
	for _, s := range streams {
		before = append(before, appendRuns(t, s, 5))
		sizes = append(sizes, s.log.size)
	}
	real := setSyncFn(st, func() error { return fmt.Errorf("eventbus: syncfs (injected): %w", syscall.EIO) })
	// A round with one writer fdatasyncs that writer's file instead.
	for _, s := range streams {
		s.log.syncFile = func() error { return fmt.Errorf("eventbus: fdatasync (injected): %w", syscall.EIO) }
	}
	_, err := appendConcurrently(streams, 2, 3)
	if err == nil {
		t.Fatal("appends were acknowledged although every sync failed")
	}
	// Every append of every session must have failed with the sync error.
	for _, e := range strings.Split(err.Error(), "\n") {
		if !strings.Contains(e, "input/output error") || !strings.Contains(e, ".events") {
			t.Fatalf("append error %q does not carry the sync failure and the file", e)
		}
	}
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("append error does not wrap EIO: %v", err)
	}
	if !strings.Contains(logs.String(), "append failed; earlier events are intact") {
		t.Fatalf("sync failure not logged: %q", logs.String())
	}
	for i, s := range streams {
		if s.Len() != 5 {
			t.Fatalf("session %s has %d events after failed syncs, want the 5 acknowledged", s.SessionID(), s.Len())
		}
		if fi, err := os.Stat(s.log.path); err != nil || fi.Size() != sizes[i] {
			t.Fatalf("session %s file not rolled back to %d bytes: %v %v", s.SessionID(), sizes[i], fi.Size(), err)
		}
	}
	setSyncFn(st, real)
	for _, s := range streams {
		s.log.syncFile = s.log.fdatasync
		if got := mustAppend(t, s, runObs(0, 5)); got.ID != 5 {
			t.Fatalf("append after the failure got id %d, want 5 (ids stay gap-free)", got.ID)
		}
		s.Close()
	}
	for i, s := range openSessions(t, st, 3) {
		after := storedJSON(t, s)
		if s.Recovered() != nil || len(after) != 6 {
			t.Fatalf("reopen: recovered %v, %d events (want clean, 6)", s.Recovered(), len(after))
		}
		for j := range before[i] {
			if string(before[i][j]) != string(after[j]) {
				t.Fatalf("session %s event %d changed", s.SessionID(), j)
			}
		}
		s.Close()
	}
}

func TestOpenStoreWithSyncfsOnlyOpensTheDirectoryWhenSyncing(t *testing.T) {
	st, _ := newTestStore(t, func(c *Config) { c.Sync = SyncNever; c.SyncMethod = SyncMethodSyncfs })
	if st.syncer != nil {
		t.Fatal(`sync = "never" opened a syncfs coordinator`)
	}
	st, _ = newTestStore(t, func(c *Config) { c.SyncMethod = SyncMethodFsync })
	if st.syncer != nil {
		t.Fatal(`sync_method = "fsync" opened a syncfs coordinator`)
	}
}
