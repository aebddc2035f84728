package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"corral/eventbus"
)

// Names of the stream and its subjects.
const (
	DefaultStreamName = "CORRAL_EVENTS"
	subjectPrefix     = "corral.events."
)

// Message headers.
const (
	hdrFirstID = "Corral-First-Id"
	hdrLastID  = "Corral-Last-Id"
	hdrFence   = "Corral-Fence"
	// hdrMeta marks a session's metadata record (body = the record). It is
	// stored on the session's subject, not in a KV bucket, so that it is
	// fenced like the events: a stale owner cannot overwrite the new
	// owner's record (sandbox handle, tokens, status).
	hdrMeta = "Corral-Meta"
)

// maxGroupBytes is the most body bytes one message carries; larger commit
// groups are split into chained messages (MaxPayload leaves room for
// headers).
const maxGroupBytes = 7 << 20

// Log is the eventbus.Replica backed by JetStream, plus the readers a node
// taking sessions over needs (Load, Fence, Sessions). Safe for concurrent
// use: the writes of one session (appends, metadata, fence, delete) take
// turns on a per-session lock, because each expects the subject's last
// sequence to be the one this Log knows, and two of them in flight with the
// same expectation would refuse one (a false fence). Writes of different
// sessions overlap.
type Log struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	o      options

	mu   sync.Mutex
	seqs map[string]uint64 // last sequence this Log wrote or read per subject
	// uncertain holds subjects whose last publish timed out: it may still
	// be stored (a leader elected later commits it), so the next append
	// first reads what follows the known sequence (resolve).
	uncertain map[string]bool
	// locks holds the per-subject write locks in use; an entry goes away
	// when its last holder or waiter lets go, so the map stays as small
	// as the number of sessions being written right now.
	locks map[string]*subjectLock
	// refused counts publishes the stream refused for a wrong expected
	// sequence: fences, and (were the per-session lock missing) this Log
	// racing itself. Tests read it.
	refused atomic.Uint64
}

// subjectLock serialises one subject's round trips. A channel rather than
// a sync.Mutex so that a waiter gives up when its context ends.
type subjectLock struct {
	ch   chan struct{}
	refs int // holders and waiters; guarded by Log.mu
}

var _ eventbus.Replica = (*Log)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	replicas   int
	logger     *slog.Logger
	stream     string
	opTimeout  time.Duration
	clientName string
}

