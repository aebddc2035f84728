package eventbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The store-wide write-ahead log (sync_method = "wal").
//
// Every session appends its commit group to its own file with write(2), as
// before, but does not sync it: it hands the same framed bytes to the WAL,
// whose committer appends the groups of every session that arrived together
// as one write(2) to the current segment and makes them durable with one
// fdatasync (leader/follower group commit, as for a session file). So a
// batch costs one sync whatever the number of sessions, and the session
// files, which readers use (per-session index, replay, search, export),
// are written back by the kernel lazily.
//
// Checkpoints: when a segment is full the committer starts a new one and a
// background checkpoint makes every session file durable with one
// syncfs(2) (each record in the full segment was written to its session
// file before it entered the WAL) and then deletes the segment. Closing the
// store checkpoints everything, so a cleanly closed store has no segment.
//
// Recovery (OpenStore, whatever the sync settings): every segment is read in
// order and each session's records whose ids its file does not have (lost
// with the page cache in a machine crash, or cut off with a torn or corrupt
// tail) are appended to the file and fsynced; then the segments are
// deleted. A torn or corrupt segment tail is dropped and reported
// (Store.Recovered); nothing acknowledged is before it, since an entry is
// acknowledged only once its fdatasync returned. A segment without our
// magic is refused and never modified. Deleting a session writes a
// tombstone first, so recovery never brings a deleted session back.
//
// Compaction: the log only ever holds what was acknowledged since the last
// checkpoint, never a session's history, so nothing needs compacting: a
// stopped session's file is synced when its stream closes and its entries
// leave with their segment at the next checkpoint, and so do a deleted
// session's (its tombstone keeps recovery from replaying them meanwhile).
//
// Why session files are still written on the append path (without a sync)
// rather than lazily from the log: a full disk then fails the append that
// does not fit, cleanly, instead of a later write-back of events already
// acknowledged; and readers never look in two places. The cost is one
// write(2) per commit group per session (see BENCHMARKS.md).
//
// Segment format: <store_dir>/wal/<16 hex digits>.wal:
//
//	header : magic "CRLWALSG" (8) | version uint32 LE | flags uint32 LE (0)
//	entry* : length uint32 LE | crc uint32 LE | kind uint8 | sid length uint8 | sid | body
//
// length counts the bytes after crc; crc is CRC32C over them. Kind 1: body
// is one or more framed session-log records (see store_log.go); kind 2:
// the session was deleted (empty body).
const (
	walDirName       = "wal"
	walExt           = ".wal"
	walMagic         = "CRLWALSG"
	walVersion       = 1
	walHeaderSize    = 16
	walEntryHeader   = 10
	walKindRecords   = 1
	walKindDelete    = 2
	walSegmentBytes  = 64 << 20
	walMaxEntryBytes = maxRecordBytes
)

// wal is the store-wide write-ahead log's committer.
type wal struct {
	dir      string   // <store_dir>/wal
	storeDir *os.File // syncfs target for checkpoints
	logger   *slog.Logger
	segBytes int64 // rotate when a segment reaches this size
	// syncSeg makes a segment's writes durable: fdatasync unless a test
	// replaced it (before the first commit).
	syncSeg func(*os.File) error

	syncs atomic.Int64 // fdatasyncs of segments (tests, benchmarks)

	mu      sync.Mutex
	cur     *walBatch // batch collecting entries, nil if none
	leading bool      // a committer is acting as leader
	broken  error     // set after a failed sync: nothing more is acknowledged
	retired []string  // full segments waiting for a checkpoint
	freeBuf []byte    // a written batch's buffer, reused by the next batch

	// Owned by the leader (and by close, once no leader can run).
	seg     *os.File
	segPath string
	segSeq  uint64
	segSize int64

	ckptMu sync.Mutex // serialises checkpoints
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// walBatch is the set of entries written and synced together.
type walBatch struct {
	buf     []byte
	done    chan struct{} // closed when the batch is durable or failed; err is then set
	promote chan struct{} // one receive hands leadership of this batch over
	err     error
}

// openWAL starts the committer on a new segment after sequence number last.
func openWAL(storeDir string, last uint64, logger *slog.Logger) (*wal, error) {
	if err := checkSyncfsKernel(); err != nil {
		return nil, fmt.Errorf("%w (sync_method = \"wal\" checkpoints with syncfs)", err)
	}
	d, err := os.Open(storeDir)
	if err != nil {
		return nil, fmt.Errorf("eventbus: open store_dir %s for checkpoints: %w", storeDir, err)
	}
	w := &wal{
		dir: filepath.Join(storeDir, walDirName), storeDir: d, logger: logger, segBytes: walSegmentBytes,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		syncSeg: func(f *os.File) error { return unix.Fdatasync(int(f.Fd())) },
	}
	if err := w.newSegment(last + 1); err != nil {
		d.Close()
		return nil, err
	}
	go w.checkpointLoop()
	return w, nil
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, walExt) }

