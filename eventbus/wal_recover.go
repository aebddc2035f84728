package eventbus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// walEntry is one decoded entry of a segment.
type walEntry struct {
	kind byte
	sid  string
	body []byte
}

// readSegment decodes a segment. A torn or corrupt tail ends it and is
// reported (the file is not modified: recovery deletes segments once
// replayed). A file that does not start with our header is refused.
func readSegment(path string) ([]walEntry, *Recovered, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("eventbus: read write-ahead log segment %s: %w", path, err)
	}
	var want [walHeaderSize]byte
	copy(want[:], walMagic)
	binary.LittleEndian.PutUint32(want[8:12], walVersion)
	if len(data) < walHeaderSize {
		// Created but torn while its header was written: no entry can
		// follow (the header is synced before the first entry).
		if !bytes.Equal(data, want[:len(data)]) {
			return nil, nil, notOurSegment(path, "bad header at offset 0")
		}
		if len(data) == 0 {
			return nil, nil, nil // created just before a crash: nothing lost
		}
		return nil, &Recovered{File: path, BytesDropped: int64(len(data)), Reason: "torn segment header", LastID: InvalidID}, nil
	}
	if string(data[:8]) != walMagic {
		return nil, nil, notOurSegment(path, fmt.Sprintf("bad magic %q at offset 0", data[:8]))
	}
	if v := binary.LittleEndian.Uint32(data[8:12]); v != walVersion {
		return nil, nil, fmt.Errorf("eventbus: write-ahead log segment %s has unsupported version %d at offset 8 (this build reads version %d); open the store with the build that wrote it", path, v, walVersion)
	}
	var entries []walEntry
	off := walHeaderSize
	for off < len(data) {
		e, n, reason := decodeWALEntry(data[off:])
		if reason != "" {
			return entries, &Recovered{File: path, Offset: int64(off), BytesDropped: int64(len(data) - off), Reason: reason, LastID: InvalidID}, nil
		}
		entries = append(entries, e)
		off += n
	}
	return entries, nil, nil
}

func notOurSegment(path, why string) error {
	return fmt.Errorf("eventbus: %s is not a corral write-ahead log segment (%s); refusing to open the store and leaving the file untouched: move it out of %s", path, why, filepath.Dir(path))
}

// decodeWALEntry decodes the entry at the start of b and returns its size,
// or why it is torn or corrupt.
func decodeWALEntry(b []byte) (walEntry, int, string) {
	if len(b) < walEntryHeader {
		return walEntry{}, 0, "torn entry header"
	}
	length := int64(binary.LittleEndian.Uint32(b[0:4]))
	if length < 2 || length > walMaxEntryBytes {
		return walEntry{}, 0, fmt.Sprintf("entry length %d out of range", length)
	}
	if int64(len(b)-8) < length {
		return walEntry{}, 0, "torn entry (length beyond end of segment)"
	}
	rest := b[8 : 8+length]
	if crc32.Checksum(rest, castagnoli) != binary.LittleEndian.Uint32(b[4:8]) {
		return walEntry{}, 0, "checksum mismatch"
	}
	kind, sidLen := rest[0], int(rest[1])
	if len(rest) < 2+sidLen {
		return walEntry{}, 0, "session id beyond the entry"
	}
	sid := string(rest[2 : 2+sidLen])
	if err := ValidateSessionID(sid); err != nil {
		return walEntry{}, 0, fmt.Sprintf("invalid session id: %v", err)
	}
	body := rest[2+sidLen:]
	switch kind {
	case walKindRecords:
		if err := eachRecord(body, func(int64, []byte) {}); err != nil {
			return walEntry{}, 0, err.Error()
		}
	case walKindDelete:
		if len(body) != 0 {
			return walEntry{}, 0, "delete entry with a body"
		}
	default:
		return walEntry{}, 0, fmt.Sprintf("unknown entry kind %d", kind)
	}
	return walEntry{kind: kind, sid: sid, body: body}, int(8 + length), ""
}

