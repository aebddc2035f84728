package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"corral/eventbus"
)

// takeOver does what a node adopting sid does (actors.Engine.Adopt): fence,
// load, hydrate a store of its own.
func takeOver(t *testing.T, l *Log, sid, node string) *eventbus.Store {
	t.Helper()
	if err := l.Fence(context.Background(), sid, node); err != nil {
		t.Fatal(err)
	}
	items, meta, err := l.Load(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, l, nil)
	if err := st.Hydrate(context.Background(), sid, items, meta); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAFencedOwnersSaveMetaFailsAndTheNewOwnersRecordStays(t *testing.T) {
	c := startCluster(t, 1)
	old, taker := openLog(t, c.url()), openLog(t, c.url())
	a := openStore(t, old, nil)
	s, err := a.Open("s1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendN(t, s, 3)
	if err := a.SaveMeta("s1", []byte(`{"owner":"a","sandbox":"box-a"}`)); err != nil {
		t.Fatal(err)
	}

	// Node a is paused; node b takes the session over and writes its record.
	b := takeOver(t, taker, "s1", "node-b")
	if err := b.SaveMeta("s1", []byte(`{"owner":"b","sandbox":"box-b"}`)); err != nil {
		t.Fatal(err)
	}

	// Node a resumes: its metadata write is fenced before any append.
	err = a.SaveMeta("s1", []byte(`{"owner":"a","status":"stale"}`))
	if !errors.Is(err, eventbus.ErrFenced) || !strings.Contains(err.Error(), `"s1"`) || !strings.Contains(err.Error(), "node-b") {
		t.Fatalf("stale owner's SaveMeta: %v, want ErrFenced naming the session and the new owner", err)
	}
	if err := old.SaveMeta(context.Background(), "s1", []byte(`{"owner":"a"}`)); !errors.Is(err, eventbus.ErrFenced) {
		t.Fatalf("stale Log's SaveMeta again: %v, want ErrFenced", err)
	}
	if m, err := a.LoadMeta("s1"); err != nil || string(m) != `{"owner":"a","sandbox":"box-a"}` {
		t.Fatalf("the refused record changed the stale owner's local copy: %s, %v", m, err)
	}
	if _, err := s.Append(context.Background(), runAction("stale")); !errors.Is(err, eventbus.ErrFenced) {
		t.Fatalf("stale owner's append: %v, want ErrFenced", err)
	}

	reader := openLog(t, c.url())
	items, meta, err := reader.Load(context.Background(), "s1")
	if err != nil || len(items) != 3 || string(meta) != `{"owner":"b","sandbox":"box-b"}` {
		t.Fatalf("Load after the stale writes: %d items, meta %s, %v; want 3 items and b's record", len(items), meta, err)
	}
}

func TestSaveMetaAndAppendsRacingOnOneSessionNeverFalselyFence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers int
		rounds  int
	}{
		{name: "standalone R1", servers: 1, rounds: 200},
		{name: "3-server R3", servers: 3, rounds: 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.servers > 1 && testing.Short() {
				t.Skip("starts a 3-server JetStream cluster")
			}
			c := startCluster(t, tc.servers)
			l := openLog(t, c.url(), WithReplicas(tc.servers))
			st := openStore(t, l, nil)
			s, err := st.Open("race")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var wg sync.WaitGroup
			errs := make(chan error, 2*tc.rounds)
			wg.Add(2)
			go func() {
				defer wg.Done()
				for i := 0; i < tc.rounds; i++ {
					if _, err := s.Append(context.Background(), runAction(fmt.Sprintf("echo %d", i))); err != nil {
						errs <- fmt.Errorf("append %d: %w", i, err)
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				for i := 0; i < tc.rounds; i++ {
					if err := st.SaveMeta("race", []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
						errs <- fmt.Errorf("save meta %d: %w", i, err)
						return
					}
				}
			}()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			items, meta, err := l.Load(context.Background(), "race")
			if err != nil || len(items) != tc.rounds || string(meta) != fmt.Sprintf(`{"n":%d}`, tc.rounds-1) {
				t.Fatalf("Load: %d items, meta %s, %v; want %d items and the last record", len(items), meta, err, tc.rounds)
			}
			if n := l.refused.Load(); n != 0 {
				t.Fatalf("the stream refused %d of this Log's publishes for a wrong expected sequence: its writes of one session overlapped", n)
			}
			l.mu.Lock()
			locks := len(l.locks)
			l.mu.Unlock()
			if locks != 0 {
				t.Fatalf("%d per-session locks left after the writes ended", locks)
			}
		})
	}
}

func TestMetaRoundTripsThroughLoadAndHydrateAndTheLastRecordWins(t *testing.T) {
	c := startCluster(t, 1)
	l := openLog(t, c.url())
	src := openStore(t, l, nil)
	s, err := src.Open("rt")
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 2)
	if err := src.SaveMeta("rt", []byte(`{"status":"starting"}`)); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 2)
	if err := src.SaveMeta("rt", []byte(`{"status":"running","token":"t"}`)); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 1)
	s.Close()

	dst := takeOver(t, openLog(t, c.url()), "rt", "node-b")
	if m, err := dst.LoadMeta("rt"); err != nil || string(m) != `{"status":"running","token":"t"}` {
		t.Fatalf("hydrated meta = %s, %v", m, err)
	}
	h, err := dst.Open("rt")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got := allItems(t, h)
	if len(got) != 5 {
		t.Fatalf("hydrated %d events, want 5 (metadata messages are no events)", len(got))
	}
	for i, it := range got {
		if it.ID != int64(i) {
			t.Fatalf("event %d has id %d", i, it.ID)
		}
	}
}

