// Package jetstream is Corral's replicated event store for clusters: an
// embedded NATS server with JetStream (StartServer) in every node, and Log,
// the eventbus.Replica that copies each session's commit groups into one
// JetStream stream before the node acknowledges them.
//
// Layout. One stream, CORRAL_EVENTS (file storage, R = WithReplicas),
// subjects corral.events.<token>, one subject per session, where token is
// the session id with '_' and '.' escaped as "_5F" and "_2E" (a session id
// may contain '.', which NATS reads as a token separator; SubjectToken,
// SessionOfToken). One message per commit group: the records' stored JSON
// joined by '\n' (compact JSON never holds a raw newline), with headers
// Corral-First-Id and Corral-Last-Id; a group over ~7 MiB is split into
// chained messages. A session's metadata record (eventbus.Store.SaveMeta:
// its request, sandbox handle, tokens, status) is a message on the same
// subject with header Corral-Meta: 1 and the record as body; the last one is
// the record. There is no separate metadata bucket: a record kept outside
// the subject would escape the fence below, and a stale owner (paused,
// declared dead, resumed) could overwrite the new owner's record before any
// append told it it was fenced. Delete purges the subject, so events and
// records go together; Sessions lists the subjects.
//
// Fencing. Every publish (event group, metadata record, fence marker)
// carries Nats-Expected-Last-Subject-Sequence: the sequence of the last
// message this Log wrote or read on the session's subject. The Log takes one
// session's publishes in turn (a per-session lock held across the round
// trip): eventbus calls SaveMeta from other goroutines than the stream's
// writer, and two publishes in flight expecting the same sequence would
// refuse one of them. A new owner publishes a fence marker (header
// Corral-Fence: <node id>, empty body) after the current last message
// (Fence); from then on the old owner's next publish is refused by the
// stream leader ("wrong last sequence", err code 10071/10164); the Log then
// reads what follows its known sequence: a fence marker there means
// AppendRecords or SaveMeta fails wrapping eventbus.ErrFenced; only its own
// earlier groups there (a publish that timed out without quorum and was
// committed later) mean it publishes after them. Load skips fence markers,
// returns the last metadata record, and a group whose first id is not above
// the previous one's last id replaces the overlapping ids (such a group
// re-sends ids whose first publish was never acknowledged).
//
// Quorum. A publish is acknowledged by JetStream only once a quorum of the
// stream's replicas stored it. With too few servers alive the publish times
// out (or finds no responders) and AppendRecords fails wrapping
// eventbus.ErrReplicaUnavailable with a message saying the quorum is lost:
// nothing is acknowledged, and writes go on once enough nodes are back.
//
// Security. The embedded server listens with no authentication and no TLS:
// it is meant for loopback or a private network between the nodes of one
// cluster. Anyone who can reach the client or route port can read and write
// every session's events; do not expose these ports.
//
// This package must never acknowledge a record JetStream did not confirm,
// never publish without the expected-last-subject-sequence check (that check
// is the fence), never keep session state (metadata included) anywhere but
// the session's subject, never have two publishes of one session in flight
// at once, never read session state through a direct get that a lagging
// replica could answer (the stream has allow_direct off), and never log
// event bodies (they may hold masked secrets' neighbours and user data).
package jetstream
