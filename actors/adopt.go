package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	actorpb "corral/actors/proto"
	"corral/eventbus"
)

// ReplicaSource is where a clustered engine reads sessions it takes over:
// the replicated event store (eventbus/jetstream's *Log is one).
type ReplicaSource interface {
	// Load returns every stored event of session sid (ascending ids) and
	// its metadata record (nil: none).
	Load(ctx context.Context, sid string) ([]*eventbus.Item, []byte, error)
	// Fence makes nodeID the only writer of session sid: the previous
	// owner's next append fails wrapping eventbus.ErrFenced.
	Fence(ctx context.Context, sid, nodeID string) error
}

// ErrUnavailable is an engine refusal because the cluster's replicated
// event store cannot take writes (no quorum), or because the session is
// owned by another node now: nothing was stored; retry later (the API
// answers 503).
var ErrUnavailable = &Error{Code: actorpb.ErrorCode_ERROR_CODE_UNAVAILABLE}

// WithCluster makes the engine one node of a cluster whose sessions live in
// a replicated event store (its Store must have been opened with
// eventbus.WithReplica, and WithNodeID must name the node). In cluster mode:
//   - the engine knows no session at start: sessions come by CreateSession
//     (placed here) and Adopt (taken over from another node, or from this
//     node's previous process); the local store is only a cache of the
//     sessions this node owns, so it is neither listed nor read for
//     sessions the engine does not know;
//   - Recover brings back nothing (the cluster re-activates sessions
//     through Adopt, on whichever node owns them now);
//   - Reap refuses (ErrNotSupported): another node may own the sandboxes
//     this node's store still names, or that an owner which looks gone
//     started.
func WithCluster(src ReplicaSource) Option { return func(e *Engine) { e.cluster = src } }

// WithNodeID names this node in a cluster (the id fences are taken under
// and the API shows); required with WithCluster.
func WithNodeID(id string) Option { return func(e *Engine) { e.nodeID = id } }

// Clustered reports whether the engine runs in cluster mode (WithCluster).
func (e *Engine) Clustered() bool { return e.cluster != nil }

// NodeID is the node id given by WithNodeID.
func (e *Engine) NodeID() string { return e.nodeID }

// SessionCount is the number of sessions this engine owns and runs or has
// queued for admission (its load); stopped sessions are not counted. It
// never waits on an actor.
func (e *Engine) SessionCount() int { return int(e.owned.Load()) }

func (e *Engine) validateCluster() error {
	if e.cluster == nil {
		if e.nodeID != "" {
			return errors.New("actors: WithNodeID is only for cluster mode; add actors.WithCluster or leave it out")
		}
		return nil
	}
	if e.nodeID == "" {
		return errors.New("actors: WithCluster needs the node's id (actors.WithNodeID)")
	}
	if e.store == nil {
		return errors.New("actors: WithCluster needs the node's durable store opened with eventbus.WithReplica (actors.WithStore)")
	}
	if !e.store.Replicated() {
		return errors.New("actors: WithCluster needs a store opened with eventbus.WithReplica: without it this node's appends are neither replicated nor fenced")
	}
	return nil
}

// Adopt makes this engine the owner of session sid, a session of the
// cluster's replicated store (another node's, or one this node released):
// it fences the previous owner (whose next append then fails, stopping its
// Session without touching the sandbox), loads the session's events and
// record into the local store, and brings the session back as Recover does
// after a crash: a session that was running re-attaches to its sandbox when
// the backend reaches it (the in-flight action is sent again under its
// request id and answered once, from the running or finished request),
// else the in-flight action gets one error observation (ErrIDSandboxLost)
// and the session goes on in a new sandbox; a stopped session just becomes
// known. Ids continue from the stored ones. Adopt returns once the session
// is admitted (or queued for admission); WaitReady waits for its sandbox.
// A session this engine runs already is left as it is (nil). Concurrent
// Adopts of one session share one take-over.
func (e *Engine) Adopt(ctx context.Context, sid string) error {
	if e.cluster == nil {
		return &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED, Message: "Adopt needs an engine in cluster mode (actors.WithCluster)"}
	}
	if e.closed.Load() {
		return &Error{Code: actorpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: "the engine is shut down"}
	}
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return &Error{Code: actorpb.ErrorCode_ERROR_CODE_INVALID, Message: err.Error()}
	}
	token := e.adoptSeq.Add(1)
	res, err := e.ask(ctx, e.manager, &adoptBegin{sid: sid, token: token})
	if err != nil {
		// The Manager may have made this call the take-over's leader.
		e.sys.Root.Send(e.manager, &adoptEnd{sid: sid, token: token, err: err})
		return fmt.Errorf("adopt session %s: %w", sid, err)
	}
	if r := res.(*adoptBeginReply); !r.lead {
		return r.err
	}
	rec, err := e.takeOver(ctx, sid)
	// The Manager must hear the end even when ctx is over: it holds the
	// take-over (and other Adopt calls wait on it) until then.
	res, err = e.ask(context.WithoutCancel(ctx), e.manager, &adoptEnd{sid: sid, token: token, rec: rec, err: err})
	if err != nil {
		return fmt.Errorf("adopt session %s: %w", sid, err)
	}
	return res.(*adoptEndReply).err
}

