package eventbus

import (
	"context"
	"errors"
)

// Replica is where a clustered Store copies every commit group and every
// metadata record before acknowledging it. A Store without one is the
// single-node store. Implementations live outside this package (e.g.
// eventbus/jetstream); this package only calls them.
type Replica interface {
	// AppendRecords stores recs (ascending ids; each JSON already carries
	// its "id") of session sid durably on a quorum. It fails wrapping
	// ErrFenced when another owner wrote to sid since this node last
	// loaded or fenced it, and wrapping ErrReplicaUnavailable when no
	// quorum answers.
	AppendRecords(ctx context.Context, sid string, recs []ReplicaRecord) error
	// SaveMeta stores session sid's metadata record.
	SaveMeta(ctx context.Context, sid string, data []byte) error
	// Delete removes session sid's events and metadata.
	Delete(ctx context.Context, sid string) error
}

// ReplicaRecord is one stored event handed to a Replica: its id and its
// stored JSON (with the id in it). JSON is shared and must not be modified.
type ReplicaRecord struct {
	ID   int64
	JSON []byte
}

// ErrFenced is wrapped by appends refused because another node took the
// session over: this node must stop acting for it.
var ErrFenced = errors.New("eventbus: the session is owned by another node now")

// ErrReplicaUnavailable is wrapped by appends the replicated store could not
// confirm on a quorum: nothing was acknowledged, and the caller should pause
// rather than go on.
var ErrReplicaUnavailable = errors.New("eventbus: the replicated store has no quorum")

// WithReplica makes the Store copy every commit group and metadata record to
// r before acknowledging it (cluster mode).
func WithReplica(r Replica) StoreOption {
	return func(s *Store) { s.replica = r }
}
