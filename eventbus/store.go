package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// logExt names a session's event log file: <store_dir>/<session id>.events.
const logExt = ".events"

// Store manages a directory of session event logs, one file per session.
type Store struct {
	dir    string
	cfg    Config
	logger *slog.Logger
	// syncer batches syncs across sessions (sync_method "syncfs"); nil for
	// the other methods and for sync "never".
	syncer *storeSyncer
	// wal is the store-wide write-ahead log (sync_method "wal"); nil for
	// the other methods and for sync "never".
	wal *wal
	// recovered lists what opening the store had to drop from the
	// write-ahead log; sessRecovered holds, per session not yet opened,
	// what replaying the log into its file had to drop from the file.
	recovered     []*Recovered
	sessRecovered map[string]*Recovered

	id       string   // STORE_ID
	instance string   // recorded in LOCK
	lock     *os.File // holds the directory's flock until Close

	// life is held for reading by operations that write the directory
	// outside a stream (SaveMeta, Delete) and for writing by Close, so
	// nothing is written after the lock is released.
	life   sync.RWMutex
	closed bool

	mu   sync.Mutex
	open map[string]*Stream

	// replica, if set, receives every commit group and metadata record
	// before it is acknowledged (WithReplica, cluster mode).
	replica Replica
}

// StoreOption configures OpenStore.
type StoreOption func(*Store)

// WithLogger sets the logger for recovery warnings and write errors
// (default slog.Default()).
func WithLogger(l *slog.Logger) StoreOption {
	return func(s *Store) {
		if l != nil {
			s.logger = l
		}
	}
}

