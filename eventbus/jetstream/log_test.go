package jetstream

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
)

func TestHydrateFromLoadReproducesTheSessionAndExportsLikeOpenHands(t *testing.T) {
	c := startCluster(t, 1)
	l := openLog(t, c.url())
	src := openStore(t, l, nil)
	const sid = "sess.with_dots.and_underscores"
	s, err := src.Open(sid)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 25)
	if err := src.SaveMeta(sid, []byte(`{"request":{"agent":"x"}}`)); err != nil {
		t.Fatal(err)
	}
	want := allItems(t, s)
	s.Close()

	items, meta, err := l.Load(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	if string(meta) != `{"request":{"agent":"x"}}` {
		t.Fatalf("meta = %s", meta)
	}
	dst := openStore(t, nil, nil)
	if err := dst.Hydrate(context.Background(), sid, items, meta); err != nil {
		t.Fatal(err)
	}
	h, err := dst.Open(sid)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got := allItems(t, h)
	if len(got) != len(want) {
		t.Fatalf("hydrated %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || !bytes.Equal(got[i].JSON, want[i].JSON) {
			t.Fatalf("event %d differs:\n got %d %s\nwant %d %s", i, got[i].ID, got[i].JSON, want[i].ID, want[i].JSON)
		}
	}
	if m, err := dst.LoadMeta(sid); err != nil || string(m) != string(meta) {
		t.Fatalf("hydrated meta = %s, %v", m, err)
	}
	root := t.TempDir()
	if err := h.Export(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "sessions", sid, "events", "24.json"))
	if err != nil || !bytes.Equal(b, want[24].JSON) {
		t.Fatalf("exported event 24 = %s, %v", b, err)
	}
	// Appends continue after the hydrated ids.
	e, err := h.Append(context.Background(), runAction("next"))
	if err != nil || e.ID != 25 {
		t.Fatalf("append after hydrate: %v, %v", e, err)
	}
	sids, err := l.Sessions(context.Background())
	if err != nil || len(sids) != 1 || sids[0] != sid {
		t.Fatalf("Sessions = %v, %v", sids, err)
	}
}

func TestAFencedOwnerCannotAppendAndKeepsItsFileConsistent(t *testing.T) {
	c := startCluster(t, 1)
	old, taker := openLog(t, c.url()), openLog(t, c.url())
	dirA := t.TempDir()
	a := openStoreAt(t, dirA, old, nil)
	s, err := a.Open("s1")
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 5)
	if err := taker.Fence(context.Background(), "s1", "node-b"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(context.Background(), runAction("after the fence"))
	if !errors.Is(err, eventbus.ErrFenced) || !strings.Contains(err.Error(), `"s1"`) {
		t.Fatalf("append of the fenced owner: %v, want ErrFenced naming the session", err)
	}
	if s.LastID() != 4 || len(allItems(t, s)) != 5 {
		t.Fatalf("fenced append left last id %d", s.LastID())
	}
	if _, err := s.Append(context.Background(), runAction("again")); !errors.Is(err, eventbus.ErrFenced) {
		t.Fatalf("second append of the fenced owner: %v", err)
	}
	s.Close()
	a.Close()
	// The file holds exactly the acknowledged events.
	re := openStoreAt(t, dirA, nil, nil)
	rs, err := re.Open("s1")
	if err != nil {
		t.Fatal(err)
	}
	if rs.Recovered() != nil || rs.LastID() != 4 {
		t.Fatalf("reopened: last id %d, recovered %v", rs.LastID(), rs.Recovered())
	}
	rs.Close()

	// The new owner loads (the marker is skipped) and goes on without a gap.
	items, _, err := taker.Load(context.Background(), "s1")
	if err != nil || len(items) != 5 {
		t.Fatalf("Load: %d items, %v", len(items), err)
	}
	b := openStore(t, taker, nil)
	if err := b.Hydrate(context.Background(), "s1", items, nil); err != nil {
		t.Fatal(err)
	}
	bs, err := b.Open("s1")
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	if e, err := bs.Append(context.Background(), runAction("new owner")); err != nil || e.ID != 5 {
		t.Fatalf("new owner's append: %v, %v", e, err)
	}
}

func TestReplicatedDeleteAndMetaAndImport(t *testing.T) {
	c := startCluster(t, 1)
	l := openLog(t, c.url())
	st := openStore(t, l, nil)
	s, _ := st.Open("a")
	appendN(t, s, 3)
	items := allItems(t, s)
	s.Close()
	if err := st.ImportItems(context.Background(), "fork", items); err != nil {
		t.Fatal(err)
	}
	got, _, err := l.Load(context.Background(), "fork")
	if err != nil || len(got) != 3 || !bytes.Equal(got[2].JSON, items[2].JSON) {
		t.Fatalf("imported events in the replica: %d, %v", len(got), err)
	}
	if err := st.Delete("fork"); err != nil {
		t.Fatal(err)
	}
	if got, meta, err := l.Load(context.Background(), "fork"); err != nil || len(got) != 0 || meta != nil {
		t.Fatalf("after Delete the replica holds %d events, meta %s, %v", len(got), meta, err)
	}
}

func TestBadInputGetsClearErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	port := freePorts(t, 1)[0]
	_, err := Open(ctx, "nats://127.0.0.1:"+itoa(port), WithLogger(quietLogger()))
	if err == nil || !strings.Contains(err.Error(), "cannot reach the NATS server") {
		t.Fatalf("unreachable server: %v", err)
	}
	if _, err := Open(context.Background(), "nats://127.0.0.1:1", WithReplicas(7)); err == nil || !strings.Contains(err.Error(), "replicas = 7") {
		t.Fatalf("bad replicas: %v", err)
	}
	c := startCluster(t, 1)
	l := openLog(t, c.url())
	for _, sid := range []string{"", "../x", "a b", ".hidden"} {
		if err := l.AppendRecords(context.Background(), sid, []eventbus.ReplicaRecord{{ID: 0, JSON: []byte(`{"id":0}`)}}); err == nil {
			t.Errorf("AppendRecords(%q) accepted a bad session id", sid)
		}
		if _, _, err := l.Load(context.Background(), sid); err == nil {
			t.Errorf("Load(%q) accepted a bad session id", sid)
		}
	}
	if _, err := StartServer(context.Background(), ServerConfig{NodeID: "x"}); err == nil || !strings.Contains(err.Error(), "StoreDir") {
		t.Fatalf("server without a store dir: %v", err)
	}
	if _, err := StartServer(context.Background(), ServerConfig{NodeID: "x", StoreDir: t.TempDir(), Routes: []string{"nohost"}}); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Fatalf("bad route: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