// newSegment creates segment seq (header written and synced, directory
// synced) and makes it the current one.
func (w *wal) newSegment(seq uint64) error {
	path := filepath.Join(w.dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("eventbus: create write-ahead log segment %s: %w", path, err)
	}
	var h [walHeaderSize]byte
	copy(h[:], walMagic)
	binary.LittleEndian.PutUint32(h[8:12], walVersion)
	if _, err := f.WriteAt(h[:], 0); err == nil {
		err = unix.Fdatasync(int(f.Fd()))
	}
	if err == nil {
		err = syncDir(w.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("eventbus: initialise write-ahead log segment %s: %w", path, err)
	}
	w.seg, w.segPath, w.segSeq, w.segSize = f, path, seq, walHeaderSize
	return nil
}

// appendWALEntry appends one entry to dst.
func appendWALEntry(dst []byte, kind byte, sid string, body []byte) []byte {
	start := len(dst)
	dst = append(dst, zeroRecHeader[:8]...)
	dst = append(dst, kind, byte(len(sid)))
	dst = append(dst, sid...)
	dst = append(dst, body...)
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start-8))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Update(0, castagnoli, dst[start+8:]))
	return dst
}

// commit appends one entry and returns once it is durable (or failed). The
// first caller that finds no leader leads: it writes and syncs at once; the
// entries that arrive meanwhile form the next batch, whose first waiter is
// promoted to lead it when the current sync returns.
func (w *wal) commit(kind byte, sid string, body []byte) error {
	w.mu.Lock()
	if w.broken != nil {
		err := w.broken
		w.mu.Unlock()
		return err
	}
	r := w.cur
	if r == nil {
		r = &walBatch{done: make(chan struct{}), promote: make(chan struct{}, 1), buf: w.freeBuf[:0]}
		w.freeBuf = nil
		w.cur = r
	}
	r.buf = appendWALEntry(r.buf, kind, sid, body)
	lead := !w.leading
	w.leading = true
	w.mu.Unlock()
	if !lead {
		select {
		case <-r.done:
			return r.err
		case <-r.promote:
		}
	}
	w.lead()
	<-r.done
	return r.err
}

// lead writes and syncs the current batch, releases its waiters and hands
// leadership to the next batch, if any.
func (w *wal) lead() {
	w.mu.Lock()
	r := w.cur
	w.cur = nil
	broken := w.broken // a batch collected before the log broke fails too
	w.mu.Unlock()
	if r.err = broken; broken == nil {
		r.err = w.write(r.buf)
	}
	w.mu.Lock()
	if cap(r.buf) <= 4<<20 {
		w.freeBuf = r.buf // written (or failed): nothing refers to it now
	}
	r.buf = nil
	close(r.done)
	if next := w.cur; next != nil {
		next.promote <- struct{}{} // buffered 1; one promotion per batch
	} else {
		w.leading = false
	}
	w.mu.Unlock()
}