// takeOver fences the previous owner of sid, then copies the session from
// the replicated store into the local one and returns its record.
func (e *Engine) takeOver(ctx context.Context, sid string) (*sessionRecord, error) {
	// A session the replica does not have is not fenced: a fence marker
	// would make its later creation look like a foreign write.
	items, meta, err := e.cluster.Load(ctx, sid)
	if err != nil {
		return nil, fmt.Errorf("adopt session %s: load it from the replicated store: %w", sid, err)
	}
	if len(items) == 0 && meta == nil {
		return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_FOUND, Message: fmt.Sprintf("adopt session %s: the replicated store has no such session", sid)}
	}
	if err := e.cluster.Fence(ctx, sid, e.nodeID); err != nil {
		return nil, fmt.Errorf("adopt session %s: fence its previous owner: %w", sid, err)
	}
	// Loaded again after the fence: what the previous owner appended in
	// between is in it, and nothing can follow.
	if items, meta, err = e.cluster.Load(ctx, sid); err != nil {
		return nil, fmt.Errorf("adopt session %s: load it from the replicated store: %w", sid, err)
	}
	if err := e.store.Hydrate(ctx, sid, items, meta); err != nil {
		return nil, fmt.Errorf("adopt session %s: copy it into the local store: %w", sid, err)
	}
	rec, err := adoptedRecord(sid, meta)
	if err != nil {
		return nil, err
	}
	rec.lastActivity = e.store.LastWrite(sid)
	if !rec.ended() {
		if _, err := e.registry.Get(rec.Spec.Runtime); err != nil {
			return nil, &Error{Code: actorpb.ErrorCode_ERROR_CODE_UNKNOWN_RUNTIME,
				Message: fmt.Sprintf("adopt session %s: it runs on runtime %q, which node %s does not run (%v); adopt it on a node that does", sid, rec.Spec.Runtime, e.nodeID, err)}
		}
		rec.adopted = true
	}
	return rec, nil
}

// adoptedRecord decodes a session's record as read from the replicated
// store, as loadRecords does for the local one.
func adoptedRecord(sid string, meta []byte) (*sessionRecord, error) {
	if meta == nil {
		// Events without a record: a session that cannot be started again.
		return &sessionRecord{Version: recordVersion, Spec: SessionSpec{ID: sid}, State: StateStopped}, nil
	}
	var rec sessionRecord
	if err := json.Unmarshal(meta, &rec); err != nil {
		return nil, fmt.Errorf("adopt session %s: its record in the replicated store is not valid JSON: %w", sid, err)
	}
	if rec.Version > recordVersion {
		return nil, fmt.Errorf("adopt session %s: its record was written by a newer Corral (version %d); upgrade this node to adopt it", sid, rec.Version)
	}
	rec.Spec.ID = sid
	return &rec, nil
}

// Release stops owning session sid without ending it, so that another node
// can Adopt it (drain): its actors stop, its sandbox keeps running, no end
// is recorded and its record still says it runs. The action in flight, if
// any, is left to the adopter, which answers it exactly once (re-sent under
// its request id to the re-attached sandbox, or an error observation when
// the sandbox cannot be reached from there): waiting for it here could
// outlast any drain, and answering it here would race the adopter. A Run
// caller waiting for it gets ErrUnavailable. Release returns once every
// event and record the session had queued is stored; the engine then no
// longer knows the session. Releasing a session the engine does not know
// is not an error; a session still queued for admission that was created
// here has nothing stored yet and is refused (ErrNotRunning).
func (e *Engine) Release(ctx context.Context, sid string) error {
	if e.cluster == nil {
		return &Error{Code: actorpb.ErrorCode_ERROR_CODE_NOT_SUPPORTED, Message: "Release needs an engine in cluster mode (actors.WithCluster); use Detach or Stop"}
	}
	res, err := e.ask(ctx, e.manager, &releaseReq{sid: sid})
	if err != nil {
		return fmt.Errorf("release session %s: %w", sid, err)
	}
	return res.(*releaseReply).err
}
