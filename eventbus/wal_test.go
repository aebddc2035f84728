package eventbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashCopy copies a store directory while its Store is still open, as a
// machine crash would leave it: the write-ahead log holds every
// acknowledged batch (it was synced), and session files hold whatever the
// test then takes away from them to play the lost page cache.
func crashCopy(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if e.Name() == lockFile {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func segments(t *testing.T, storeDir string) []string {
	t.Helper()
	segs, err := listSegments(filepath.Join(storeDir, walDirName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, s.path)
	}
	return out
}

func openStoreAt(t *testing.T, dir string) (*Store, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	st, err := OpenStore(testConfig(dir), WithLogger(slog.New(slog.NewTextHandler(lb, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, lb
}

func TestWALRestoresAcknowledgedEventsASessionFileLost(t *testing.T) {
	checkLeaks(t)
	cases := []struct {
		name        string
		damage      func(t *testing.T, path string, s *Stream)
		wantReport  bool // Stream.Recovered reports what the file itself lost
		wantInWarns string
	}{
		{"the file lost its unsynced records (page cache)", func(t *testing.T, p string, _ *Stream) { truncate(t, p, logHeaderSize) }, false, ""},
		{"the file is missing", func(t *testing.T, p string, _ *Stream) { os.Remove(p) }, false, ""},
		{"the file has a torn tail", func(t *testing.T, p string, s *Stream) {
			truncate(t, p, s.log.offs[3]+5)
		}, true, "torn record"},
		{"the file is corrupt in the middle (a bad index entry)", func(t *testing.T, p string, s *Stream) {
			flip(t, p, s.log.offs[2]+recHeaderSize+3)
		}, true, "checksum mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newTestStore(t, nil)
			s, err := st.Open("sess")
			if err != nil {
				t.Fatal(err)
			}
			want := appendRuns(t, s, 6)
			other, err := st.Open("other")
			if err != nil {
				t.Fatal(err)
			}
			wantOther := appendRuns(t, other, 3)
			dir := crashCopy(t, st.Dir())
			tc.damage(t, filepath.Join(dir, "sess"+logExt), s)
			// The copy's segment was written now; make its time distinct
			// from the recovery's so LastWrite shows which one it kept.
			segMtime := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
			for _, p := range segments(t, dir) {
				os.Chtimes(p, segMtime, segMtime)
			}

			st2, logs := openStoreAt(t, dir)
			if got := segments(t, dir); len(got) != 1 {
				t.Fatalf("after recovery the log has segments %v, want only a fresh one", got)
			}
			s2, err := st2.Open("sess")
			if err != nil {
				t.Fatal(err)
			}
			if got := storedJSON(t, s2); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after recovery the session holds %d events, want the 6 acknowledged ones unchanged", len(got))
			}
			if (s2.Recovered() != nil) != tc.wantReport {
				t.Fatalf("Recovered = %v, want a report: %v", s2.Recovered(), tc.wantReport)
			}
			if tc.wantReport && !strings.Contains(s2.Recovered().Reason, strings.Fields(tc.wantInWarns)[0]) {
				t.Fatalf("report %v does not say %q", s2.Recovered(), tc.wantInWarns)
			}
			if !strings.Contains(logs.String(), "replayed events from the write-ahead log") {
				t.Fatalf("replay not logged: %s", logs.String())
			}
			if lw, seg := st2.LastWrite("sess"), segMtime; !lw.Equal(seg) {
				t.Fatalf("LastWrite after replay = %v, want the log's last write %v (not the recovery time)", lw, seg)
			}
			if e := mustAppend(t, s2, runObs(0, 9)); e.ID != 6 {
				t.Fatalf("append after recovery got id %d, want 6", e.ID)
			}
			o2, err := st2.Open("other")
			if err != nil {
				t.Fatal(err)
			}
			if got := storedJSON(t, o2); fmt.Sprint(got) != fmt.Sprint(wantOther) || o2.Recovered() != nil {
				t.Fatalf("the undamaged session changed: %d events, recovered %v", len(got), o2.Recovered())
			}
		})
	}
}

func TestWALTornSegmentTailIsDroppedAndReported(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, seg string)
	}{
		{"garbage after the last entry", func(t *testing.T, seg string) { appendBytes(t, seg, []byte("\x30\x00\x00\x00torn")) }},
		{"the last entry cut short", func(t *testing.T, seg string) {
			fi, _ := os.Stat(seg)
			truncate(t, seg, fi.Size()-7)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newTestStore(t, nil)
			s, err := st.Open("sess")
			if err != nil {
				t.Fatal(err)
			}
			want := appendRuns(t, s, 5)
			dir := crashCopy(t, st.Dir())
			segs := segments(t, dir)
			if len(segs) != 1 {
				t.Fatalf("segments %v", segs)
			}
			tc.damage(t, segs[0])
			st2, logs := openStoreAt(t, dir)
			rec := st2.Recovered()
			if len(rec) != 1 || rec[0].File != segs[0] || rec[0].BytesDropped == 0 {
				t.Fatalf("Store.Recovered = %v, want the torn tail of %s", rec, segs[0])
			}
			if !strings.Contains(logs.String(), "dropped a torn or corrupt segment tail") {
				t.Fatalf("not logged: %s", logs.String())
			}
			s2, err := st2.Open("sess")
			if err != nil {
				t.Fatal(err)
			}
			// The session file was intact: nothing is lost, whatever the
			// segment lost (its torn entry was never acknowledged).
			if got := storedJSON(t, s2); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("events changed: %d, want 5", len(got))
			}
		})
	}
}

func TestWALRefusesASegmentThatIsNotOurs(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct{ name, file, content, want string }{
		{"foreign content", "0000000000000001.wal", "this is somebody else's log file", "bad magic"},
		{"a short foreign file", "0000000000000002.wal", "hi", "bad header"},
		{"a name that is not a segment number", "notes.wal", "x", "segments are named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, walDirName), 0o755)
			path := filepath.Join(dir, walDirName, tc.file)
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			st, err := OpenStore(testConfig(dir))
			if err == nil {
				st.Close()
				t.Fatal("OpenStore accepted a foreign segment")
			}
			for _, w := range []string{path, "not a corral write-ahead log segment", tc.want, "move it out of"} {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not contain %q", err, w)
				}
			}
			if b, _ := os.ReadFile(path); string(b) != tc.content {
				t.Fatal("the foreign file was modified")
			}
		})
	}
}

