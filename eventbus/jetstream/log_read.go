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
// order (fence markers skipped; a group that re-sends ids replaces them)
// and its metadata record (nil if none), for eventbus.Store.Hydrate. This
// Log then appends after the last message it read.
func (l *Log) Load(ctx context.Context, sid string) ([]*eventbus.Item, []byte, error) {
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return nil, nil, err
	}
	last, err := l.fetchLastSeq(ctx, sid)
	if err != nil {
		return nil, nil, err
	}
	subj := subjectOf(sid)
	var items []*eventbus.Item
	for seq := uint64(1); last > 0 && seq <= last; {
		gctx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
		m, err := l.stream.GetMsg(gctx, seq, jetstream.WithGetMsgSubject(subj))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break // purged meanwhile
		}
		if err != nil {
			return nil, nil, l.classify(err, "load session "+strconv.Quote(sid))
		}
		if items, err = mergeGroup(items, m); err != nil {
			return nil, nil, fmt.Errorf("jetstream: load session %q: message %d: %w", sid, m.Sequence, err)
		}
		seq = m.Sequence + 1
	}
	meta, err := l.loadMeta(ctx, sid)
	if err != nil {
		return nil, nil, err
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

// loadMeta returns sid's metadata record, nil if it has none.
func (l *Log) loadMeta(ctx context.Context, sid string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
	defer cancel()
	e, err := l.meta.Get(ctx, SubjectToken(sid))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, nil
	case err != nil:
		return nil, l.classify(err, "load the metadata of session "+strconv.Quote(sid))
	}
	return e.Value(), nil
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
	for {
		seq, err := l.fetchLastSeq(ctx, sid)
		if err != nil {
			return err
		}
		msg := nats.NewMsg(subjectOf(sid))
		msg.Header.Set(hdrFence, nodeID)
		_, err = l.publish(ctx, sid, msg, seq)
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

// SaveMeta stores sid's metadata record in the corral_meta bucket.
func (l *Log) SaveMeta(ctx context.Context, sid string, data []byte) error {
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
	defer cancel()
	if _, err := l.meta.Put(ctx, SubjectToken(sid), data); err != nil {
		return l.classify(err, "save the metadata of session "+strconv.Quote(sid))
	}
	return nil
}

// Delete purges sid's messages from the stream and its metadata record.
// A Log that still appends to sid afterwards is fenced.
func (l *Log) Delete(ctx context.Context, sid string) error {
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
	defer cancel()
	subj := subjectOf(sid)
	if err := l.stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		return l.classify(err, "delete the events of session "+strconv.Quote(sid))
	}
	l.mu.Lock()
	delete(l.seqs, subj)
	delete(l.uncertain, subj)
	l.mu.Unlock()
	if err := l.meta.Purge(ctx, SubjectToken(sid)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return l.classify(err, "delete the metadata of session "+strconv.Quote(sid))
	}
	return nil
}

// Sessions lists the sessions with events or a metadata record, sorted.
func (l *Log) Sessions(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
	defer cancel()
	seen := map[string]bool{}
	info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(subjectPrefix+">"))
	if err != nil {
		return nil, l.classify(err, "list sessions")
	}
	for subj := range info.State.Subjects {
		seen[strings.TrimPrefix(subj, subjectPrefix)] = true
	}
	keys, err := l.meta.ListKeys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, l.classify(err, "list session metadata")
	}
	if keys != nil {
		for k := range keys.Keys() {
			seen[k] = true
		}
		keys.Stop() // fails once the lister ended by itself; nothing to report
	}
	out := make([]string, 0, len(seen))
	for tok := range seen {
		sid, err := SessionOfToken(tok)
		if err != nil {
			l.o.logger.Warn("jetstream: skipping a subject or key that names no session", "token", tok, "err", err)
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