// eachRecord calls fn for every framed session-log record in body, which
// must hold whole, valid records with increasing ids.
func eachRecord(body []byte, fn func(id int64, payload []byte)) error {
	last := InvalidID
	if len(body) == 0 {
		return errors.New("records entry without records")
	}
	for off := 0; off < len(body); {
		if len(body)-off < recHeaderSize {
			return fmt.Errorf("torn record header at %d of the entry", off)
		}
		r := body[off:]
		length := int(binary.LittleEndian.Uint32(r[0:4]))
		if length > len(r)-recHeaderSize {
			return fmt.Errorf("record at %d of the entry overruns it", off)
		}
		id := int64(binary.LittleEndian.Uint64(r[8:16]))
		c := crc32.Update(0, castagnoli, r[8:16+length])
		if c != binary.LittleEndian.Uint32(r[4:8]) {
			return fmt.Errorf("record checksum mismatch at %d of the entry", off)
		}
		if id < 0 || id <= last {
			return fmt.Errorf("record id %d does not follow id %d", id, last)
		}
		fn(id, r[recHeaderSize:recHeaderSize+length])
		last = id
		off += recHeaderSize + length
	}
	return nil
}

// recoverWAL replays every segment into the session files, then deletes
// the segments. It returns the highest segment number seen (new segments
// continue after it).
func (st *Store) recoverWAL() (uint64, error) {
	dir := filepath.Join(st.dir, walDirName)
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		return 0, err
	}
	// Each session's record entries since its last delete, in log order,
	// and when the segment holding its last one was last written.
	pending := map[string][][]byte{}
	lastWrite := map[string]time.Time{}
	for _, seg := range segs {
		entries, rec, err := readSegment(seg.path)
		if err != nil {
			return 0, err
		}
		var mtime time.Time
		if fi, err := os.Stat(seg.path); err == nil {
			mtime = fi.ModTime()
		}
		if rec != nil {
			st.recovered = append(st.recovered, rec)
			st.logger.Warn("eventbus: recovered write-ahead log: dropped a torn or corrupt segment tail (nothing acknowledged is in it)",
				"file", rec.File, "offset", rec.Offset, "bytes_dropped", rec.BytesDropped, "reason", rec.Reason)
		}
		for _, e := range entries {
			if e.kind == walKindDelete {
				delete(pending, e.sid)
				continue
			}
			pending[e.sid] = append(pending[e.sid], e.body)
			lastWrite[e.sid] = mtime
		}
	}
	sids := make([]string, 0, len(pending))
	for sid := range pending {
		sids = append(sids, sid)
	}
	sort.Strings(sids)
	for _, sid := range sids {
		if err := st.replaySession(sid, pending[sid], lastWrite[sid]); err != nil {
			return 0, err
		}
	}
	// Every session file now holds (durably) what the segments held. Oldest
	// first, each removal durable before the next (see wal.checkpoint).
	for _, seg := range segs {
		if err := os.Remove(seg.path); err != nil {
			return 0, fmt.Errorf("eventbus: remove replayed write-ahead log segment: %w", err)
		}
		if err := syncDir(dir); err != nil {
			return 0, fmt.Errorf("eventbus: sync %s: %w", dir, err)
		}
	}
	return segs[len(segs)-1].seq, nil
}

// replaySession appends to session sid's file the records of bodies it
// does not have (ids after its last one) and syncs it. When it appended
// any, the file's modification time (Store.LastWrite, a session's last
// activity) is set to written, when the log last received its events,
// rather than left at the time of recovery.
func (st *Store) replaySession(sid string, bodies [][]byte, written time.Time) error {
	l, err := openLog(st.path(sid), SyncNever, nil, st.logger.With("session", sid), nil)
	if err != nil {
		return fmt.Errorf("eventbus: replay the write-ahead log into session %q: %w", sid, err)
	}
	if l.recovered != nil {
		st.sessRecovered[sid] = l.recovered
	}
	n := 0
	var aerr error
	for _, b := range bodies {
		eachRecord(b, func(id int64, payload []byte) {
			if aerr != nil || id < l.nextID {
				return
			}
			if aerr = l.appendWithID(context.Background(), id, payload); aerr == nil {
				n++
			}
		})
	}
	if cerr := l.close(); aerr == nil {
		aerr = cerr // close fsyncs the file
	}
	if aerr != nil {
		return fmt.Errorf("eventbus: replay the write-ahead log into session %q: %w", sid, aerr)
	}
	if n > 0 && !written.IsZero() {
		if err := os.Chtimes(st.path(sid), written, written); err != nil {
			st.logger.Warn("eventbus: keep the last write time of a replayed session", "session", sid, "err", err)
		}
	}
	if n > 0 {
		st.logger.Info("eventbus: replayed events from the write-ahead log into the session file", "session", sid, "events", n, "last_id", l.nextID-1)
	}
	return nil
}