func TestWALDeletedSessionStaysDeletedAfterACrash(t *testing.T) {
	checkLeaks(t)
	st, _ := newTestStore(t, nil)
	for _, sid := range []string{"gone", "kept"} {
		s, err := st.Open(sid)
		if err != nil {
			t.Fatal(err)
		}
		appendRuns(t, s, 3)
		s.Close()
	}
	if err := st.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	dir := crashCopy(t, st.Dir())
	st2, _ := openStoreAt(t, dir)
	if ids, _ := st2.Sessions(); strings.Join(ids, ",") != "kept" {
		t.Fatalf("sessions after the crash: %v, want only kept (the log replayed a deleted session)", ids)
	}
	// Recreating it starts from scratch, and survives the next crash.
	s, err := st2.Open("gone")
	if err != nil {
		t.Fatal(err)
	}
	want := appendRuns(t, s, 2)
	dir3 := crashCopy(t, st2.Dir())
	truncate(t, filepath.Join(dir3, "gone"+logExt), logHeaderSize)
	st3, _ := openStoreAt(t, dir3)
	s3, err := st3.Open("gone")
	if err != nil {
		t.Fatal(err)
	}
	if got := storedJSON(t, s3); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("recreated session after a crash: %d events, want its 2", len(got))
	}
}

