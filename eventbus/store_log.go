package eventbus

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// On-disk format of one session's log (one file per session):
//
//	header  : magic "CRLEVLOG" (8 bytes) | version uint32 LE | flags uint32 LE (0)
//	record* : length uint32 LE | crc uint32 LE | id int64 LE | payload (length bytes)
//
// crc is CRC32C (Castagnoli) over the 8 id bytes followed by the payload. The
// payload is the event's OpenHands JSON exactly as subscribers receive it.
// Ids are strictly increasing within a file; they are gap-free for events
// appended through a Stream and may have gaps for imported trajectories.
const (
	logMagic      = "CRLEVLOG"
	logVersion    = 1
	logHeaderSize = 16
	recHeaderSize = 16
	// maxRecordBytes bounds the length field accepted on open, whatever the
	// configured event limit was when the file was written; a larger length
	// is treated as corruption rather than an allocation request.
	maxRecordBytes = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Recovered describes what opening a log had to drop: a torn or corrupt tail
// left by a crash (or by damage). Everything before Offset was kept.
type Recovered struct {
	File         string // the log file
	Offset       int64  // where the bad tail started; the file now ends here
	BytesDropped int64  // how many bytes were truncated
	Reason       string // what was wrong with the first bad record
	LastID       int64  // id of the last good event (InvalidID if none)
}

func (r *Recovered) String() string {
	return fmt.Sprintf("%s: dropped %d bytes at offset %d (%s); last good event id %d",
		r.File, r.BytesDropped, r.Offset, r.Reason, r.LastID)
}

// record is one durable event as the log hands it to readers and fan-out.
type record struct {
	id      int64
	payload []byte
	ev      *Event // the shared decoded event, when a subscriber was live at append
}

// commitGroup is the unit acknowledged together: every append enqueued while
// the committer was busy joins the same group. Fields other than buf, recs
// and offs are guarded by the log's mu.
type commitGroup struct {
	buf  []byte // framed records, written with one write(2)
	recs []record
	offs []int64 // offset of each record's header relative to buf start
	// done is made by the first appender that has to wait for the group
	// (a follower); a leader finishes its own group before it would wait,
	// so a lone writer never allocates it.
	done     chan struct{}
	finished bool
	err      error
	retained bool // fan-out kept payload slices: buf must not be reused
}

// maxSpareGroupBytes bounds the buffer a log keeps for reuse.
const maxSpareGroupBytes = 64 << 10

var zeroRecHeader [recHeaderSize]byte

// eventLog is one session's append-only file with group commit. Appends from
// many goroutines are framed into the pending group under mu. The first
// appender that finds no writer active becomes the writer (leader): it
// writes each pending group with one write(2), syncs per policy, publishes
// it to the index and calls onDurable, in id order, and keeps going until
// nothing is pending; the others just wait for their group. No goroutine of
// its own, and no hand-off on the single-writer path.
type eventLog struct {
	path   string
	policy SyncPolicy
	logger *slog.Logger
	// onDurable is called by the writer, in id order, after a group is
	// durable per the policy. It must not block, and reports whether it
	// kept any payload slice (then the group's buffer is not reused).
	onDurable func([]record) bool
	// syncer, if set, makes written groups durable store-wide (syncfs)
	// instead of an fsync of this file (sync_method).
	syncer *storeSyncer
	// wal, if set, makes written groups durable through the store-wide
	// write-ahead log (sync_method "wal"), as session sid's entries.
	wal *wal
	sid string
	// replica, if set, receives every written group before it is synced
	// and acknowledged (cluster mode; see replicate).
	replica Replica

	// syncFile makes this file's writes durable: fdatasync unless a test
	// replaced it.
	syncFile func() error

	wf *os.File // append handle (also holds the flock)
	rf *os.File // read handle for ReadAt; safe for concurrent use

	mu        sync.Mutex
	nextID    int64        // next id to assign
	pending   *commitGroup // group being filled
	spare     *commitGroup // a finished group kept for reuse
	writing   bool         // an appender is acting as the writer (leader)
	idle      *sync.Cond   // signalled when writing becomes false
	syncs     atomic.Int64 // fsyncs done by writers (benchmarks)
	closing   bool
	broken    error   // set when the file can no longer be trusted for writes
	ids       []int64 // durable ids, ascending
	offs      []int64 // file offset of each durable record header
	lens      []int32 // payload length of each durable record
	size      int64   // durable end of file
	recovered *Recovered
}

// errLogClosed is returned for appends after Close.
var errLogClosed = errors.New("eventbus: stream is closed")

// logLockWait is how long lockLog keeps trying a lock that is taken.
const logLockWait = time.Second

// lockLog takes the log's exclusive flock. A taken lock is tried again for
// up to logLockWait: the lock belongs to the open file description, which
// a process forked at that moment (any exec in this process: a sandbox, an
// agent, git) shares until its exec closes the descriptor, so a log closed
// a moment ago by another stream can look locked for a few milliseconds.
// Another process really holding the log still fails, a second later.
func lockLog(f *os.File) error {
	deadline := time.Now().Add(logLockWait)
	for {
		err := flock(f, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openLog opens or creates the log at path, recovering a torn tail.
func openLog(path string, policy SyncPolicy, syncer *storeSyncer, logger *slog.Logger, onDurable func([]record) bool) (*eventLog, error) {
	wf, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("eventbus: open event log %s: %w", path, err)
	}
	if err := lockLog(wf); err != nil {
		wf.Close()
		return nil, fmt.Errorf("eventbus: event log %s is in use by another process or stream (flock: %w); close the other user first", path, err)
	}
	l := &eventLog{
		path: path, policy: policy, logger: logger, onDurable: onDurable,
		wf: wf, syncer: syncer,
		nextID: 0,
	}
	if err := l.load(); err != nil {
		wf.Close()
		return nil, err
	}
	rf, err := os.Open(path)
	if err != nil {
		wf.Close()
		return nil, fmt.Errorf("eventbus: open event log %s for reading: %w", path, err)
	}
	l.rf = rf
	l.idle = sync.NewCond(&l.mu)
	l.syncFile = l.fdatasync
	if _, err := wf.Seek(l.size, io.SeekStart); err != nil {
		wf.Close()
		rf.Close()
		return nil, fmt.Errorf("eventbus: seek event log %s to %d: %w", path, l.size, err)
	}
	return l, nil
}

// load validates the header, builds the index and truncates a bad tail.
func (l *eventLog) load() error {
	st, err := l.wf.Stat()
	if err != nil {
		return fmt.Errorf("eventbus: stat event log %s: %w", l.path, err)
	}
	fileSize := st.Size()
	var hdr [logHeaderSize]byte
	n, err := io.ReadFull(io.NewSectionReader(l.wf, 0, logHeaderSize), hdr[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("eventbus: read header of event log %s: %w", l.path, err)
	}
	if n < logHeaderSize {
		// An empty file, or one torn while its header was written: only ours
		// if what is there is a prefix of our header.
		want := logHeader()
		if string(hdr[:n]) != string(want[:n]) {
			return fmt.Errorf("eventbus: %s is not a corral event log (bad header at offset 0); refusing to touch it", l.path)
		}
		if err := l.wf.Truncate(0); err != nil {
			return fmt.Errorf("eventbus: truncate torn header of %s: %w", l.path, err)
		}
		if _, err := l.wf.WriteAt(want[:], 0); err != nil {
			return fmt.Errorf("eventbus: write header of %s: %w", l.path, err)
		}
		if err := l.wf.Sync(); err != nil {
			return fmt.Errorf("eventbus: fsync %s: %w", l.path, err)
		}
		if n > 0 {
			l.recovered = &Recovered{File: l.path, Offset: 0, BytesDropped: int64(n), Reason: "torn header", LastID: InvalidID}
			l.logger.Warn("eventbus: recovered event log", "file", l.path, "offset", 0, "bytes_dropped", n, "reason", "torn header")
		}
		l.size = logHeaderSize
		return nil
	}
	if string(hdr[:8]) != logMagic {
		return fmt.Errorf("eventbus: %s is not a corral event log (bad magic %q at offset 0); refusing to touch it", l.path, hdr[:8])
	}
	if v := binary.LittleEndian.Uint32(hdr[8:12]); v != logVersion {
		return fmt.Errorf("eventbus: %s has unsupported event log version %d at offset 8 (this build reads version %d)", l.path, v, logVersion)
	}

	off := int64(logHeaderSize)
	lastID := InvalidID
	reason := ""
	br := bufio.NewReaderSize(io.NewSectionReader(l.wf, off, fileSize-off), 1<<20)
	var rh [recHeaderSize]byte
	var payload []byte
	for off < fileSize {
		if fileSize-off < recHeaderSize {
			reason = "torn record header"
			break
		}
		if _, err := io.ReadFull(br, rh[:]); err != nil {
			return fmt.Errorf("eventbus: read event log %s at offset %d: %w", l.path, off, err)
		}
		length := int64(binary.LittleEndian.Uint32(rh[0:4]))
		crc := binary.LittleEndian.Uint32(rh[4:8])
		id := int64(binary.LittleEndian.Uint64(rh[8:16]))
		if length > maxRecordBytes {
			reason = fmt.Sprintf("record length %d exceeds limit", length)
			break
		}
		if fileSize-off-recHeaderSize < length {
			reason = "torn record (length beyond end of file)"
			break
		}
		if int64(cap(payload)) < length {
			payload = make([]byte, length)
		}
		payload = payload[:length]
		if _, err := io.ReadFull(br, payload); err != nil {
			return fmt.Errorf("eventbus: read event log %s at offset %d: %w", l.path, off, err)
		}
		c := crc32.Update(0, castagnoli, rh[8:16])
		c = crc32.Update(c, castagnoli, payload)
		if c != crc {
			reason = "checksum mismatch"
			break
		}
		if id < 0 || id <= lastID {
			reason = fmt.Sprintf("id %d does not follow id %d", id, lastID)
			break
		}
		l.ids = append(l.ids, id)
		l.offs = append(l.offs, off)
		l.lens = append(l.lens, int32(length))
		lastID = id
		off += recHeaderSize + length
	}
	l.size = off
	l.nextID = lastID + 1
	if off < fileSize {
		l.recovered = &Recovered{File: l.path, Offset: off, BytesDropped: fileSize - off, Reason: reason, LastID: lastID}
		l.logger.Warn("eventbus: recovered event log: dropped a torn or corrupt tail",
			"file", l.path, "offset", off, "bytes_dropped", fileSize-off, "reason", reason, "last_id", lastID)
		if err := l.wf.Truncate(off); err != nil {
			return fmt.Errorf("eventbus: truncate corrupt tail of %s at offset %d: %w", l.path, off, err)
		}
		if err := l.wf.Sync(); err != nil {
			return fmt.Errorf("eventbus: fsync %s after truncation: %w", l.path, err)
		}
	}
	return nil
}

func logHeader() [logHeaderSize]byte {
	var h [logHeaderSize]byte
	copy(h[:], logMagic)
	binary.LittleEndian.PutUint32(h[8:12], logVersion)
	return h
}

// frameLocked frames one record with the given id into the pending group:
// js with `"id":N` spliced in (splice) or as is. Called with l.mu held.
func (l *eventLog) frameLocked(id int64, js []byte, splice bool, ev *Event) *commitGroup {
	g := l.pending
	if g == nil {
		if g = l.spare; g != nil {
			l.spare = nil
		} else {
			g = &commitGroup{buf: make([]byte, 0, 1024)}
		}
		l.pending = g
	}
	start := len(g.buf)
	g.buf = append(g.buf, zeroRecHeader[:]...)
	if splice {
		g.buf = spliceID(g.buf, js, id)
	} else {
		g.buf = append(g.buf, js...)
	}
	frameRecord(g.buf[start:], id)
	// payload is re-sliced after the group is complete (g.buf may move).
	g.recs = append(g.recs, record{id: id, ev: ev})
	g.offs = append(g.offs, int64(start))
	return g
}

// frameRecord fills in the header of rec, a record whose payload follows
// its (zeroed) header.
func frameRecord(rec []byte, id int64) {
	binary.LittleEndian.PutUint32(rec[0:4], uint32(len(rec)-recHeaderSize))
	binary.LittleEndian.PutUint64(rec[8:16], uint64(id))
	c := crc32.Update(0, castagnoli, rec[8:])
	binary.LittleEndian.PutUint32(rec[4:8], c)
}

// appendCheckLocked refuses appends to a closed or broken log.
func (l *eventLog) appendCheckLocked() error {
	if l.closing {
		return errLogClosed
	}
	return l.broken
}

// append assigns the next id, frames js (a JSON object without "id") with
// the id spliced in and waits until the group holding it is durable. ev,
// if not nil, is the decoded event fan-out shares; its ID is set here.
func (l *eventLog) append(ctx context.Context, js []byte, ev *Event) (int64, error) {
	l.mu.Lock()
	if err := l.appendCheckLocked(); err != nil {
		l.mu.Unlock()
		return InvalidID, err
	}
	id := l.nextID
	l.nextID++
	if ev != nil {
		ev.ID = id
	}
	g := l.frameLocked(id, js, true, ev)
	lead := l.leadLocked()
	l.mu.Unlock()
	if lead {
		l.drive()
	}
	return id, l.wait(ctx, g, id)
}

// appendWithID stores payload under a caller-chosen id (import), which must
// be greater than every id in the log.
func (l *eventLog) appendWithID(ctx context.Context, id int64, payload []byte) error {
	l.mu.Lock()
	if err := l.appendCheckLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	if id < l.nextID {
		next := l.nextID
		l.mu.Unlock()
		return fmt.Errorf("eventbus: cannot store event id %d in %s: ids must increase (next free id is %d)", id, l.path, next)
	}
	l.nextID = id + 1
	g := l.frameLocked(id, payload, false, nil)
	lead := l.leadLocked()
	l.mu.Unlock()
	if lead {
		l.drive()
	}
	return l.wait(ctx, g, id)
}

// wait returns the outcome of group g. A group with a single append that
// fan-out did not retain is kept for reuse by its only owner, the caller.
func (l *eventLog) wait(ctx context.Context, g *commitGroup, id int64) error {
	l.mu.Lock()
	if g.finished {
		err := g.err
		if err == nil && len(g.recs) == 1 && g.done == nil && !g.retained && l.spare == nil && cap(g.buf) <= maxSpareGroupBytes {
			g.recs[0] = record{}
			*g = commitGroup{buf: g.buf[:0], recs: g.recs[:0], offs: g.offs[:0]}
			l.spare = g
		}
		l.mu.Unlock()
		return err
	}
	if g.done == nil {
		g.done = make(chan struct{})
	}
	done := g.done
	l.mu.Unlock()
	select {
	case <-done:
		return g.err
	case <-ctx.Done():
		return fmt.Errorf("eventbus: event %d for %s was not confirmed durable before the context ended (it may still be stored; check with Search): %w", id, l.path, ctx.Err())
	}
}

// finishLocked records a group's outcome and wakes its waiters.
func finishLocked(g *commitGroup, err error) {
	g.finished, g.err = true, err
	if g.done != nil {
		close(g.done)
	}
}

// leadLocked makes the caller the writer if none is active.
func (l *eventLog) leadLocked() bool {
	if l.writing {
		return false
	}
	l.writing = true
	return true
}

// drive writes, syncs and publishes pending groups until none is left, then
// gives up the writer role. Only the leader runs it.
//
// Leader/follower group commit, for "always" and "batch" alike: the leader
// writes and syncs at once what is pending; appends that arrive while it
// syncs are framed into the next group and share the next write(2) and
// sync. A lone sequential writer therefore never waits for a timer (one
// write and one fdatasync per append, like a raw log), and concurrent
// writers batch exactly what piles up during one sync.
func (l *eventLog) drive() {
	for {
		l.mu.Lock()
		g := l.pending
		l.pending = nil
		if g == nil {
			l.writing = false
			l.idle.Broadcast()
			l.mu.Unlock()
			return
		}
		start := l.size
		l.mu.Unlock()
		if err := l.write(g, start); err != nil {
			l.fail(g, err)
			continue
		}
		if l.replica != nil {
			if err := l.replicate(g); err != nil {
				l.fail(g, err)
				continue
			}
		}
		if l.policy != SyncNever {
			if err := l.sync(g); err != nil {
				l.fail(g, err)
				continue
			}
		}
		l.publish(g, start)
	}
}

// sync makes group g, written to the file, durable: through the store-wide
// write-ahead log (g's bytes are appended to it, and one fdatasync there
// covers every session in the batch), through the store-wide syncer (one syncfs for every session that wrote during the previous sync,
// or this file's fdatasync when it wrote alone), or by fdatasyncing the
// file.
func (l *eventLog) sync(g *commitGroup) error {
	if l.wal != nil {
		if err := l.wal.commit(walKindRecords, l.sid, g.buf); err != nil {
			return fmt.Errorf("eventbus: make writes to %s durable: %w", l.path, err)
		}
		return nil
	}
	if l.syncer != nil {
		if err := l.syncer.wait(l.syncFile); err != nil {
			return fmt.Errorf("eventbus: make writes to %s durable: %w", l.path, err)
		}
		return nil
	}
	return l.syncFile()
}

// fdatasync syncs the file's data and size (which an append changes), not
// the timestamps fsync would also write back.
func (l *eventLog) fdatasync() error {
	if err := unix.Fdatasync(int(l.wf.Fd())); err != nil {
		return fmt.Errorf("eventbus: fdatasync %s: %w", l.path, err)
	}
	l.syncs.Add(1)
	return nil
}

// write writes a group at offset at with one write(2).
func (l *eventLog) write(g *commitGroup, at int64) error {
	n, err := l.wf.Write(g.buf)
	if err == nil && n != len(g.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("eventbus: write %d bytes to %s at offset %d: %w", len(g.buf), l.path, at, err)
	}
	return nil
}

// fail rejects a group that could not be made durable, cuts the file back
// to its last durable size (so earlier events stay intact and no half
// record remains) and rewinds id assignment so ids stay gap-free. Appends
// framed meanwhile are failed too, since their ids follow the failed ones.
func (l *eventLog) fail(g *commitGroup, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if terr := l.wf.Truncate(l.size); terr != nil {
		l.broken = fmt.Errorf("eventbus: %s is unusable after a failed write (%v) and a failed truncate back to %d bytes (%v); reopen the session", l.path, err, l.size, terr)
	} else if _, serr := l.wf.Seek(l.size, io.SeekStart); serr != nil {
		l.broken = fmt.Errorf("eventbus: %s is unusable after a failed write (%v): seek: %v; reopen the session", l.path, err, serr)
	}
	if len(l.ids) > 0 {
		l.nextID = l.ids[len(l.ids)-1] + 1
	} else {
		l.nextID = 0
	}
	l.logger.Error("eventbus: append failed; earlier events are intact", "file", l.path, "err", err)
	finishLocked(g, err)
	if p := l.pending; p != nil {
		l.pending = nil
		finishLocked(p, err)
	}
}

// publish makes group g, written at offset start, visible to readers, fans
// it out and then acknowledges it, in id order.
func (l *eventLog) publish(g *commitGroup, start int64) {
	l.mu.Lock()
	for i := range g.recs {
		off := g.offs[i]
		plen := int64(binary.LittleEndian.Uint32(g.buf[off:]))
		g.recs[i].payload = g.buf[off+recHeaderSize : off+recHeaderSize+plen : off+recHeaderSize+plen]
		l.ids = append(l.ids, g.recs[i].id)
		l.offs = append(l.offs, start+off)
		l.lens = append(l.lens, int32(plen))
	}
	l.size = start + int64(len(g.buf))
	l.mu.Unlock()
	retained := l.onDurable != nil && l.onDurable(g.recs)
	l.mu.Lock()
	g.retained = retained
	finishLocked(g, nil)
	l.mu.Unlock()
}

// lastID returns the id of the last durable event, InvalidID if none.
func (l *eventLog) lastID() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ids) == 0 {
		return InvalidID
	}
	return l.ids[len(l.ids)-1]
}

// count returns the number of durable events.
func (l *eventLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

// span is a run of consecutive durable records [lo, hi) in index order.
type span struct {
	ids  []int64
	offs []int64
	lens []int32
}

// spanLocked returns the durable records with from <= id <= to.
func (l *eventLog) span(from, to int64) span {
	l.mu.Lock()
	defer l.mu.Unlock()
	lo := sort.Search(len(l.ids), func(i int) bool { return l.ids[i] >= from })
	hi := sort.Search(len(l.ids), func(i int) bool { return l.ids[i] > to })
	if hi < lo {
		hi = lo
	}
	// The index slices are only appended to, so these sub-slices stay valid.
	return span{ids: l.ids[lo:hi:hi], offs: l.offs[lo:hi:hi], lens: l.lens[lo:hi:hi]}
}

// readChunk is how many bytes a read pulls per ReadAt.
const readChunk = 1 << 20

// read calls fn for each durable record with from <= id <= to in ascending
// order (descending if reverse), until fn returns false. Payload slices stay
// valid after fn returns (each chunk is a fresh buffer) and must not be
// modified.
func (l *eventLog) read(from, to int64, reverse bool, fn func(id int64, payload []byte) bool) error {
	s := l.span(from, to)
	n := len(s.ids)
	if n == 0 {
		return nil
	}
	if reverse {
		// Reverse reads are for search with small limits; read record by
		// record from the end.
		for i := n - 1; i >= 0; i-- {
			buf := make([]byte, recHeaderSize+int64(s.lens[i]))
			if err := l.readAt(buf, s.offs[i]); err != nil {
				return err
			}
			p, err := l.check(buf, s.ids[i], s.offs[i])
			if err != nil {
				return err
			}
			if !fn(s.ids[i], p) {
				return nil
			}
		}
		return nil
	}
	i := 0
	for i < n {
		// Take as many consecutive records as fit into one chunk (at least one).
		start := s.offs[i]
		j := i
		end := start
		for j < n && (j == i || s.offs[j]+recHeaderSize+int64(s.lens[j])-start <= readChunk) {
			end = s.offs[j] + recHeaderSize + int64(s.lens[j])
			j++
		}
		buf := make([]byte, end-start)
		if err := l.readAt(buf, start); err != nil {
			return err
		}
		for k := i; k < j; k++ {
			rel := s.offs[k] - start
			p, err := l.check(buf[rel:rel+recHeaderSize+int64(s.lens[k])], s.ids[k], s.offs[k])
			if err != nil {
				return err
			}
			if !fn(s.ids[k], p) {
				return nil
			}
		}
		i = j
	}
	return nil
}

func (l *eventLog) readAt(buf []byte, off int64) error {
	if _, err := l.rf.ReadAt(buf, off); err != nil {
		return fmt.Errorf("eventbus: read %d bytes from %s at offset %d: %w", len(buf), l.path, off, err)
	}
	return nil
}

// check verifies a framed record read back from disk.
func (l *eventLog) check(rec []byte, id, off int64) ([]byte, error) {
	payload := rec[recHeaderSize:]
	gotID := int64(binary.LittleEndian.Uint64(rec[8:16]))
	c := crc32.Update(0, castagnoli, rec[8:16])
	c = crc32.Update(c, castagnoli, payload)
	if gotID != id || c != binary.LittleEndian.Uint32(rec[4:8]) {
		return nil, fmt.Errorf("eventbus: event %d in %s at offset %d changed on disk since it was written (checksum mismatch); the file is damaged", id, l.path, off)
	}
	return payload[:len(payload):len(payload)], nil
}

// close waits for the active writer to finish (it flushes everything that
// is pending), refuses further appends and closes the files.
func (l *eventLog) close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true
	for l.writing {
		l.idle.Wait()
	}
	l.mu.Unlock()
	err := l.wf.Sync()
	if cerr := l.rf.Close(); err == nil {
		err = cerr
	}
	if cerr := l.wf.Close(); err == nil {
		err = cerr // also releases the flock
	}
	if err != nil {
		return fmt.Errorf("eventbus: close event log %s: %w", l.path, err)
	}
	return nil
}