// WithReplicas sets how many servers keep each message (JetStream's R;
// default 1). An append is acknowledged once a majority of them stored it.
func WithReplicas(n int) Option { return func(o *options) { o.replicas = n } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithStreamName overrides the stream's name (default CORRAL_EVENTS); for
// tests that share a server.
func WithStreamName(name string) Option { return func(o *options) { o.stream = name } }

// WithOpTimeout bounds each JetStream round trip of an append, fence or
// metadata write (default 5s): past it, with no quorum answering, the call
// fails wrapping eventbus.ErrReplicaUnavailable.
func WithOpTimeout(d time.Duration) Option { return func(o *options) { o.opTimeout = d } }

// WithClientName names the NATS connection (shown by the server's monitoring).
func WithClientName(name string) Option { return func(o *options) { o.clientName = name } }

// Open connects to the NATS server at url, creates or updates the stream,
// and returns the Log. In a new cluster JetStream
// needs a few seconds to elect its meta leader; Open retries until ctx ends
// and then reports how many servers answered.
func Open(ctx context.Context, url string, opts ...Option) (*Log, error) {
	o := options{replicas: 1, logger: slog.Default(), stream: DefaultStreamName, opTimeout: 5 * time.Second, clientName: "corral"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.replicas < 1 || o.replicas > 5 {
		return nil, fmt.Errorf("jetstream: replicas = %d; JetStream keeps 1 to 5 copies (use 1 for a single node, 3 for a cluster)", o.replicas)
	}
	if o.opTimeout <= 0 {
		return nil, fmt.Errorf("jetstream: op timeout %v must be positive", o.opTimeout)
	}
	nc, err := connect(ctx, url, o)
	if err != nil {
		return nil, err
	}
	l := &Log{nc: nc, o: o, seqs: map[string]uint64{}, uncertain: map[string]bool{}, locks: map[string]*subjectLock{}}
	if l.js, err = jetstream.New(nc, jetstream.WithDefaultTimeout(o.opTimeout)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := l.setup(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return l, nil
}

// connect dials url, retrying until ctx ends.
func connect(ctx context.Context, url string, o options) (*nats.Conn, error) {
	var last error
	for {
		nc, err := nats.Connect(url, nats.Name(o.clientName), nats.Timeout(2*time.Second),
			nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
		if err == nil {
			return nc, nil
		}
		last = err
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return nil, fmt.Errorf("jetstream: cannot reach the NATS server at %s (%v) before the context ended; is the node's embedded server running and the address right? %w", url, last, ctx.Err())
		}
	}
}

// setup creates or updates the stream, retrying while JetStream is not
// ready (no meta leader yet).
func (l *Log) setup(ctx context.Context) error {
	scfg := jetstream.StreamConfig{
		Name:        l.o.stream,
		Subjects:    []string{subjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    l.o.replicas,
		MaxMsgSize:  MaxPayload,
		AllowDirect: false, // reads of state must come from the leader
		Discard:     jetstream.DiscardOld,
	}
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
		st, err := l.js.CreateOrUpdateStream(actx, scfg)
		cancel()
		if err == nil {
			l.stream = st
		}
		if err == nil {
			return nil
		}
		last = err
		l.o.logger.Debug("jetstream: stream not ready yet, retrying", "err", err)
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return fmt.Errorf("jetstream: could not create the stream %s (R%d) before the context ended: %v; %s. A new cluster needs a quorum of its servers running to elect a leader: start more nodes or lower replicas: %w",
				l.o.stream, l.o.replicas, last, l.peersAnswering(), ctx.Err())
		}
	}
}

// peersAnswering says which server the connection reached and how many
// servers of its cluster it knows (routed to it), for error messages.
func (l *Log) peersAnswering() string {
	name := l.nc.ConnectedServerName()
	if name == "" {
		return "no server answered"
	}
	return fmt.Sprintf("server %q answered and knows %d other server(s) of its cluster", name, len(l.nc.DiscoveredServers()))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Close closes the connection.
func (l *Log) Close() error {
	l.nc.Close()
	return nil
}

func subjectOf(sid string) string { return subjectPrefix + SubjectToken(sid) }

// lockSubject waits for subj's write lock (or ctx's end) and returns its
// release.
func (l *Log) lockSubject(ctx context.Context, subj string) (func(), error) {
	l.mu.Lock()
	sl := l.locks[subj]
	if sl == nil {
		sl = &subjectLock{ch: make(chan struct{}, 1)}
		l.locks[subj] = sl
	}
	sl.refs++
	l.mu.Unlock()
	drop := func() {
		l.mu.Lock()
		if sl.refs--; sl.refs == 0 {
			delete(l.locks, subj)
		}
		l.mu.Unlock()
	}
	select {
	case sl.ch <- struct{}{}:
		return func() { <-sl.ch; drop() }, nil
	case <-ctx.Done():
		drop()
		return nil, fmt.Errorf("jetstream: waiting for another write to %s to finish: %w", subj, ctx.Err())
	}
}

// lastSeq returns the last sequence known for sid's subject, asking the
// stream leader when this Log has not seen the subject yet.
func (l *Log) lastSeq(ctx context.Context, sid string) (uint64, error) {
	subj := subjectOf(sid)
	l.mu.Lock()
	seq, ok := l.seqs[subj]
	unsure := l.uncertain[subj]
	l.mu.Unlock()
	switch {
	case unsure:
		return l.resolve(ctx, sid, seq)
	case ok:
		return seq, nil
	}
	return l.fetchLastSeq(ctx, sid)
}

// resolve finds sid's last sequence after seq, the last one this Log is
// sure of: the messages after it may only be this Log's own groups that
// were stored after all (their ids are re-sent by the next group, and Load
// keeps the later copy). A fence marker among them means another node took
// the session over: ErrFenced.
func (l *Log) resolve(ctx context.Context, sid string, seq uint64) (uint64, error) {
	subj := subjectOf(sid)
	for {
		m, err := l.getMsg(ctx, seq+1, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return 0, l.classify(err, "check the last append to session "+strconv.Quote(sid))
		}
		if m.Header.Get(hdrFence) != "" {
			return 0, fmt.Errorf("jetstream: session %q was fenced by node %q (marker at sequence %d) after this node's last write to it: %w", sid, m.Header.Get(hdrFence), m.Sequence, eventbus.ErrFenced)
		}
		seq = m.Sequence
	}
	l.mu.Lock()
	l.seqs[subj] = seq
	delete(l.uncertain, subj)
	l.mu.Unlock()
	return seq, nil
}

// fetchLastSeq asks the stream leader for sid's subject's last sequence (0
// when it has none) and remembers it.
func (l *Log) fetchLastSeq(ctx context.Context, sid string) (uint64, error) {
	subj := subjectOf(sid)
	var seq uint64
	var m *jetstream.RawStreamMsg
	err := l.untilLeader(ctx, func(ctx context.Context) (err error) {
		m, err = l.stream.GetLastMsgForSubject(ctx, subj)
		return err
	})
	switch {
	case err == nil:
		seq = m.Sequence
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return 0, l.classify(err, "read the last sequence of session "+strconv.Quote(sid))
	}
	l.setSeq(subj, seq)
	return seq, nil
}

// getMsg reads the message at seq on subj (or the next one after it there)
// from the stream leader.
func (l *Log) getMsg(ctx context.Context, seq uint64, subj string) (m *jetstream.RawStreamMsg, err error) {
	err = l.untilLeader(ctx, func(ctx context.Context) error {
		m, err = l.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		return err
	})
	return m, err
}

func (l *Log) setSeq(subj string, seq uint64) {
	l.mu.Lock()
	delete(l.uncertain, subj)
	l.seqs[subj] = seq
	l.mu.Unlock()
}

// AppendRecords publishes recs as one message (or several chained ones,
// when over maxGroupBytes) on sid's subject, each expecting the subject's
// last sequence to be the one this Log knows. The caller holds no lock;
// AppendRecords holds sid's for all of its publishes.
func (l *Log) AppendRecords(ctx context.Context, sid string, recs []eventbus.ReplicaRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return err
	}
	subj := subjectOf(sid)
	unlock, err := l.lockSubject(ctx, subj)
	if err != nil {
		return err
	}
	defer unlock()
	seq, err := l.lastSeq(ctx, sid)
	if err != nil {
		return err
	}
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) && (n == 0 || size+len(recs[n].JSON)+1 <= maxGroupBytes) {
			size += len(recs[n].JSON) + 1
			n++
		}
		body, err := groupBody(recs[:n])
		if err != nil {
			return err
		}
		msg := nats.NewMsg(subj)
		msg.Data = body
		msg.Header.Set(hdrFirstID, strconv.FormatInt(recs[0].ID, 10))
		msg.Header.Set(hdrLastID, strconv.FormatInt(recs[n-1].ID, 10))
		if seq, err = l.publish(ctx, sid, msg, seq, "append to session "+strconv.Quote(sid)); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// publish sends msg expecting subject sequence expect (the caller holds
// the subject's lock), remembers the new
// sequence and returns it. When the stream holds more than expect, the
// messages after it decide: a fence marker among them means another node
// owns the session (ErrFenced); otherwise they are this Log's own earlier
// publishes whose outcome it did not learn (timed out, then committed by a
// leader elected later), and msg is sent after them.
func (l *Log) publish(ctx context.Context, sid string, msg *nats.Msg, expect uint64, what string) (uint64, error) {
	deadline := time.Now().Add(l.o.opTimeout)
	for {
		var ack *jetstream.PubAck
		err := l.untilLeader(ctx, func(ctx context.Context) (err error) {
			ack, err = l.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(expect), jetstream.WithExpectStream(l.o.stream))
			return err
		})
		if err == nil {
			l.setSeq(msg.Subject, ack.Sequence)
			return ack.Sequence, nil
		}
		if !isWrongLastSeq(err) {
			err = l.classify(err, what)
			if errors.Is(err, eventbus.ErrReplicaUnavailable) {
				l.mu.Lock()
				l.seqs[msg.Subject] = expect
				l.uncertain[msg.Subject] = true
				l.mu.Unlock()
			}
			return 0, err
		}
		l.refused.Add(1)
		next, rerr := l.resolve(ctx, sid, expect)
		if rerr != nil {
			return 0, fmt.Errorf("jetstream: %s: %w", what, rerr) // ErrFenced when a fence marker follows expect
		}
		if next != expect {
			expect = next
			continue
		}
		// Nothing follows expect, yet the check failed: a replicated stream
		// refuses the check while an earlier proposal on the subject is in
		// flight (err code 10164). Wait for it to settle, within the bound.
		if time.Now().After(deadline) || !sleepCtx(ctx, 50*time.Millisecond) {
			l.mu.Lock()
			l.uncertain[msg.Subject] = true
			l.mu.Unlock()
			return 0, l.classify(fmt.Errorf("an earlier publish is still in flight: %w", context.DeadlineExceeded), what)
		}
	}
}

// isWrongLastSeq reports JetStream's refusal of an expected-last-sequence
// check (10071; 10164 on replicated streams).
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// classify wraps err: transport failures and "no leader" answers mean the
// quorum is gone (eventbus.ErrReplicaUnavailable); anything else is a plain
// error.
func (l *Log) classify(err error, what string) error {
	var apiErr *jetstream.APIError
	unavailable := leaderMissing(err) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.As(err, &apiErr) && apiErr.Code == 500
	if unavailable {
		return fmt.Errorf("jetstream: %s: the replicated store did not confirm within %v (%v): the cluster has lost its quorum (fewer than a majority of the %d replicas are reachable); nothing was acknowledged. Restart the stopped nodes or repair the network, then retry: %w",
			what, l.o.opTimeout, err, l.o.replicas, eventbus.ErrReplicaUnavailable)
	}
	return fmt.Errorf("jetstream: %s: %w", what, err)
}
