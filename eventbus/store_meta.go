package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// metaExt names a session's metadata record: <store_dir>/<sid>.meta.json.
const metaExt = ".meta.json"

func (st *Store) metaPath(sid string) string { return filepath.Join(st.dir, sid+metaExt) }

// SaveMeta replaces session sid's metadata record with data, which must be
// one JSON value: the session's state that is not events (its request,
// tokens, environment, ...), so that it survives a crash of the process.
// The record is written to <store_dir>/<sid>.meta.json atomically (a
// temporary file, fsynced, renamed over the record, then the directory
// fsynced; without the fsyncs under sync = "never") with mode 0600, as it
// may hold secrets: after a crash LoadMeta
// returns either the previous record or this one, never a mix. The session
// need not be open nor have events. Concurrent SaveMeta calls of one session
// leave one of the records whole. A replicated store (WithReplica) stores
// the record in the replica first and fails, changing nothing here, when
// the replica does.
func (st *Store) SaveMeta(sid string, data []byte) error {
	if err := ValidateSessionID(sid); err != nil {
		return err
	}
	if !json.Valid(data) {
		return fmt.Errorf("eventbus: save metadata of session %q: the record is not valid JSON (%d bytes); pass one encoded JSON value", sid, len(data))
	}
	if err := st.replicaCall(context.Background(), "save metadata", sid, func(ctx context.Context, r Replica) error {
		return r.SaveMeta(ctx, sid, data)
	}); err != nil {
		return err
	}
	return st.saveMetaLocal(sid, data)
}

// saveMetaLocal writes session sid's metadata record to the store
// directory only.
func (st *Store) saveMetaLocal(sid string, data []byte) error {
	st.life.RLock()
	defer st.life.RUnlock()
	if st.closed {
		return errStoreClosed
	}
	// With sync = "never" the record, like the events, survives a crash of
	// the process (the rename is atomic) but not of the machine.
	if err := writeFileAtomic(st.dir, sid+metaExt, data, 0o600, st.cfg.Sync != SyncNever); err != nil {
		return fmt.Errorf("eventbus: save metadata of session %q in %s: %w", sid, st.dir, err)
	}
	return nil
}

// LoadMeta returns session sid's metadata record as SaveMeta last wrote it.
// When the session has none the error wraps fs.ErrNotExist
// (errors.Is(err, fs.ErrNotExist)).
func (st *Store) LoadMeta(sid string) ([]byte, error) {
	if err := ValidateSessionID(sid); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(st.metaPath(sid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("eventbus: session %q has no metadata record in %s: %w", sid, st.dir, err)
		}
		return nil, fmt.Errorf("eventbus: load metadata of session %q: %w", sid, err)
	}
	return b, nil
}

func jsonValid(b []byte) bool { return json.Valid(b) }
