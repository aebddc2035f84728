package eventbus

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// appendRuns appends n run observations and returns their stored JSON.
func appendRuns(t testing.TB, s *Stream, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < n; i++ {
		mustAppend(t, s, runObs(int64(i), i))
	}
	items, err := s.Search(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		out = append(out, it.JSON)
	}
	return out
}

func storedJSON(t testing.TB, s *Stream) [][]byte {
	t.Helper()
	items, err := s.Search(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, it := range items {
		out = append(out, it.JSON)
	}
	return out
}

func TestReopenAfterRestartKeepsEventsAndContinuesIDs(t *testing.T) {
	checkLeaks(t)
	for _, pol := range []SyncPolicy{SyncAlways, SyncBatch, SyncNever} {
		t.Run(string(pol), func(t *testing.T) {
			st, _ := newTestStore(t, func(c *Config) { c.Sync = pol })
			s, err := st.Open("sess-1")
			if err != nil {
				t.Fatal(err)
			}
			before := appendRuns(t, s, 20)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = st.Open("sess-1")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Recovered() != nil {
				t.Fatalf("clean reopen reported recovery: %v", s.Recovered())
			}
			after := storedJSON(t, s)
			if len(after) != 20 {
				t.Fatalf("reopened log has %d events, want 20", len(after))
			}
			for i := range before {
				if !bytes.Equal(before[i], after[i]) {
					t.Fatalf("event %d changed across reopen:\n%s\n%s", i, before[i], after[i])
				}
			}
			if got := mustAppend(t, s, runObs(0, 0)); got.ID != 20 {
				t.Fatalf("first append after reopen got id %d, want 20", got.ID)
			}
		})
	}
}

func TestOpenRecoversTornOrCorruptTail(t *testing.T) {
	checkLeaks(t)
	const n = 10
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, size int64, lastRec int64)
		want   int // events that must survive
	}{
		{"garbage appended after the last record", func(t *testing.T, p string, size, last int64) {
			appendBytes(t, p, []byte("\x07\x00\x00\x00garbage-garbage"))
		}, n},
		{"truncated inside the last record's payload", func(t *testing.T, p string, size, last int64) {
			truncate(t, p, size-5)
		}, n - 1},
		{"truncated inside the last record's header", func(t *testing.T, p string, size, last int64) {
			truncate(t, p, last+7)
		}, n - 1},
		{"a byte of the last record flipped", func(t *testing.T, p string, size, last int64) {
			flip(t, p, size-3)
		}, n - 1},
		{"zeros appended (preallocated tail)", func(t *testing.T, p string, size, last int64) {
			appendBytes(t, p, make([]byte, 4096))
		}, n},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, logs := newTestStore(t, nil)
			s, err := st.Open("s")
			if err != nil {
				t.Fatal(err)
			}
			before := appendRuns(t, s, n)
			lastOff := s.log.offs[n-1]
			size := s.log.size
			s.Close()
			path := st.path("s")
			tc.damage(t, path, size, lastOff)

			s, err = st.Open("s")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rec := s.Recovered()
			if rec == nil {
				t.Fatal("damage was not reported by Recovered()")
			}
			wantOff := size
			if tc.want < n {
				wantOff = lastOff
			}
			if rec.Offset != wantOff || rec.File != path || rec.LastID != int64(tc.want-1) {
				t.Fatalf("Recovered = %+v, want offset %d last id %d", rec, wantOff, tc.want-1)
			}
			if fi, _ := os.Stat(path); fi.Size() != wantOff {
				t.Fatalf("file is %d bytes after recovery, want %d", fi.Size(), wantOff)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "recovered event log") {
				t.Fatalf("no recovery warning logged: %q", logs.String())
			}
			after := storedJSON(t, s)
			if len(after) != tc.want {
				t.Fatalf("%d events survived, want %d", len(after), tc.want)
			}
			for i := range after {
				if !bytes.Equal(before[i], after[i]) {
					t.Fatalf("event %d changed", i)
				}
			}
			if got := mustAppend(t, s, runObs(0, 0)); got.ID != int64(tc.want) {
				t.Fatalf("append after recovery got id %d, want %d", got.ID, tc.want)
			}
			s.Close()
			s2, err := st.Open("s")
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if s2.Recovered() != nil || s2.Len() != tc.want+1 {
				t.Fatalf("second reopen: recovered %v, len %d (want clean, %d)", s2.Recovered(), s2.Len(), tc.want+1)
			}
		})
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesAFileThatIsNotAnEventLog(t *testing.T) {
	st, _ := newTestStore(t, nil)
	path := st.path("foreign")
	content := []byte("{\"not\": \"an event log\"}\n")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := st.Open("foreign")
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "offset 0") {
		t.Fatalf("Open of a foreign file: err = %v, want one naming %s and offset 0", err, path)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, content) {
		t.Fatal("foreign file was modified")
	}
}

