// Package eventbus is Corral's event layer: OpenHands' event types and JSON
// codec, and the per-session event stream that every action and observation
// goes through.
//
// A Store manages a directory of sessions (Config.StoreDir, one append-only
// file "<session>.events" per session, plus optional "<session>.meta.json"
// metadata records, the store-wide write-ahead log in "wal/", and the
// store's LOCK and STORE_ID files). Store.Open returns the session's
// Stream, which
//   - assigns ids from 0 without gaps (Append), sets missing timestamps,
//     masks secrets (SetSecrets/UpdateSecrets) before anything is persisted
//     or delivered, and acknowledges an event only once it is durable per
//     Config.Sync ("always", "batch", "never"), using leader/follower
//     group commit: the committer writes and syncs at once when no sync is
//     in flight, and everything that arrives while one is shares the next
//     write(2) and sync, so a lone writer never waits for a timer;
//   - delivers events to subscribers from any id (Subscribe): stored events
//     first, then live ones, with no gap and no duplicate at the seam. Each
//     subscriber has a bounded buffer; one that falls behind is dropped with
//     an *OverflowError carrying the last id it got, never silently skipped;
//   - searches stored events with OpenHands' EventFilter semantics (Search);
//   - exports to and imports from OpenHands' on-disk layout
//     (sessions/<sid>/events/<id>.json).
//
// Items handed to subscribers carry the stored JSON bytes, so servers can
// forward them without re-encoding.
//
// One owner per store directory: OpenStore takes an exclusive, non-blocking
// flock(2) on <store_dir>/LOCK before touching anything else and holds it
// until Store.Close; the kernel releases it when the process dies, however
// it dies. The holder records itself in LOCK as JSON (LockHolder: pid,
// host, command line, since, instance id). A second OpenStore of the
// directory, from this process or another, fails at once with a
// *StoreLockedError (errors.Is ErrStoreLocked) that names the holder and
// touches no session file. <store_dir>/STORE_ID holds the store's random id
// (Store.ID), created once and fsynced.
//
// Session metadata: Store.SaveMeta keeps a session's non-event state (one
// JSON value: request, tokens, env, ...) in <store_dir>/<sid>.meta.json,
// mode 0600, replaced atomically (temporary ".tmp-*" file, fsync, rename,
// directory fsync), so after a crash LoadMeta returns the previous or the
// new record whole; OpenStore removes temporary files a crash left.
// Sessions lists every session with an event log or a metadata record;
// Delete removes both.
//
// OpenHands JSON means OpenHands JSON: Corral's own event types
// (Event.IsCorralExtension; today the runtime_status observation) are
// stored and replayed like any event, but OpenHands' event_from_dict cannot
// decode them, so everything Corral presents as OpenHands JSON leaves them
// out unless asked: Export (ExportCorralExtensions), Search and listings
// (Filter.ExcludeCorralExtensions), `corral exec` (--corral-events) and the
// HTTP API (?corral_events=true). Ids are never renumbered: a listing or an
// export may skip ids, which OpenHands' EventStore reads fine.
//
// On-disk format and crash safety: a session file is a 16-byte header
// (magic "CRLEVLOG", version) then records of [length uint32][CRC32C
// uint32][id int64][JSON]; it is what readers use (its in-memory index
// serves replay, Subscribe-from-id and Search of that session alone).
// Opening a file validates every record; a torn or corrupt tail is
// truncated, logged as a warning and reported by Stream.Recovered; nothing
// before it is lost and ids continue after the last good event. A file
// without the magic is refused and never modified.
//
// Durability (sync_method, default "wal" on Linux): each commit group is
// written to its session file without a sync and appended, as one entry,
// to the store-wide write-ahead log (<store_dir>/wal/<seq>.wal, CRC-framed
// entries naming their session), where one fdatasync makes a whole batch of
// sessions durable. Full segments are checkpointed (one syncfs makes the
// session files durable, then the segment is deleted); a clean Close leaves
// no segment. On open, whatever the settings, the segments a crash left
// are replayed into the session files (restoring records a file lost with
// the page cache or cut off as a torn or corrupt tail, each logged), then
// deleted; a torn segment tail holds nothing acknowledged and is dropped and
// reported (Store.Recovered); a segment that is not ours is refused and left
// untouched; a deleted session's tombstone keeps recovery from bringing it
// back. Stores written before the log existed need no migration: their
// session files are the format this build reads and writes. An older build
// ignores wal/, so after a crash open the store with this build once
// before going back. See wal.go for details and the alternatives ("syncfs",
// "fsync").
//
// Replication (cluster mode): a Store opened WithReplica(r) hands every
// commit group to r (Replica.AppendRecords) after writing it to the session
// file and before syncing and acknowledging it, so an event is acknowledged
// only once it is durable both locally and on the replica's quorum. A
// replica failure fails the group exactly like a write failure (the file
// is cut back, ids are rewound, nothing of it is acknowledged) and Append
// returns an error naming the session that wraps ErrFenced (another node
// owns the session now; the log refuses further appends) or
// ErrReplicaUnavailable (no quorum; retrying later may succeed). The
// replica is called before the local sync so that the write-ahead log never
// holds a group the replica refused. SaveMeta and Delete call the replica
// first; Import and ImportItems replicate what they store (an imported
// session must survive a failover). Hydrate replaces a session's local copy
// with what a new owner read from the replica, without calling it. Without
// a Replica none of this runs: the single-node store is unchanged.
//
// This package must never import another Corral package (it is the bottom of
// the import graph), never block an appender on a slow subscriber, never
// acknowledge an event before it is stored, and never drop or reorder events
// silently.
package eventbus
