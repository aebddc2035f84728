package eventbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
)

// replicaTimeout bounds one call to a Replica. The Replica bounds its own
// round trips more tightly (eventbus/jetstream: a few seconds); this is the
// backstop that keeps a hung replica from holding a session's writer forever.
const replicaTimeout = 30 * time.Second

// replicate hands group g, written to the file but not yet synced, to the
// replica and waits for it to be stored on a quorum.
//
// Why before the local sync rather than after: with sync_method "wal" the
// sync appends the group to the write-ahead log, and recovery replays what
// the log holds. A group the replica refused must not be in the log, or a
// crash would bring it back (and, ids being rewound by fail, over the
// events later acknowledged under the same ids). A group the replica took
// but the local sync then failed is not acknowledged either; its ids are
// reused by the next group, which the replica stores after it, and readers
// of the replica take the later record for an id (eventbus/jetstream's Load).
// The caller is acknowledged only once both are durable.
func (l *eventLog) replicate(g *commitGroup) error {
	recs := make([]ReplicaRecord, len(g.recs))
	for i := range g.recs {
		off := g.offs[i]
		plen := int64(binary.LittleEndian.Uint32(g.buf[off:]))
		recs[i] = ReplicaRecord{ID: g.recs[i].id, JSON: g.buf[off+recHeaderSize : off+recHeaderSize+plen : off+recHeaderSize+plen]}
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicaTimeout)
	defer cancel()
	err := l.replica.AppendRecords(ctx, l.sid, recs)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("eventbus: session %q: events %d-%d were not stored by the replicated store, so they were not acknowledged: %w",
		l.sid, recs[0].ID, recs[len(recs)-1].ID, err)
	if errors.Is(err, ErrFenced) {
		// Another node owns the session: every later append would be
		// refused too, and this node must stop acting for it.
		l.mu.Lock()
		if l.broken == nil {
			l.broken = err
		}
		l.mu.Unlock()
	}
	return err
}

// replicaCall runs fn against the store's replica with a bounded context
// derived from ctx; it does nothing without a replica.
func (st *Store) replicaCall(ctx context.Context, what, sid string, fn func(context.Context, Replica) error) error {
	if st.replica == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, replicaTimeout)
	defer cancel()
	if err := fn(ctx, st.replica); err != nil {
		return fmt.Errorf("eventbus: %s of session %q in the replicated store: %w", what, sid, err)
	}
	return nil
}

// Replicated reports whether the store copies its writes to a Replica
// (WithReplica).
func (st *Store) Replicated() bool { return st.replica != nil }

// Hydrate replaces the local copy of session sid with items (stored events
// in ascending id order, each JSON carrying its id, as a Replica's reader
// returns them) and meta (nil for none), for a node taking the session
// over. The session must not be open here. Its local event log and
// metadata record are deleted first (a write-ahead log tombstone keeps
// recovery from bringing the old copy back), then items are stored under
// their own ids and meta saved. It does not call the Replica: the data
// came from it. On error the local copy is removed, never left half built.
func (st *Store) Hydrate(ctx context.Context, sid string, items []*Item, meta []byte) error {
	if err := ValidateSessionID(sid); err != nil {
		return err
	}
	if meta != nil && !jsonValid(meta) {
		return fmt.Errorf("eventbus: hydrate session %q: its metadata record is not valid JSON (%d bytes)", sid, len(meta))
	}
	if err := st.deleteLocal(sid, false); err != nil {
		return fmt.Errorf("eventbus: hydrate session %q: %w", sid, err)
	}
	if len(items) > 0 {
		err := st.importInto(sid, false, func(s *Stream) error {
			return s.log.appendItems(ctx, items)
		})
		if err != nil {
			return fmt.Errorf("eventbus: hydrate session %q: %w", sid, err)
		}
	}
	if meta == nil {
		return nil
	}
	if err := st.saveMetaLocal(sid, meta); err != nil {
		st.deleteLocal(sid, false)
		return fmt.Errorf("eventbus: hydrate session %q: %w", sid, err)
	}
	return nil
}

// maxImportGroupBytes bounds the framed bytes appendItems puts in one
// commit group (and so in one replica call).
const maxImportGroupBytes = 4 << 20

// appendItems stores items (ascending ids, JSON with the id in it) under
// their own ids, many per commit group, and waits until all are durable.
func (l *eventLog) appendItems(ctx context.Context, items []*Item) error {
	for len(items) > 0 {
		l.mu.Lock()
		if err := l.appendCheckLocked(); err != nil {
			l.mu.Unlock()
			return err
		}
		var g *commitGroup
		n, bytes := 0, 0
		for ; n < len(items) && (n == 0 || bytes+len(items[n].JSON) <= maxImportGroupBytes); n++ {
			it := items[n]
			if it.ID < l.nextID {
				next := l.nextID
				l.mu.Unlock()
				if g != nil {
					l.waitDiscard(g)
				}
				return fmt.Errorf("eventbus: cannot store event id %d in %s: ids must increase (next free id is %d)", it.ID, l.path, next)
			}
			l.nextID = it.ID + 1
			g = l.frameLocked(it.ID, it.JSON, false, nil)
			bytes += len(it.JSON) + recHeaderSize
		}
		lead := l.leadLocked()
		l.mu.Unlock()
		if lead {
			l.drive()
		}
		if err := l.wait(ctx, g, items[n-1].ID); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// waitDiscard lets a partly framed group finish before an error is
// returned (the caller removes the session anyway).
func (l *eventLog) waitDiscard(g *commitGroup) {
	l.mu.Lock()
	lead := l.leadLocked()
	l.mu.Unlock()
	if lead {
		l.drive()
	}
	l.wait(context.Background(), g, InvalidID)
}

// deleteLocal removes session sid's local files (not the replica's copy).
// With mustExist it fails when there is nothing to delete. The session
// must not be open.
func (st *Store) deleteLocal(sid string, mustExist bool) error {
	st.life.RLock()
	defer st.life.RUnlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return errStoreClosed
	}
	if _, ok := st.open[sid]; ok {
		return fmt.Errorf("eventbus: session %q is open in this store; Close its stream first", sid)
	}
	if st.wal != nil {
		// A durable tombstone first: recovery must not bring the session's
		// events back from the log once its files are gone.
		if err := st.wal.commit(walKindDelete, sid, nil); err != nil {
			return fmt.Errorf("eventbus: delete session %q: %w", sid, err)
		}
	}
	delete(st.sessRecovered, sid)
	found := false
	// The events go first: a crash in between leaves a metadata record
	// without events, which Sessions still lists and Delete removes.
	for _, p := range []string{st.path(sid), st.metaPath(sid)} {
		switch err := os.Remove(p); {
		case err == nil:
			found = true
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("eventbus: delete session %q: %w", sid, err)
		}
	}
	if mustExist && !found {
		return fmt.Errorf("eventbus: delete session %q: no such session in %s", sid, st.dir)
	}
	return nil
}