func TestWALRotatesAndCheckpointsAwayFullSegments(t *testing.T) {
	checkLeaks(t)
	st, _ := newTestStore(t, nil)
	st.wal.segBytes = 4 << 10 // a few entries per segment
	streams := openSessions(t, st, 3)
	acked, err := appendConcurrently(streams, 2, 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.wal.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := segments(t, st.Dir()); len(got) != 1 {
		t.Fatalf("after a checkpoint the log has %d segments, want only the current one", len(got))
	}
	// A crash now: every session file is durable up to the checkpoint and
	// the current segment holds the rest.
	dir := crashCopy(t, st.Dir())
	st2, _ := openStoreAt(t, dir)
	for _, s := range streams {
		s2, err := st2.Open(s.SessionID())
		if err != nil {
			t.Fatal(err)
		}
		if s2.Len() != len(acked[s.SessionID()]) || s2.Recovered() != nil {
			t.Fatalf("session %s: %d events (recovered %v), want %d", s.SessionID(), s2.Len(), s2.Recovered(), len(acked[s.SessionID()]))
		}
	}
	// A clean close checkpoints everything: no segment is left.
	for _, s := range streams {
		s.Close()
	}
	dirOrig := st.Dir()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if got := segments(t, dirOrig); len(got) != 0 {
		t.Fatalf("a closed store left segments %v", got)
	}
}

// mountTmpfs mounts a small tmpfs on a fresh directory (needs root, as the
// full-disk test).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func TestWALFullDiskMidBatchFailsThatBatchAndKeepsEverythingBefore(t *testing.T) {
	checkLeaks(t)
	dir := mountTmpfs(t, "256k")
	st, err := OpenStore(testConfig(dir), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	streams := make([]*Stream, 4)
	for i := range streams {
		if streams[i], err = st.Open(fmt.Sprintf("s%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Concurrent appenders until the disk is full: batches hold several
	// sessions' groups, so the failing write is mid-batch for most.
	var mu sync.Mutex
	acked := map[string]map[int64]string{}
	var failures []error
	var wg sync.WaitGroup
	for _, s := range streams {
		acked[s.SessionID()] = map[int64]string{}
	}
	for _, s := range streams {
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000; i++ {
					e := runObs(0, i)
					e.Content = fmt.Sprintf("%s/%d/%d", s.SessionID(), g, i)
					got, err := s.Append(context.Background(), e)
					mu.Lock()
					if err != nil {
						failures = append(failures, err)
						mu.Unlock()
						return
					}
					acked[s.SessionID()][got.ID] = e.Content
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(failures) == 0 {
		t.Fatal("2000 appends per goroutine never filled a 256k disk")
	}
	for _, err := range failures {
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("append error %q is not a clear ENOSPC naming the file", err)
		}
	}
	for _, s := range streams {
		s.Close()
	}
	st.Close()
	st2, _ := openStoreAt(t, dir)
	for sid, want := range acked {
		s, err := st2.Open(sid)
		if err != nil {
			t.Fatal(err)
		}
		items, err := s.Search(context.Background(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[int64]string{}
		for _, it := range items {
			ev, err := it.Event()
			if err != nil {
				t.Fatal(err)
			}
			got[it.ID] = ev.Content
		}
		for id, c := range want {
			if got[id] != c {
				t.Fatalf("session %s: acknowledged event %d (%q) is %q after reopen", sid, id, c, got[id])
			}
		}
		if len(got) != len(want) {
			t.Fatalf("session %s holds %d events, want the %d acknowledged", sid, len(got), len(want))
		}
		s.Close()
	}
}

func TestReadOnlyStoreIsRefusedWithAClearError(t *testing.T) {
	checkLeaks(t)
	dir := mountTmpfs(t, "1m")
	st, err := OpenStore(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := st.Open("sess")
	appendRuns(t, s, 2)
	st.Close()
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v: %s", err, out)
	}
	before := dirSnapshot(t, dir)
	st, err = OpenStore(testConfig(dir))
	if err == nil {
		st.Close()
		t.Fatal("OpenStore succeeded on a read-only filesystem")
	}
	for _, w := range []string{dir, "read-only", "writable store_dir"} {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not contain %q", err, w)
		}
	}
	if after := dirSnapshot(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("the refused store changed")
	}
}

func TestSessionIDsThatWouldEscapeTheStoreAreRefused(t *testing.T) {
	checkLeaks(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	st, err := OpenStore(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, sid := range []string{"../escape", "a/b", "/abs", "..", ".hidden", "", "a\x00b", strings.Repeat("x", 201)} {
		t.Run(fmt.Sprintf("%q", sid), func(t *testing.T) {
			ops := map[string]error{}
			_, ops["Open"] = st.Open(sid)
			ops["Delete"] = st.Delete(sid)
			ops["SaveMeta"] = st.SaveMeta(sid, []byte(`{"k":"v"}`))
			_, ops["LoadMeta"] = st.LoadMeta(sid)
			ops["Export"] = st.Export(context.Background(), sid, t.TempDir())
			for op, err := range ops {
				if err == nil || !strings.Contains(err.Error(), "session id") {
					t.Fatalf("%s(%q): err = %v, want a session id error", op, sid, err)
				}
			}
		})
	}
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 {
		t.Fatalf("files appeared next to the store: %v", ents)
	}
	// A log entry naming such a session (forged, with a valid checksum) is
	// a corrupt tail, never a path.
	b := appendWALEntry(nil, walKindRecords, "../escape", frameForTest(0, []byte(`{}`)))
	if _, _, reason := decodeWALEntry(b); !strings.Contains(reason, "invalid session id") {
		t.Fatalf("a log entry for ../escape decoded (%q)", reason)
	}
	if !bytes.Contains(b, []byte("../escape")) {
		t.Fatal("test entry malformed")
	}
}

// frameForTest frames one session-log record.
func frameForTest(id int64, payload []byte) []byte {
	rec := append(make([]byte, recHeaderSize), payload...)
	frameRecord(rec, id)
	return rec
}

func TestWALSyncFailureFailsTheBatchAndRefusesAppendsUntilReopen(t *testing.T) {
	checkLeaks(t)
	st, logs := newTestStore(t, nil)
	s, err := st.Open("sess")
	if err != nil {
		t.Fatal(err)
	}
	want := appendRuns(t, s, 4)
	st.wal.mu.Lock() // no commit runs while the hook changes
	st.wal.syncSeg = func(*os.File) error { return syscall.EIO }
	st.wal.mu.Unlock()
	_, err = s.Append(context.Background(), runObs(0, 4))
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "fdatasync write-ahead log segment") || !strings.Contains(err.Error(), st.path("sess")) {
		t.Fatalf("append during a failing sync: %v, want EIO naming the segment and the session file", err)
	}
	_, err = s.Append(context.Background(), runObs(0, 5))
	if err == nil || !strings.Contains(err.Error(), "refuses appends until the store is reopened") {
		t.Fatalf("append after a failed sync: %v, want the log to refuse until reopened", err)
	}
	if !strings.Contains(logs.String(), "write-ahead log failed") {
		t.Fatalf("sync failure not logged: %s", logs.String())
	}
	if s.Len() != 4 {
		t.Fatalf("%d events after the failures, want the 4 acknowledged", s.Len())
	}
	s.Close()
	dir := st.Dir()
	st.Close()
	st2, _ := openStoreAt(t, dir)
	s2, err := st2.Open("sess")
	if err != nil {
		t.Fatal(err)
	}
	if got := storedJSON(t, s2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopen: %d events, want the 4 acknowledged unchanged", len(got))
	}
	if e := mustAppend(t, s2, runObs(0, 4)); e.ID != 4 {
		t.Fatalf("append after reopen got id %d, want 4", e.ID)
	}
}

func TestAStoreFromBeforeTheWALOpensAsItIsWithAMessage(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.SyncMethod = SyncMethodFsync // how stores were written before the log
	st, err := OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := st.Open("old")
	want := appendRuns(t, s, 3)
	st.Close()
	if _, err := os.Stat(filepath.Join(dir, walDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a store without the log has %s: %v", walDirName, err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "old"+logExt))

	st2, logs := openStoreAt(t, dir)
	if !strings.Contains(logs.String(), "no migration") {
		t.Fatalf("first open with the log says nothing: %s", logs.String())
	}
	s2, err := st2.Open("old")
	if err != nil {
		t.Fatal(err)
	}
	if got := storedJSON(t, s2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatal("the old session's events changed")
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "old"+logExt)); !bytes.Equal(before, after) {
		t.Fatal("opening rewrote the old session file")
	}
	mustAppend(t, s2, runObs(0, 3))
	s2.Close()
	st2.Close()
	st3, logs3 := openStoreAt(t, dir)
	if strings.Contains(logs3.String(), "no migration") {
		t.Fatal("the first-open message is logged again")
	}
	s3, _ := st3.Open("old")
	if s3.Len() != 4 {
		t.Fatalf("%d events after appending with the log, want 4", s3.Len())
	}
}