func TestASessionWithOnlyMetaIsListedAndLoadsWithNoEvents(t *testing.T) {
	c := startCluster(t, 1)
	l := openLog(t, c.url())
	st := openStore(t, l, nil)
	if err := st.SaveMeta("only.meta_x", []byte(`{"request":{}}`)); err != nil {
		t.Fatal(err)
	}
	sids, err := l.Sessions(context.Background())
	if err != nil || len(sids) != 1 || sids[0] != "only.meta_x" {
		t.Fatalf("Sessions = %v, %v", sids, err)
	}
	items, meta, err := openLog(t, c.url()).Load(context.Background(), "only.meta_x")
	if err != nil || len(items) != 0 || string(meta) != `{"request":{}}` {
		t.Fatalf("Load = %d items, meta %s, %v", len(items), meta, err)
	}
	if err := st.Delete("only.meta_x"); err != nil {
		t.Fatal(err)
	}
	if sids, err := l.Sessions(context.Background()); err != nil || len(sids) != 0 {
		t.Fatalf("Sessions after Delete = %v, %v", sids, err)
	}
	if items, meta, err := l.Load(context.Background(), "only.meta_x"); err != nil || len(items) != 0 || meta != nil {
		t.Fatalf("Load after Delete = %d items, meta %s, %v", len(items), meta, err)
	}
	// The session id can be used again after Delete.
	if err := l.SaveMeta(context.Background(), "only.meta_x", []byte(`{"again":true}`)); err != nil {
		t.Fatalf("SaveMeta after Delete: %v", err)
	}
}

func TestSaveMetaRefusesAnEmptyOrOversizedRecord(t *testing.T) {
	c := startCluster(t, 1)
	l := openLog(t, c.url())
	for name, data := range map[string][]byte{"empty": nil, "oversized": make([]byte, maxGroupBytes+1)} {
		err := l.SaveMeta(context.Background(), "m", data)
		if err == nil || !strings.Contains(err.Error(), "metadata record") {
			t.Errorf("%s record: %v, want an error naming the metadata record", name, err)
		}
	}
}
