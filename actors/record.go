package actors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"corral/eventbus"
	"corral/runtimes"
)

// sessionRecord is everything beyond its events that is needed to rebuild a
// session after a crash: what it was asked to be, where its sandbox is and
// whether it was still meant to run. The Session actor writes it through its
// stream writer (ordered with its event appends, off the actor goroutine);
// the Manager reads every record once when the engine starts.
type sessionRecord struct {
	Version int         `json:"version"`
	Spec    SessionSpec `json:"spec"`
	Created time.Time   `json:"created"`
	// State is the last state written: a record that is not STOPPED or
	// ERROR belongs to a session that was running when its process ended.
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Handle is the sandbox in use (nil before the first start and after
	// the sandbox was released); SetupFor is the handle id whose workspace
	// set-up completed, so a re-attached sandbox is not set up twice.
	Handle   *runtimes.Handle `json:"handle,omitempty"`
	SetupFor string           `json:"setup_for,omitempty"`
	Restarts int              `json:"restarts,omitempty"`

	// lastActivity is when its events were last written (not stored in
	// the record: the event log's own time says it).
	lastActivity time.Time
	// adopted: taken over from another node (Engine.Adopt), not recovered
	// from this node's previous process (not stored either).
	adopted bool
}

const recordVersion = 1

// ended reports whether the record's session had finished (it is not
// recovered at start, but can be started again).
func (r *sessionRecord) ended() bool { return r.State == StateStopped || r.State == StateError }

func (r *sessionRecord) info() SessionInfo {
	return SessionInfo{ID: r.Spec.ID, Runtime: r.Spec.Runtime, State: r.State, Workspace: r.Spec.Workspace,
		Image: r.Spec.Image, Created: r.Created, LastActivity: r.lastActivityOrCreated(), Error: r.Error, Handle: r.Handle, Restarts: r.Restarts}
}

func (r *sessionRecord) lastActivityOrCreated() time.Time {
	if r.lastActivity.After(r.Created) {
		return r.lastActivity
	}
	return r.Created
}

// loadRecords reads the record of every session in the store. Sessions with
// events but no record (written by an older Corral) come back as stopped
// sessions of unknown runtime; a record that cannot be decoded is reported
// and skipped, never guessed.
func loadRecords(store *eventbus.Store) (map[string]*sessionRecord, []error) {
	ids, err := store.Sessions()
	if err != nil {
		return nil, []error{err}
	}
	out := make(map[string]*sessionRecord, len(ids))
	var errs []error
	for _, sid := range ids {
		data, err := store.LoadMeta(sid)
		if errors.Is(err, fs.ErrNotExist) {
			out[sid] = &sessionRecord{Version: recordVersion, Spec: SessionSpec{ID: sid}, State: StateStopped, lastActivity: store.LastWrite(sid)}
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("session %s: read its record: %w", sid, err))
			continue
		}
		var rec sessionRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			errs = append(errs, fmt.Errorf("session %s: its record in %s is not valid JSON (%v); the session is left stopped", sid, store.Dir(), err))
			continue
		}
		if rec.Version > recordVersion {
			errs = append(errs, fmt.Errorf("session %s: its record was written by a newer Corral (version %d); upgrade to recover it", sid, rec.Version))
			continue
		}
		rec.Spec.ID = sid
		rec.lastActivity = store.LastWrite(sid)
		out[sid] = &rec
	}
	return out, errs
}
