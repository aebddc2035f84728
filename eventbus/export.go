package eventbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// OpenHands keeps one JSON file per event under
// <root>/sessions/<sid>/events/<id>.json (reference §8). Export writes that
// layout and Import reads it.
//
// OpenHands JSON only: Export leaves out Corral's own events
// (Event.IsCorralExtension, e.g. runtime_status), which OpenHands'
// event_from_dict cannot decode, unless ExportCorralExtensions is given.
// Exported events keep their stored ids, so leaving one out makes a gap;
// no id is renumbered and every "cause" stays valid. OpenHands reads gaps
// fine: EventStore.search_events skips an id whose file is missing
// (FileNotFoundError), and cur_id is the highest id on disk + 1 (its own
// fixture trajectories have gaps, e.g. basic_interactions.json). Only the
// pre-EventStore EventStream.get_events of old releases stopped at the
// first missing id.
//
// Gaps: OpenHands trajectories can have missing ids. Import keeps every id as
// in the source, so the session's ids have the same gaps; nothing is stored
// for a missing id (Search and Subscribe skip it, Len counts only stored
// events) and the next Append continues after the highest imported id.

// eventsDir is where OpenHands keeps a session's events under root.
func eventsDir(root, sid string) string { return filepath.Join(root, "sessions", sid, "events") }

// ExportOption configures Export.
type ExportOption func(*exportOptions)

type exportOptions struct {
	corral bool // include Corral's own events
}

// ExportCorralExtensions makes Export write Corral's own events too
// (Event.IsCorralExtension); OpenHands cannot read the result.
func ExportCorralExtensions() ExportOption {
	return func(o *exportOptions) { o.corral = true }
}

// Export writes the stored events of session sid that OpenHands knows to
// <root>/sessions/<sid>/events/<id>.json, exactly as stored (secrets already
// masked) and under their stored ids; Corral's own events are left out
// unless ExportCorralExtensions is given (see the gaps note above).
// Existing files with the same names are overwritten, and an existing file
// of an event left out is removed; files are synced before Export returns.
func (st *Store) Export(ctx context.Context, sid, root string, opts ...ExportOption) error {
	s, err := st.Open(sid)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Export(ctx, root, opts...)
}

// Export writes the stream's stored events in OpenHands' layout under root;
// see Store.Export.
func (s *Stream) Export(ctx context.Context, root string, opts ...ExportOption) error {
	var o exportOptions
	for _, opt := range opts {
		opt(&o)
	}
	dir := eventsDir(root, s.sid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("eventbus: export session %q: create %s: %w", s.sid, dir, err)
	}
	var werr error
	n := 0
	err := s.log.read(0, 1<<63-1, false, func(id int64, js []byte) bool {
		if n++; n%256 == 0 {
			if werr = ctx.Err(); werr != nil {
				return false
			}
		}
		path := filepath.Join(dir, strconv.FormatInt(id, 10)+".json")
		if !o.corral && isCorralJSON(js) {
			if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				werr = rerr
			}
			return werr == nil
		}
		werr = writeFileSync(path, js)
		return werr == nil
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("eventbus: export session %q to %s: %w", s.sid, dir, err)
	}
	return syncDir(dir)
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// Import creates session sid from OpenHands' layout
// <root>/sessions/<srcSID>/events/<id>.json, keeping ids (gaps included).
// Each file must decode as an event; an "id" inside it must equal the file
// name. Events are stored re-encoded by Marshal (compact, unknown keys kept).
// The session must not exist yet; on error it is removed again. A
// replicated store (WithReplica) replicates the imported events.
func (st *Store) Import(ctx context.Context, root, srcSID, sid string) error {
	if err := ValidateSessionID(sid); err != nil {
		return err
	}
	dir := eventsDir(root, srcSID)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("eventbus: import: read %s: %w", dir, err)
	}
	var files []importFile
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") {
			continue
		}
		id, perr := strconv.ParseInt(strings.TrimSuffix(name, ".json"), 10, 64)
		if perr != nil || id < 0 {
			return fmt.Errorf("eventbus: import: %s: file name is not <id>.json with a non-negative integer id", filepath.Join(dir, name))
		}
		files = append(files, importFile{id, name})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].id < files[j].id })

	return st.importInto(sid, true, func(s *Stream) error {
		return st.importFiles(ctx, s, dir, files)
	})
}

// importInto creates session sid and fills it; the session must not exist
// yet, and it is removed again when fill (or closing it) fails, so an
// import lands whole or not at all. With replicate (and a Replica) the
// events are replicated like appended ones, so an imported session
// survives a failover; a failed import is deleted from the replica too.
func (st *Store) importInto(sid string, replicate bool, fill func(*Stream) error) (err error) {
	if _, serr := os.Stat(st.path(sid)); serr == nil {
		return fmt.Errorf("eventbus: import into session %q: it already exists in %s; Delete it first or pick another id", sid, st.dir)
	} else if !errors.Is(serr, os.ErrNotExist) {
		return fmt.Errorf("eventbus: import into session %q: %w", sid, serr)
	}
	s, err := st.openStream(sid, replicate)
	if err != nil {
		return err
	}
	defer func() {
		cerr := s.Close()
		if err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(st.path(sid))
			if replicate && st.replica != nil {
				if derr := st.replicaCall(context.Background(), "delete the failed import", sid, func(ctx context.Context, r Replica) error {
					return r.Delete(ctx, sid)
				}); derr != nil {
					err = errors.Join(err, derr)
				}
			}
		}
	}()
	return fill(s)
}

// importFile is one OpenHands event file: <id>.json.
type importFile struct {
	id   int64
	name string
}

// importFiles appends OpenHands' event files to s under their own ids.
func (st *Store) importFiles(ctx context.Context, s *Stream, dir string, files []importFile) error {
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("eventbus: import into session %q: %w", s.SessionID(), err)
		}
		p := filepath.Join(dir, f.name)
		data, rerr := os.ReadFile(p)
		if rerr != nil {
			return fmt.Errorf("eventbus: import: %w", rerr)
		}
		e, derr := Unmarshal(data)
		if derr != nil {
			return fmt.Errorf("eventbus: import: %s: %w", p, derr)
		}
		if e.ID != InvalidID && e.ID != f.id {
			return fmt.Errorf("eventbus: import: %s holds event id %d, not %d as its name says", p, e.ID, f.id)
		}
		e.ID = f.id
		js, merr := Marshal(e)
		if merr != nil {
			return fmt.Errorf("eventbus: import: re-encode %s: %w", p, merr)
		}
		if len(js) > st.cfg.MaxEventBytes {
			return fmt.Errorf("eventbus: import: %s: %w: %d bytes > max_event_bytes = %d", p, ErrEventTooLarge, len(js), st.cfg.MaxEventBytes)
		}
		if aerr := s.log.appendWithID(ctx, f.id, js); aerr != nil {
			return fmt.Errorf("eventbus: import: store %s: %w", p, aerr)
		}
	}
	return nil
}
