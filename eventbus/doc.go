// Package eventbus is Corral's event layer: OpenHands' event types and JSON
// codec, and the per-session event stream that every action and observation
// goes through.
//
// A Store manages a directory of sessions (Config.StoreDir, one append-only
// file "<session>.events" per session). Store.Open returns the session's
// Stream, which
//   - assigns ids from 0 without gaps (Append), sets missing timestamps,
//     masks secrets (SetSecrets/UpdateSecrets) before anything is persisted
//     or delivered, and acknowledges an event only once it is durable per
//     Config.Sync ("always", "batch", "never"), using group commit: one
//     write and at most one fsync for all appends that arrive together;
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
// On-disk format and crash safety: a 16-byte header (magic "CRLEVLOG",
// version) then records of [length uint32][CRC32C uint32][id int64][JSON].
// Opening a log validates every record; a torn or corrupt tail is truncated,
// logged as a warning and reported by Stream.Recovered; nothing before it is
// lost and ids continue after the last good event. A file without the magic
// is refused and never modified.
//
// This package must never import another Corral package (it is the bottom of
// the import graph), never block an appender on a slow subscriber, never
// acknowledge an event before it is stored, and never drop or reorder events
// silently.
package eventbus