// write appends buf to the current segment and fdatasyncs it. On failure
// the segment is cut back, so no entry of a failed batch can come back in
// recovery; after a failed sync the WAL refuses further commits (the
// kernel may have dropped the dirty pages, so the file cannot be trusted).
func (w *wal) write(buf []byte) error {
	at := w.segSize
	n, err := w.seg.WriteAt(buf, at)
	if err == nil && n != len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		err = fmt.Errorf("eventbus: write %d bytes to write-ahead log segment %s at offset %d: %w", len(buf), w.segPath, at, err)
		if terr := w.seg.Truncate(at); terr != nil {
			w.setBroken(fmt.Errorf("%v; and cutting the segment back failed: %v; reopen the store", err, terr))
		}
		return err
	}
	if err := w.syncSeg(w.seg); err != nil {
		err = fmt.Errorf("eventbus: fdatasync write-ahead log segment %s: %w", w.segPath, err)
		w.seg.Truncate(at)
		w.setBroken(fmt.Errorf("%w; the write-ahead log refuses appends until the store is reopened", err))
		return err
	}
	w.syncs.Add(1)
	w.segSize += int64(len(buf))
	if w.segSize >= w.segBytes {
		w.rotate()
	}
	return nil
}

func (w *wal) setBroken(err error) {
	w.mu.Lock()
	w.broken = err
	w.mu.Unlock()
	w.logger.Error("eventbus: write-ahead log failed", "err", err)
}

// rotate starts a new segment and queues the full one for a checkpoint. A
// failure only delays rotation: the current segment keeps growing.
func (w *wal) rotate() {
	old, oldPath := w.seg, w.segPath
	if err := w.newSegment(w.segSeq + 1); err != nil {
		w.logger.Error("eventbus: rotate the write-ahead log (will retry)", "err", err)
		return
	}
	old.Close()
	w.mu.Lock()
	w.retired = append(w.retired, oldPath)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *wal) checkpointLoop() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
			if err := w.checkpoint(); err != nil {
				w.logger.Error("eventbus: write-ahead log checkpoint failed (will retry at the next rotation)", "err", err)
			}
		}
	}
}

// checkpoint makes the session files durable and deletes the retired
// segments, whose records they all hold.
func (w *wal) checkpoint() error {
	w.ckptMu.Lock()
	defer w.ckptMu.Unlock()
	w.mu.Lock()
	old := w.retired
	w.retired = nil
	w.mu.Unlock()
	if len(old) == 0 {
		return nil
	}
	if err := unix.Syncfs(int(w.storeDir.Fd())); err != nil {
		w.mu.Lock()
		w.retired = append(old, w.retired...)
		w.mu.Unlock()
		return fmt.Errorf("eventbus: checkpoint: syncfs on the filesystem of %s: %w", w.storeDir.Name(), err)
	}
	// Oldest first, each removal made durable before the next: a crash
	// must never leave an older segment (a deleted session's entries)
	// without the newer one holding its tombstone.
	for i, p := range old {
		err := os.Remove(p)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			err = syncDir(w.dir)
		}
		if err != nil {
			w.mu.Lock()
			w.retired = append(old[i:], w.retired...)
			w.mu.Unlock()
			return fmt.Errorf("eventbus: checkpoint: remove segment %s: %w", p, err)
		}
	}
	return nil
}

// close stops the checkpointer and, once every stream is closed (their
// files are synced), checkpoints everything, the current segment included.
func (w *wal) close() error {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	w.retired = append(w.retired, w.segPath)
	w.mu.Unlock()
	err := w.seg.Close()
	if cerr := w.checkpoint(); err == nil {
		err = cerr
	}
	if cerr := w.storeDir.Close(); err == nil {
		err = cerr
	}
	return err
}

// walSegment is a segment file found on open.
type walSegment struct {
	seq  uint64
	path string
}

// listSegments returns the segments in dir in sequence order, refusing
// files that claim to be segments but are not ours.
func listSegments(dir string) ([]walSegment, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eventbus: list write-ahead log %s: %w", dir, err)
	}
	var segs []walSegment
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), walExt)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(name, 16, 64)
		if err != nil || len(name) != 16 || !e.Type().IsRegular() {
			return nil, fmt.Errorf("eventbus: %s is not a corral write-ahead log segment (segments are named <16 hex digits>%s); refusing to open the store: move it out of %s", filepath.Join(dir, e.Name()), walExt, dir)
		}
		segs = append(segs, walSegment{seq: seq, path: filepath.Join(dir, e.Name())})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].seq < segs[j].seq })
	return segs, nil
}
