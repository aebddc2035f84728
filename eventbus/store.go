package eventbus

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// logExt names a session's event log file: <store_dir>/<session id>.events.
const logExt = ".events"

// Store manages a directory of session event logs, one file per session.
type Store struct {
	dir    string
	cfg    Config
	logger *slog.Logger
	// syncer batches syncs across sessions (sync_method "syncfs"); nil for
	// "fsync" and for sync "never".
	syncer *storeSyncer

	mu   sync.Mutex
	open map[string]*Stream
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

// OpenStore validates cfg and creates cfg's store directory if needed.
func OpenStore(cfg Config, opts ...StoreOption) (*Store, error) {
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
	s := &Store{dir: dir, cfg: cfg, logger: slog.Default(), open: map[string]*Stream{}}
	for _, o := range opts {
		o(s)
	}
	if cfg.SyncMethod == SyncMethodSyncfs && cfg.Sync != SyncNever {
		if s.syncer, err = newStoreSyncer(dir, cfg.Sync, cfg.SyncMaxDelay); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// syncCount returns the sync calls made so far: store-wide syncfs calls plus
// per-file fsyncs of the given streams (tests, benchmarks).
func (st *Store) syncCount(streams ...*Stream) int64 {
	var n int64
	st.mu.Lock()
	if st.syncer != nil {
		n = st.syncer.syncs.Load()
	}
	st.mu.Unlock()
	for _, s := range streams {
		n += s.log.syncs.Load()
	}
	return n
}

// Dir returns the store's directory.
func (st *Store) Dir() string { return st.dir }

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

// Open opens (creating if needed) the stream of session sid. A torn or
// corrupt tail left by a crash is truncated and reported by
// Stream.Recovered. A session can be open once at a time; Close the stream
// to open it again.
func (st *Store) Open(sid string) (*Stream, error) {
	if err := ValidateSessionID(sid); err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.open == nil {
		return nil, errors.New("eventbus: store is closed")
	}
	if _, ok := st.open[sid]; ok {
		return nil, fmt.Errorf("eventbus: session %q is already open in this store; share its *Stream or Close it first", sid)
	}
	s := &Stream{sid: sid, cfg: st.cfg, logger: st.logger, all: map[*Subscription]struct{}{}}
	l, err := openLog(st.path(sid), st.cfg.Sync, st.cfg.SyncMaxDelay, st.syncer, st.logger.With("session", sid), s.deliver)
	if err != nil {
		return nil, err
	}
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

// Sessions lists the ids of the sessions stored in the directory, sorted.
func (st *Store) Sessions() ([]string, error) {
	ents, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, fmt.Errorf("eventbus: list sessions in %s: %w", st.dir, err)
	}
	var ids []string
	for _, e := range ents {
		name := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(name, logExt) {
			id := strings.TrimSuffix(name, logExt)
			if ValidateSessionID(id) == nil {
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Delete removes a session's events. The session must not be open.
func (st *Store) Delete(sid string) error {
	if err := ValidateSessionID(sid); err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.open[sid]; ok {
		return fmt.Errorf("eventbus: cannot delete session %q while it is open; Close its stream first", sid)
	}
	if err := os.Remove(st.path(sid)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("eventbus: delete session %q: no such session in %s", sid, st.dir)
		}
		return fmt.Errorf("eventbus: delete session %q: %w", sid, err)
	}
	return nil
}

// Close closes every open stream of the store.
func (st *Store) Close() error {
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
	st.mu.Unlock()
	return errors.Join(errs...)
}