// OpenStore validates cfg, creates cfg's store directory if needed and takes
// the directory's lock (see ErrStoreLocked): while the Store is open no
// other Store, in this process or another, can open the directory. Close
// releases it. It then reads (creating on first use) the store's id and
// removes temporary files a crash left behind.
func OpenStore(cfg Config, opts ...StoreOption) (st *Store, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := cfg.ResolvedStoreDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("eventbus: create store_dir %s: %w", dir, err)
	}
	s := &Store{dir: dir, cfg: cfg, logger: slog.Default(), open: map[string]*Stream{}, sessRecovered: map[string]*Recovered{}}
	for _, o := range opts {
		o(s)
	}
	if s.instance == "" {
		if s.instance, err = randomID(); err != nil {
			return nil, err
		}
	}
	// Nothing in the directory is touched before the lock is held.
	if s.lock, err = lockStore(dir, currentHolder(s.instance, time.Now())); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlockStore(s.lock)
		}
	}()
	if s.id, err = loadStoreID(dir); err != nil {
		return nil, err
	}
	if err := removeTempFiles(dir); err != nil {
		return nil, err
	}
	// Whatever the settings now, a write-ahead log left by an earlier run
	// holds acknowledged events its session files may lack.
	lastSeg, err := s.recoverWAL()
	if err != nil {
		return nil, err
	}
	if cfg.Sync != SyncNever {
		switch cfg.SyncMethod {
		case SyncMethodSyncfs:
			s.syncer, err = newStoreSyncer(dir)
		case SyncMethodWAL:
			s.noteFirstWALOpen()
			if err = os.MkdirAll(filepath.Join(dir, walDirName), 0o755); err == nil {
				s.wal, err = openWAL(dir, lastSeg, s.logger)
			} else {
				err = fmt.Errorf("eventbus: create the write-ahead log directory: %w", err)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// noteFirstWALOpen logs, once per store, that a store written before the
// write-ahead log existed is used as it is: its session files are the
// format this build reads and writes, so nothing needs migrating.
func (st *Store) noteFirstWALOpen() {
	if _, err := os.Stat(filepath.Join(st.dir, walDirName)); !errors.Is(err, os.ErrNotExist) {
		return
	}
	if logs, _ := filepath.Glob(filepath.Join(st.dir, "*"+logExt)); len(logs) > 0 {
		st.logger.Info("eventbus: first open of this store with the write-ahead log: its session files are used as they are (no migration); appends are now also logged in wal/",
			"store_dir", st.dir, "session_files", len(logs))
	}
}

// syncCount returns the sync calls made so far: store-wide syncfs calls plus
// per-file fsyncs of the given streams (tests, benchmarks).
func (st *Store) syncCount(streams ...*Stream) int64 {
	var n int64
	st.mu.Lock()
	if st.syncer != nil {
		n = st.syncer.syncs.Load()
	}
	if st.wal != nil {
		n += st.wal.syncs.Load()
	}
	st.mu.Unlock()
	for _, s := range streams {
		n += s.log.syncs.Load()
	}
	return n
}

// Recovered lists what opening the store had to drop from its write-ahead
// log: torn or corrupt segment tails (never an acknowledged event: an
// entry is acknowledged only once synced, and a tail is only torn by a
// crash while it was written). Nil if the log was intact or absent. What a
// session file itself lost is reported by its Stream.Recovered.
func (st *Store) Recovered() []*Recovered { return st.recovered }

// Dir returns the store's directory.
func (st *Store) Dir() string { return st.dir }

// LockPath returns the path of the lock file the Store holds:
// <store_dir>/LOCK.
func (st *Store) LockPath() string { return filepath.Join(st.dir, lockFile) }

// ID returns the store's id: a random id created once in
// <store_dir>/STORE_ID and the same on every open of the directory.
func (st *Store) ID() string { return st.id }

// InstanceID returns the id this Store recorded in LOCK (WithInstanceID, or
// random per OpenStore).
func (st *Store) InstanceID() string { return st.instance }

// ValidateSessionID reports whether id can name a session: 1-200 characters
// from [A-Za-z0-9._-], not starting with '.' (it becomes a file name).
func ValidateSessionID(id string) error {
	if id == "" || len(id) > 200 {
		return fmt.Errorf("eventbus: session id %q must be 1 to 200 characters", id)
	}
	if id[0] == '.' {
		return fmt.Errorf("eventbus: session id %q must not start with '.'", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("eventbus: session id %q has character %q at %d; use only letters, digits, '.', '_' and '-'", id, c, i)
		}
	}
	return nil
}

func (st *Store) path(sid string) string { return filepath.Join(st.dir, sid+logExt) }

// LastWrite is when session sid's events were last written (the log
// file's modification time): the session's last activity, without reading
// its events. Zero when it has none.
func (st *Store) LastWrite(sid string) time.Time {
	if ValidateSessionID(sid) != nil {
		return time.Time{}
	}
	fi, err := os.Stat(st.path(sid))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime().UTC()
}

// Open opens (creating if needed) the stream of session sid. A torn or
// corrupt tail left by a crash is truncated and reported by
// Stream.Recovered. A session can be open once at a time; Close the stream
// to open it again.
func (st *Store) Open(sid string) (*Stream, error) {
	return st.openStream(sid, true)
}

// openStream opens session sid; replicate false keeps its appends local
// (Hydrate stores what came from the replica).
func (st *Store) openStream(sid string, replicate bool) (*Stream, error) {
	if err := ValidateSessionID(sid); err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.open == nil {
		return nil, errStoreClosed
	}
	if _, ok := st.open[sid]; ok {
		return nil, fmt.Errorf("eventbus: session %q is already open in this store; share its *Stream or Close it first", sid)
	}
	s := &Stream{sid: sid, cfg: st.cfg, logger: st.logger, all: map[*Subscription]struct{}{}}
	l, err := openLog(st.path(sid), st.cfg.Sync, st.syncer, st.logger.With("session", sid), s.deliver)
	if err != nil {
		return nil, err
	}
	l.wal, l.sid = st.wal, sid
	if replicate {
		l.replica = st.replica
	}
	if l.recovered == nil {
		// Dropped from the file when the store replayed its log into it.
		l.recovered = st.sessRecovered[sid]
	}
	delete(st.sessRecovered, sid)
	s.log = l
	s.durableNext = l.nextID
	s.release = func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.open != nil && st.open[sid] == s {
			delete(st.open, sid)
		}
	}
	st.open[sid] = s
	return s, nil
}

// Sessions lists the ids of the sessions stored in the directory, sorted:
// every session with an event log or a metadata record (SaveMeta), once.
// The store's own files (LOCK, STORE_ID, temporary files) and files that
// name no valid session id are not sessions.
func (st *Store) Sessions() ([]string, error) {
	ents, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, fmt.Errorf("eventbus: list sessions in %s: %w", st.dir, err)
	}
	seen := map[string]bool{}
	var ids []string
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		id, ok := sessionOfFile(e.Name())
		if ok && !seen[id] && ValidateSessionID(id) == nil {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// sessionOfFile returns the session a file of the store directory belongs
// to: <sid>.events or <sid>.meta.json.
func sessionOfFile(name string) (string, bool) {
	for _, ext := range []string{logExt, metaExt} {
		if id, ok := strings.CutSuffix(name, ext); ok {
			return id, true
		}
	}
	return "", false
}

// Delete removes a session's events and its metadata record. The session
// must not be open. A replicated store (WithReplica) deletes the replica's
// copy first, so a failed call leaves the session whole where it was.
func (st *Store) Delete(sid string) error {
	if err := ValidateSessionID(sid); err != nil {
		return err
	}
	if st.replica != nil {
		st.mu.Lock()
		_, open := st.open[sid]
		st.mu.Unlock()
		if open {
			return fmt.Errorf("eventbus: cannot delete session %q while it is open; Close its stream first", sid)
		}
		if err := st.replicaCall(context.Background(), "delete", sid, func(ctx context.Context, r Replica) error {
			return r.Delete(ctx, sid)
		}); err != nil {
			return err
		}
	}
	return st.deleteLocal(sid, true)
}

// errStoreClosed is returned by operations on a closed Store.
var errStoreClosed = errors.New("eventbus: store is closed")

// Close closes every open stream of the store and releases the directory's
// lock. Closing a closed Store does nothing.
func (st *Store) Close() error {
	st.life.Lock()
	defer st.life.Unlock()
	if st.closed {
		return nil
	}
	st.closed = true
	st.mu.Lock()
	streams := make([]*Stream, 0, len(st.open))
	for _, s := range st.open {
		streams = append(streams, s)
	}
	st.mu.Unlock()
	var errs []error
	for _, s := range streams {
		errs = append(errs, s.Close())
	}
	st.mu.Lock()
	st.open = nil
	if st.syncer != nil {
		// Every stream is closed, so no writer waits on the syncer any more.
		errs = append(errs, st.syncer.close())
		st.syncer = nil
	}
	if st.wal != nil {
		// Every stream is closed and its file synced: the log is checkpointed
		// away entirely.
		errs = append(errs, st.wal.close())
		st.wal = nil
	}
	st.mu.Unlock()
	errs = append(errs, unlockStore(st.lock))
	return errors.Join(errs...)
}
