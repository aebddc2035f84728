package eventbus

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzStoreRecover damages a valid event log (truncating it and appending
// arbitrary bytes, or overwriting bytes in place) and checks that opening it
// never panics, never loses an event stored before the damage, reports what
// it dropped, and leaves a log that appends continue on.
func FuzzStoreRecover(f *testing.F) {
	const n = 6
	// Build the undamaged log once.
	base := f.TempDir()
	st, err := OpenStore(testConfig(base))
	if err != nil {
		f.Fatal(err)
	}
	s, err := st.Open("s")
	if err != nil {
		f.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := s.Append(context.Background(), runObs(int64(i), i)); err != nil {
			f.Fatal(err)
		}
	}
	ends := make([]int64, n) // end offset of each record
	var want [][]byte
	for i := 0; i < n; i++ {
		ends[i] = s.log.offs[i] + recHeaderSize + int64(s.log.lens[i])
	}
	items, _ := s.Search(context.Background(), Filter{})
	for _, it := range items {
		want = append(want, it.JSON)
	}
	s.Close()
	st.Close()
	orig, err := os.ReadFile(filepath.Join(base, "s"+logExt))
	if err != nil {
		f.Fatal(err)
	}

	f.Add([]byte("garbage"), uint32(len(orig)), false)
	f.Add([]byte{}, uint32(len(orig)-3), false)
	f.Add([]byte{0xff}, uint32(ends[2]+20), true)
	f.Add([]byte("XX"), uint32(3), true)
	f.Add(orig[logHeaderSize:ends[0]], uint32(len(orig)), false) // a duplicate of record 0
	f.Fuzz(func(t *testing.T, data []byte, pos uint32, overwrite bool) {
		file := append([]byte(nil), orig...)
		at := int64(pos) % int64(len(file)+1)
		damageAt := at
		if overwrite {
			end := min(int(at)+len(data), len(file))
			copy(file[at:end], data)
			if bytes.Equal(file, orig) {
				damageAt = int64(len(file))
			}
		} else {
			file = append(file[:at], data...)
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "s"+logExt)
		if err := os.WriteFile(path, file, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := OpenStore(testConfig(dir), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s, err := st.Open("s")
		if err != nil {
			// Only a damaged header may refuse to open, and then the file
			// must be untouched.
			if damageAt >= logHeaderSize {
				t.Fatalf("open failed with damage at %d (after the header): %v", damageAt, err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, file) {
				t.Fatal("a refused file was modified")
			}
			return
		}
		got, err := s.Search(context.Background(), Filter{})
		if err != nil {
			// Search decodes: a record forged by the fuzzer with a valid CRC
			// but a payload that is not an event is a decode error, not a
			// crash. Stored bytes must still be readable raw.
			if !strings.Contains(err.Error(), "does not decode") {
				t.Fatalf("search after recovery: %v", err)
			}
			got = nil
			s.log.read(0, 1<<62, false, func(id int64, p []byte) bool {
				got = append(got, &Item{ID: id, JSON: p})
				return true
			})
		}
		intact := 0
		for intact < n && ends[intact] <= damageAt {
			intact++
		}
		if len(got) < intact {
			t.Fatalf("damage at %d: %d events survived, want at least the %d before it", damageAt, len(got), intact)
		}
		for i := 0; i < intact; i++ {
			if got[i].ID != int64(i) || !bytes.Equal(got[i].JSON, want[i]) {
				t.Fatalf("event %d before the damage changed", i)
			}
		}
		if fi, _ := os.Stat(path); s.Recovered() == nil && len(file) > 0 && fi.Size() != int64(len(file)) {
			t.Fatal("file changed size without a Recovered report")
		}
		last := s.LastID()
		e, err := s.Append(context.Background(), runObs(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if e.ID != last+1 {
			t.Fatalf("append after recovery got id %d, want %d", e.ID, last+1)
		}
		count := s.Len()
		s.Close()
		s, err = st.Open("s")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Recovered() != nil || s.Len() != count {
			t.Fatalf("second open: recovered %v, %d events, want clean with %d", s.Recovered(), s.Len(), count)
		}
	})
}

// FuzzWALRecover damages the write-ahead log a crash left (truncating its
// segment and appending arbitrary bytes, or overwriting bytes in place)
// and, per lose, takes from the session files what a machine crash can
// take (a's records that were never synced; b's file entirely). Opening
// the store must never panic, must refuse only a segment whose header is
// damaged (leaving it untouched), must keep every event of an intact file
// and restore every event of an entry before the damage, and must leave a
// store that appends continue on.
func FuzzWALRecover(f *testing.F) {
	base := f.TempDir()
	st, err := OpenStore(testConfig(base))
	if err != nil {
		f.Fatal(err)
	}
	sessions := []string{"a", "b"}
	streams := map[string]*Stream{}
	for _, sid := range sessions {
		if streams[sid], err = st.Open(sid); err != nil {
			f.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		for _, sid := range sessions {
			if _, err := streams[sid].Append(context.Background(), runObs(int64(i), i)); err != nil {
				f.Fatal(err)
			}
		}
	}
	want := map[string][][]byte{}
	files := map[string][]byte{}
	for _, sid := range sessions {
		items, _ := streams[sid].Search(context.Background(), Filter{})
		for _, it := range items {
			want[sid] = append(want[sid], it.JSON)
		}
		if files[sid], err = os.ReadFile(st.path(sid)); err != nil {
			f.Fatal(err)
		}
	}
	segs, _ := listSegments(filepath.Join(base, walDirName))
	if len(segs) != 1 {
		f.Fatalf("want one segment, have %v", segs)
	}
	segName := filepath.Base(segs[0].path)
	orig, err := os.ReadFile(segs[0].path)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range streams {
		s.Close()
	}
	st.Close()
	// Where each entry ends, and the events it holds.
	type span struct {
		end int
		sid string
		ids []int64
	}
	var entries []span
	for off := walHeaderSize; off < len(orig); {
		e, n, reason := decodeWALEntry(orig[off:])
		if reason != "" {
			f.Fatalf("undamaged segment: %s at %d", reason, off)
		}
		off += n
		sp := span{end: off, sid: e.sid}
		eachRecord(e.body, func(id int64, _ []byte) { sp.ids = append(sp.ids, id) })
		entries = append(entries, sp)
	}

	f.Add([]byte("garbage"), uint32(len(orig)), false, uint8(1))
	f.Add([]byte{}, uint32(len(orig)-3), false, uint8(3))
	f.Add([]byte{0xff}, uint32(entries[1].end+12), true, uint8(1))
	f.Add([]byte("XX"), uint32(3), true, uint8(0))
	f.Add(orig[walHeaderSize:entries[0].end], uint32(len(orig)), false, uint8(3)) // entry 0 again
	f.Fuzz(func(t *testing.T, data []byte, pos uint32, overwrite bool, lose uint8) {
		seg := append([]byte(nil), orig...)
		at := int(int64(pos) % int64(len(seg)+1))
		damageAt := at
		if overwrite {
			end := min(at+len(data), len(seg))
			copy(seg[at:end], data)
			if bytes.Equal(seg, orig) {
				damageAt = len(seg)
			}
		} else {
			seg = append(seg[:at], data...)
		}
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, walDirName), 0o755)
		segPath := filepath.Join(dir, walDirName, segName)
		if err := os.WriteFile(segPath, seg, 0o644); err != nil {
			t.Fatal(err)
		}
		lost := map[string]bool{"a": lose&1 != 0, "b": lose&2 != 0}
		for _, sid := range sessions {
			switch {
			case sid == "a" && lost[sid]:
				os.WriteFile(filepath.Join(dir, sid+logExt), files[sid][:logHeaderSize], 0o644)
			case sid == "b" && lost[sid]:
			default:
				os.WriteFile(filepath.Join(dir, sid+logExt), files[sid], 0o644)
			}
		}
		st, err := OpenStore(testConfig(dir), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			if damageAt >= walHeaderSize {
				t.Fatalf("open refused with damage at %d (after the segment header): %v", damageAt, err)
			}
			if got, _ := os.ReadFile(segPath); !bytes.Equal(got, seg) {
				t.Fatal("a refused segment was modified")
			}
			return
		}
		defer st.Close()
		if !overwrite && at == len(orig) && len(data) > 0 {
			// Bytes after the last entry that do not decode are a torn tail.
			if _, _, reason := decodeWALEntry(data); reason != "" && len(st.Recovered()) == 0 {
				t.Fatal("garbage after the last entry was not reported")
			}
		}
		mustHave := map[string]map[int64]bool{"a": {}, "b": {}}
		for _, e := range entries {
			if e.end <= damageAt {
				for _, id := range e.ids {
					mustHave[e.sid][id] = true
				}
			}
		}
		for i, sid := range sessions {
			s, err := st.Open(sid)
			if err != nil {
				t.Fatal(err)
			}
			got := map[int64][]byte{}
			s.log.read(0, 1<<62, false, func(id int64, p []byte) bool {
				got[id] = p
				return true
			})
			for id := range want[sid] {
				if (!lost[sid] || mustHave[sid][int64(id)]) && !bytes.Equal(got[int64(id)], want[sid][id]) {
					t.Fatalf("session %s (file lost: %v, entry %d intact: %v): event %d missing or changed", sid, lost[sid], i, mustHave[sid][int64(id)], id)
				}
			}
			last := s.LastID()
			e, err := s.Append(context.Background(), runObs(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if e.ID != last+1 {
				t.Fatalf("session %s: append after recovery got id %d, want %d", sid, e.ID, last+1)
			}
			s.Close()
		}
		if got := segments(t, dir); len(got) != 1 || got[0] == segPath {
			t.Fatalf("after recovery the log has segments %v, want one fresh segment", got)
		}
	})
}
