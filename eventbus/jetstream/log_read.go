package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"corral/eventbus"
)

// Load reads session sid whole from the stream leader: its events in id
// order (fence markers and metadata messages skipped; a group that re-sends
// ids replaces them) and its metadata record, the body of the last metadata
// message (nil if none), for eventbus.Store.Hydrate. This Log then writes
// after the last message it read.
func (l *Log) Load(ctx context.Context, sid string) ([]*eventbus.Item, []byte, error) {
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return nil, nil, err
	}
	subj := subjectOf(sid)
	unlock, err := l.lockSubject(ctx, subj)
	if err != nil {
		return nil, nil, err
	}
	last, err := l.fetchLastSeq(ctx, sid)
	unlock()
	if err != nil {
		return nil, nil, err
	}
	var items []*eventbus.Item
	var meta []byte
	for seq := uint64(1); last > 0 && seq <= last; {
		m, err := l.getMsg(ctx, seq, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break // purged meanwhile
		}
		if err != nil {
			return nil, nil, l.classify(err, "load session "+strconv.Quote(sid))
		}
		seq = m.Sequence + 1
		if m.Header.Get(hdrMeta) != "" {
			meta = m.Data
			continue
		}
		if items, err = mergeGroup(items, m); err != nil {
			return nil, nil, fmt.Errorf("jetstream: load session %q: message %d: %w", sid, m.Sequence, err)
		}
	}
	if meta != nil && len(meta) == 0 {
		meta = nil // not a record eventbus could have written (it needs JSON)
	}
	return items, meta, nil
}

// mergeGroup adds the records of group message m to items. Records whose
// ids a later group holds again were stored but never acknowledged (see
// eventbus's replicate): the later copy wins.
func mergeGroup(items []*eventbus.Item, m *jetstream.RawStreamMsg) ([]*eventbus.Item, error) {
	if m.Header.Get(hdrFence) != "" {
		return items, nil
	}
	first, err1 := strconv.ParseInt(m.Header.Get(hdrFirstID), 10, 64)
	last, err2 := strconv.ParseInt(m.Header.Get(hdrLastID), 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return nil, fmt.Errorf("bad %s/%s headers %q/%q", hdrFirstID, hdrLastID, m.Header.Get(hdrFirstID), m.Header.Get(hdrLastID))
	}
	recs, err := splitBody(m.Data, first, last)
	if err != nil {
		return nil, err
	}
	keep := sort.Search(len(items), func(i int) bool { return items[i].ID >= first })
	return append(items[:keep], recs...), nil
}

// Fence publishes a fence marker naming nodeID after sid's current last
// message, so that any other Log's next append to sid fails wrapping
// eventbus.ErrFenced; this Log then appends after the marker. A race with
// another writer is retried until ctx ends.
func (l *Log) Fence(ctx context.Context, sid, nodeID string) error {
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return err
	}
	if nodeID == "" {
		return errors.New("jetstream: Fence needs the fencing node's id")
	}
	subj := subjectOf(sid)
	for {
		err := l.fenceOnce(ctx, sid, subj, nodeID)
		if err == nil {
			return nil
		}
		if !errors.Is(err, eventbus.ErrFenced) {
			return fmt.Errorf("jetstream: fence session %q for node %q: %w", sid, nodeID, err)
		}
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return fmt.Errorf("jetstream: fence session %q for node %q: other writers kept racing until the context ended: %w", sid, nodeID, ctx.Err())
		}
	}
}

// fenceOnce publishes one fence marker after sid's last message as the
// stream leader reports it now.
func (l *Log) fenceOnce(ctx context.Context, sid, subj, nodeID string) error {
	unlock, err := l.lockSubject(ctx, subj)
	if err != nil {
		return err
	}
	defer unlock()
	seq, err := l.fetchLastSeq(ctx, sid)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subj)
	msg.Header.Set(hdrFence, nodeID)
	_, err = l.publish(ctx, sid, msg, seq, "publish the fence marker")
	return err
}

// SaveMeta stores sid's metadata record as a message on sid's own subject
// (header Corral-Meta, body data), fenced like an append: it expects the
// subject's last sequence to be the one this Log knows, so after another
// node's Fence it fails wrapping eventbus.ErrFenced and the new owner's
// record stays the last one. Load returns the last record.
func (l *Log) SaveMeta(ctx context.Context, sid string, data []byte) error {
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return err
	}
	if len(data) == 0 || len(data) > maxGroupBytes {
		return fmt.Errorf("jetstream: the metadata record of session %q is %d bytes; it must hold 1 to %d bytes of JSON", sid, len(data), maxGroupBytes)
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
	msg := nats.NewMsg(subj)
	msg.Data = data
	msg.Header.Set(hdrMeta, "1")
	_, err = l.publish(ctx, sid, msg, seq, "save the metadata of session "+strconv.Quote(sid))
	return err
}

// Delete purges sid's subject: its events, metadata records and fence
// markers together.
func (l *Log) Delete(ctx context.Context, sid string) error {
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return err
	}
	subj := subjectOf(sid)
	unlock, err := l.lockSubject(ctx, subj)
	if err != nil {
		return err
	}
	defer unlock()
	purge := func(ctx context.Context) error { return l.stream.Purge(ctx, jetstream.WithPurgeSubject(subj)) }
	if err := l.untilLeader(ctx, purge); err != nil {
		return l.classify(err, "delete session "+strconv.Quote(sid))
	}
	l.mu.Lock()
	delete(l.seqs, subj)
	delete(l.uncertain, subj)
	l.mu.Unlock()
	return nil
}

// Sessions lists the sessions with events or a metadata record (every
// session with a subject in the stream), sorted.
func (l *Log) Sessions(ctx context.Context) ([]string, error) {
	var info *jetstream.StreamInfo
	err := l.untilLeader(ctx, func(ctx context.Context) (err error) {
		info, err = l.stream.Info(ctx, jetstream.WithSubjectFilter(subjectPrefix+">"))
		return err
	})
	if err != nil {
		return nil, l.classify(err, "list sessions")
	}
	out := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		tok := strings.TrimPrefix(subj, subjectPrefix)
		sid, err := SessionOfToken(tok)
		if err != nil {
			l.o.logger.Warn("jetstream: skipping a subject that names no session", "token", tok, "err", err)
			continue
		}
		out = append(out, sid)
	}
	sort.Strings(out)
	return out, nil
}

// ReplicationLag reports, for metrics, how many operations the most lagging
// replica of the stream is behind its leader (0 for R1 or when all are
// current), and how many replicas are offline.
func (l *Log) ReplicationLag(ctx context.Context) (lag uint64, offline int, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, 0, l.classify(err, "read the stream's replication state")
	}
	if info.Cluster == nil {
		return 0, 0, nil
	}
	for _, p := range info.Cluster.Replicas {
		if p.Offline {
			offline++
		}
		lag = max(lag, p.Lag)
	}
	return lag, offline, nil
}