func TestOpenRepairsATornHeader(t *testing.T) {
	st, _ := newTestStore(t, nil)
	if err := os.WriteFile(st.path("torn"), []byte(logMagic[:5]), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := st.Open("torn")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Recovered() == nil || s.Recovered().BytesDropped != 5 {
		t.Fatalf("torn header not reported: %v", s.Recovered())
	}
	if got := mustAppend(t, s, runObs(0, 0)); got.ID != 0 {
		t.Fatalf("id %d, want 0", got.ID)
	}
}

func TestOversizedEventIsRejectedAndNothingWritten(t *testing.T) {
	st, _ := newTestStore(t, func(c *Config) { c.MaxEventBytes = 4096 })
	s, err := st.Open("big")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustAppend(t, s, runObs(0, 0))
	size := s.log.size
	e := runObs(0, 1)
	e.Content = strings.Repeat("x", 5000)
	_, err = s.Append(context.Background(), e)
	if !errors.Is(err, ErrEventTooLarge) || !strings.Contains(err.Error(), "max_event_bytes = 4096") {
		t.Fatalf("oversized append: err = %v", err)
	}
	if s.log.size != size || s.Len() != 1 {
		t.Fatal("oversized append changed the log")
	}
	if got := mustAppend(t, s, runObs(0, 2)); got.ID != 1 {
		t.Fatalf("next id %d, want 1 (the rejected event must not use an id)", got.ID)
	}
}

func TestWriteErrorFailsTheAppendAndKeepsEarlierEvents(t *testing.T) {
	checkLeaks(t)
	st, _ := newTestStore(t, nil)
	s, err := st.Open("ro")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := appendRuns(t, s, 5)
	// Swap the append handle for a read-only one: the next write(2) fails
	// with EBADF, as it would on a file that became unwritable.
	good := s.log.wf
	ro, err := os.Open(s.log.path)
	if err != nil {
		t.Fatal(err)
	}
	s.log.mu.Lock()
	s.log.wf = ro
	s.log.mu.Unlock()
	_, err = s.Append(context.Background(), runObs(0, 99))
	if err == nil || !strings.Contains(err.Error(), s.log.path) || !strings.Contains(err.Error(), "write") {
		t.Fatalf("append to read-only file: err = %v, want a write error naming the file", err)
	}
	// The handle cannot be truncated back either, so the log refuses further
	// appends until the session is reopened.
	if _, err := s.Append(context.Background(), runObs(0, 100)); err == nil || !strings.Contains(err.Error(), "reopen the session") {
		t.Fatalf("append after an unrecoverable write error: err = %v", err)
	}
	s.Close()
	good.Close() // releases the flock held by the original handle
	s, err = st.Open("ro")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := mustAppend(t, s, runObs(0, 5)); got.ID != 5 {
		t.Fatalf("append after reopening got id %d, want 5 (ids stay gap-free)", got.ID)
	}
	after := storedJSON(t, s)
	if len(after) != 6 {
		t.Fatalf("%d events, want 6", len(after))
	}
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Fatalf("event %d changed", i)
		}
	}
}

func TestFullDiskFailsTheAppendAndKeepsEarlierEvents(t *testing.T) {
	checkLeaks(t)
	for _, method := range []SyncMethod{SyncMethodWAL, SyncMethodSyncfs, SyncMethodFsync} {
		t.Run(string(method), func(t *testing.T) { testFullDisk(t, method) })
	}
}

func testFullDisk(t *testing.T, method SyncMethod) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 64k tmpfs to fill (needs CAP_SYS_ADMIN): %v: %s; the read-only-file case covers the error path", err, out)
	}
	defer syscall.Unmount(dir, 0)
	cfg := testConfig(dir)
	cfg.SyncMethod = method
	st, err := OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Open("full")
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	n := 0
	for i := 0; i < 10000; i++ {
		if _, lastErr = s.Append(context.Background(), runObs(0, i)); lastErr != nil {
			break
		}
		n++
	}
	if lastErr == nil || !errors.Is(lastErr, syscall.ENOSPC) || !strings.Contains(lastErr.Error(), st.path("full")) {
		t.Fatalf("after %d appends: err = %v, want ENOSPC naming the file", n, lastErr)
	}
	if s.Len() != n {
		t.Fatalf("log has %d events, want the %d acknowledged ones", s.Len(), n)
	}
	s.Close()
	s, err = st.Open("full")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Recovered() != nil || s.Len() != n {
		t.Fatalf("reopen after full disk: recovered %v, %d events (want clean, %d)", s.Recovered(), s.Len(), n)
	}
	if _, err := s.Search(context.Background(), Filter{}); err != nil {
		t.Fatal(err)
	}
}

func TestStoreListsOpensAndDeletesSessions(t *testing.T) {
	st, _ := newTestStore(t, nil)
	for _, id := range []string{"b", "a", "rt_000123"} {
		s, err := st.Open(id)
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s, runObs(0, 0))
		if id == "a" {
			if _, err := st.Open("a"); err == nil {
				t.Fatal("second Open of an open session succeeded")
			}
			if err := st.Delete("a"); err == nil {
				t.Fatal("Delete of an open session succeeded")
			}
		}
		s.Close()
	}
	os.WriteFile(filepath.Join(st.Dir(), "notes.txt"), nil, 0o644)
	ids, err := st.Sessions()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != "a,b,rt_000123" {
		t.Fatalf("Sessions() = %v", ids)
	}
	if err := st.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete("a"); err == nil || !strings.Contains(err.Error(), "no such session") {
		t.Fatalf("second Delete: %v", err)
	}
	ids, _ = st.Sessions()
	if strings.Join(ids, ",") != "b,rt_000123" {
		t.Fatalf("Sessions() after delete = %v", ids)
	}
	for _, bad := range []string{"", "../x", ".hidden", "a/b", strings.Repeat("x", 201)} {
		if _, err := st.Open(bad); err == nil {
			t.Fatalf("Open(%q) accepted a bad session id", bad)
		}
	}
}
