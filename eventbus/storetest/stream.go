package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"corral/eventbus"
)

// streamTests are the conformance tests, by name.
var streamTests = []struct {
	name string
	fn   func(*testing.T, Opener)
}{
	{"AppendReturnsAStoredCopyWithIDAndTimestamp", testAppendReturnsAStoredCopyWithIDAndTimestamp},
	{"ConcurrentAppendersGetGapFreeIDs", testConcurrentAppendersGetGapFreeIDs},
	{"SubscribeFromIDHasNoGapOrDuplicateAtTheSeam", testSubscribeFromIDHasNoGapOrDuplicateAtTheSeam},
	{"SlowSubscriberOverflowsWithoutSlowingOthersAndCanResume", testSlowSubscriberOverflowsWithoutSlowingOthersAndCanResume},
	{"SubscriptionsEndOnCancelCloseAndStreamClose", testSubscriptionsEndOnCancelCloseAndStreamClose},
	{"SubscribeFromAFutureIDWaitsForIt", testSubscribeFromAFutureIDWaitsForIt},
	{"AppendAfterContextCancelIsRefused", testAppendAfterContextCancelIsRefused},
	{"SubscribeWithAnAlreadyCancelledContextEndsCleanly", testSubscribeWithAnAlreadyCancelledContextEndsCleanly},
	{"ReusedCommitBuffersNeverChangeDeliveredEvents", testReusedCommitBuffersNeverChangeDeliveredEvents},
	{"SearchAppliesOpenHandsFilterSemantics", testSearchAppliesOpenHandsFilterSemantics},
	{"StreamMasksBeforePersistAndFanOut", testStreamMasksBeforePersistAndFanOut},
}

func testAppendReturnsAStoredCopyWithIDAndTimestamp(t *testing.T, open Opener) {
	s := openStream(t, open, nil)
	in := runAction("echo hi")
	got := mustAppend(t, s, in)
	if in.ID != eventbus.InvalidID || in.Timestamp != "" {
		t.Fatal("Append modified its argument")
	}
	if got.ID != 0 || len(got.Timestamp) != len(eventbus.TimestampLayout) {
		t.Fatalf("stored event id %d timestamp %q", got.ID, got.Timestamp)
	}
	if _, err := time.ParseInLocation(eventbus.TimestampLayout, got.Timestamp, time.Local); err != nil {
		t.Fatalf("timestamp %q is not OpenHands' format: %v", got.Timestamp, err)
	}
	withTS := runAction("echo 2")
	withTS.Timestamp = "2025-01-27T23:16:56.951967"
	if got := mustAppend(t, s, withTS); got.Timestamp != withTS.Timestamp || got.ID != 1 {
		t.Fatalf("given timestamp not kept: %+v", got)
	}
	if _, err := s.Append(context.Background(), got); err == nil || !strings.Contains(err.Error(), "already has id") {
		t.Fatalf("re-appending a stored event: err = %v", err)
	}
	it, err := s.Get(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := it.Event()
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != 0 || ev.Action.(*eventbus.CmdRunAction).Command != "echo hi" || ev.Timestamp != got.Timestamp && ev.Timestamp == "" {
		t.Fatalf("stored event decodes to %+v", ev)
	}
	if !strings.HasPrefix(string(it.JSON), `{"id":0,"timestamp":"`) {
		t.Fatalf("stored JSON does not start like OpenHands': %s", it.JSON)
	}
}

func testConcurrentAppendersGetGapFreeIDs(t *testing.T, open Opener) {
	for _, pol := range []eventbus.SyncPolicy{eventbus.SyncBatch, eventbus.SyncNever} {
		t.Run(string(pol), func(t *testing.T) {
			s := openStream(t, open, func(c *eventbus.Config) { c.Sync = pol })
			const writers, per = 50, 40
			ids := make(chan int64, writers*per)
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						e, err := s.Append(context.Background(), runObs(0, i))
						if err != nil {
							t.Error(err)
							return
						}
						ids <- e.ID
					}
				}()
			}
			wg.Wait()
			close(ids)
			var got []int64
			for id := range ids {
				got = append(got, id)
			}
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			for i, id := range got {
				if id != int64(i) {
					t.Fatalf("ids not gap-free: position %d has id %d", i, id)
				}
			}
			items, err := s.Search(context.Background(), eventbus.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != writers*per {
				t.Fatalf("%d stored, want %d", len(items), writers*per)
			}
			checkConsecutive(t, items, 0)
		})
	}
}

func testSubscribeFromIDHasNoGapOrDuplicateAtTheSeam(t *testing.T, open Opener) {
	s := openStream(t, open, func(c *eventbus.Config) { c.Sync = eventbus.SyncNever; c.SubscriberBuffer = 1 << 16 })
	const pre, during = 300, 2000
	for i := 0; i < pre; i++ {
		mustAppend(t, s, runObs(0, i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < during/4; i++ {
				if _, err := s.Append(ctx, runObs(0, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Subscribers start at various points while appends run, so each one's
	// switch from replay to live happens at a different moment.
	froms := []int64{0, 1, 150, 299, 300, 301, 1000}
	var subWG sync.WaitGroup
	for _, from := range froms {
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			sub, err := s.Subscribe(ctx, from)
			if err != nil {
				t.Error(err)
				return
			}
			defer sub.Close()
			items, err := receiveN(sub, int(pre+during-from))
			if err != nil {
				t.Errorf("subscriber from %d: %v", from, err)
				return
			}
			for i, it := range items {
				if it.ID != from+int64(i) {
					t.Errorf("subscriber from %d: item %d has id %d (gap or duplicate at the seam)", from, i, it.ID)
					return
				}
			}
		}()
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	subWG.Wait()
}

func testSlowSubscriberOverflowsWithoutSlowingOthersAndCanResume(t *testing.T, open Opener) {
	const buf, total = 16, 500
	s := openStream(t, open, func(c *eventbus.Config) { c.Sync = eventbus.SyncNever; c.SubscriberBuffer = buf })
	ctx := context.Background()
	slow, err := s.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := s.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	// Both must be live before the first append: a subscription whose
	// replay goroutine has not run yet replays from the store instead,
	// blocking rather than overflowing, and would then catch up and wait
	// for more (the range below would never end).
	for deadline := time.Now().Add(time.Minute); s.LiveSubscribers() != 2; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 subscriptions live after a minute", s.LiveSubscribers())
		}
		time.Sleep(time.Millisecond) // polling a condition, not synchronising on time
	}
	// The fast subscriber reports each id it receives; the writer paces
	// itself on the fast one only, so the fast one never lags, while the
	// slow one reads nothing until the writer is done.
	seen := make(chan int64)
	fastErr := make(chan error, 1)
	go func() {
		for i := int64(0); i < total; i++ {
			it, ok := <-fast.C()
			if !ok {
				fastErr <- fmt.Errorf("fast subscriber ended at %d: %v", i, fast.Err())
				close(seen)
				return
			}
			if it.ID != i {
				fastErr <- fmt.Errorf("fast subscriber got id %d, want %d", it.ID, i)
				close(seen)
				return
			}
			seen <- it.ID
		}
		close(fastErr)
	}()
	for i := 0; i < total; i++ {
		mustAppend(t, s, runObs(0, i))
		if _, ok := <-seen; !ok {
			t.Fatal(<-fastErr)
		}
	}
	if err := <-fastErr; err != nil {
		t.Fatal(err)
	}

	var got []*eventbus.Item
	for it := range slow.C() {
		got = append(got, it)
	}
	var ovf *eventbus.OverflowError
	if err := slow.Err(); !errors.As(err, &ovf) || !errors.Is(err, eventbus.ErrSubscriberOverflow) {
		t.Fatalf("slow subscriber ended with %v, want *OverflowError", err)
	}
	if len(got) == 0 || ovf.LastID != got[len(got)-1].ID || ovf.Buffer != buf {
		t.Fatalf("overflow says last id %d (buffer %d); the channel delivered up to %d", ovf.LastID, ovf.Buffer, got[len(got)-1].ID)
	}
	checkConsecutive(t, got, 0)
	if !strings.Contains(ovf.Error(), "resubscribe from id") {
		t.Fatalf("overflow message does not say how to resume: %s", ovf)
	}
	resumed, err := s.Subscribe(ctx, ovf.ResumeFrom())
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	rest := collect(t, resumed, total-len(got))
	checkConsecutive(t, rest, ovf.ResumeFrom())
}

func testSubscriptionsEndOnCancelCloseAndStreamClose(t *testing.T, open Opener) {
	st := open(t, func(c *eventbus.Config) { c.SubscriberBuffer = 4 })
	s, err := st.Open("s")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		mustAppend(t, s, runObs(0, i))
	}
	drain := func(sub *eventbus.Subscription) {
		for range sub.C() {
		}
	}
	// Cancelled while replaying (nobody reads, the replay blocks on send).
	ctx, cancel := context.WithCancel(context.Background())
	replaying, _ := s.Subscribe(ctx, 0)
	cancel()
	drain(replaying)
	if !errors.Is(replaying.Err(), context.Canceled) {
		t.Fatalf("replaying subscription: Err = %v, want context.Canceled", replaying.Err())
	}
	// Cancelled while live.
	ctx2, cancel2 := context.WithCancel(context.Background())
	live, _ := s.Subscribe(ctx2, 50)
	mustAppend(t, s, runObs(0, 50))
	if it := collect(t, live, 1); it[0].ID != 50 {
		t.Fatalf("live got id %d", it[0].ID)
	}
	cancel2()
	drain(live)
	if !errors.Is(live.Err(), context.Canceled) {
		t.Fatalf("live subscription: Err = %v", live.Err())
	}
	// Closed by the consumer.
	closed, _ := s.Subscribe(context.Background(), 10)
	closed.Close()
	drain(closed)
	if closed.Err() != nil {
		t.Fatalf("closed subscription: Err = %v, want nil", closed.Err())
	}
	// Ended by the stream closing, both replaying and live ones.
	a, _ := s.Subscribe(context.Background(), 0)
	b, _ := s.Subscribe(context.Background(), 51)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	drain(a)
	drain(b)
	if !errors.Is(a.Err(), eventbus.ErrStreamClosed) || !errors.Is(b.Err(), eventbus.ErrStreamClosed) {
		t.Fatalf("after stream Close: %v, %v", a.Err(), b.Err())
	}
	if _, err := s.Append(context.Background(), runObs(0, 0)); !errors.Is(err, eventbus.ErrStreamClosed) {
		t.Fatalf("append after Close: %v", err)
	}
	if _, err := s.Subscribe(context.Background(), 0); !errors.Is(err, eventbus.ErrStreamClosed) {
		t.Fatalf("subscribe after Close: %v", err)
	}
}

func testSubscribeFromAFutureIDWaitsForIt(t *testing.T, open Opener) {
	s := openStream(t, open, nil)
	sub, err := s.Subscribe(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := 0; i < 5; i++ {
		mustAppend(t, s, runObs(0, i))
	}
	items := collect(t, sub, 2)
	checkConsecutive(t, items, 3)
	ev, err := items[0].Event()
	if err != nil || ev.ID != 3 || ev.Observation.(*eventbus.CmdOutputObservation).Command != "ls -la /workspace/project-3" {
		t.Fatalf("live item event = %+v, %v", ev, err)
	}
}

func testAppendAfterContextCancelIsRefused(t *testing.T, open Opener) {
	s := openStream(t, open, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, runObs(0, 0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if s.Len() != 0 {
		t.Fatal("cancelled append was stored")
	}
}

func testSubscribeWithAnAlreadyCancelledContextEndsCleanly(t *testing.T, open Opener) {
	s := openStream(t, open, nil)
	for i := 0; i < 10; i++ {
		mustAppend(t, s, runObs(0, i))
	}
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		sub, err := s.Subscribe(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range sub.C() {
		}
		if !errors.Is(sub.Err(), context.Canceled) {
			t.Fatalf("Err = %v, want context.Canceled", sub.Err())
		}
		sub.Close()
	}
}

// A lone writer's commit buffers are reused once nobody holds them; the
// bytes a live subscriber got must stay what was stored, and the event it
// got must not change when the caller changes the event it appended.
func testReusedCommitBuffersNeverChangeDeliveredEvents(t *testing.T, open Opener) {
	s := openStream(t, open, nil)
	for i := 0; i < 20; i++ {
		mustAppend(t, s, runObs(0, i))
	}
	sub, err := s.Subscribe(context.Background(), 20)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Subscribe registers the subscriber asynchronously; wait until it is
	// live so the next appends are delivered live (with a shared event).
	for s.LiveSubscribers() == 0 {
		runtime.Gosched()
	}
	var appended []*eventbus.Event
	for i := 20; i < 40; i++ {
		in := runObs(0, i)
		appended = append(appended, in)
		mustAppend(t, s, in)
		if i%2 == 0 {
			mustAppend(t, s, runObs(0, 1000+i)) // more buffer churn
		}
	}
	for _, in := range appended {
		in.Observation.(*eventbus.CmdOutputObservation).Command = "changed by the caller"
	}
	got := collect(t, sub, 30)
	for i := 0; i < 40; i++ {
		mustAppend(t, s, runObs(0, i)) // reuse buffers once more
	}
	stored := storedJSON(t, s)
	for _, it := range got {
		if string(it.JSON) != string(stored[it.ID]) {
			t.Fatalf("delivered event %d changed after delivery:\n got %s\nwant %s", it.ID, it.JSON, stored[it.ID])
		}
		ev, err := it.Event()
		if err != nil {
			t.Fatal(err)
		}
		if c := ev.Observation.(*eventbus.CmdOutputObservation).Command; c == "changed by the caller" {
			t.Fatalf("event %d seen by a subscriber changed with the caller's copy", it.ID)
		}
	}
}

func testSearchAppliesOpenHandsFilterSemantics(t *testing.T, open Opener) {
	s := openStream(t, open, nil)
	// ids: 0 user message, 1 run action, 2 run obs, 3 hidden run action,
	// 4 hidden run obs, 5 read action, 6 read obs, 7 env error obs.
	add := func(e *eventbus.Event, ts string) {
		e.Timestamp = ts
		mustAppend(t, s, e)
	}
	add(eventbus.NewAction(eventbus.SourceUser, &eventbus.MessageAction{Content: "Please LIST the files"}), "2025-01-01T10:00:00.000000")
	add(runAction("ls"), "2025-01-01T10:00:01.000000")
	add(runObs(1, 0), "2025-01-01T10:00:02.000000")
	hidden := runAction("cat /etc/hostname")
	hidden.Action.(*eventbus.CmdRunAction).Hidden = true
	add(hidden, "2025-01-01T10:00:03.000000")
	ho := runObs(3, 1)
	ho.Observation.(*eventbus.CmdOutputObservation).Hidden = true
	add(ho, "2025-01-01T10:00:04.000000")
	add(eventbus.NewAction(eventbus.SourceAgent, &eventbus.FileReadAction{Path: "/workspace/a.txt", End: -1, SecurityRisk: eventbus.RiskUnknown, ImplSource: "default"}), "2025-01-02T09:00:00.000000")
	ro := eventbus.NewObservation(5, "hello", &eventbus.FileReadObservation{Path: "/workspace/a.txt", ImplSource: "default"})
	ro.Source = eventbus.SourceEnvironment
	add(ro, "2025-01-02T09:00:01.000000")
	eo := eventbus.NewError(5, "", "boom")
	eo.Source = eventbus.SourceEnvironment
	add(eo, "2025-01-03T00:00:00.000000")

	i64 := func(v int64) *int64 { return &v }
	cases := []struct {
		name string
		f    eventbus.Filter
		want []int64
	}{
		{"zero filter matches all", eventbus.Filter{}, []int64{0, 1, 2, 3, 4, 5, 6, 7}},
		{"exclude_hidden drops hidden run action and observation", eventbus.Filter{ExcludeHidden: true}, []int64{0, 1, 2, 5, 6, 7}},
		{"query is a case-insensitive substring of the JSON", eventbus.Filter{Query: "list THE"}, []int64{0}},
		{"query matches keys and values", eventbus.Filter{Query: `"path":"/workspace/a.txt"`}, []int64{5, 6}},
		{"include_types by type name matches both kinds", eventbus.Filter{IncludeTypes: []string{"run"}}, []int64{1, 2, 3, 4}},
		{"include_types qualified by kind", eventbus.Filter{IncludeTypes: []string{"observation:run"}}, []int64{2, 4}},
		{"include_types whole kind", eventbus.Filter{IncludeTypes: []string{"action"}}, []int64{0, 1, 3, 5}},
		{"exclude_types", eventbus.Filter{ExcludeTypes: []string{"run", "error"}}, []int64{0, 5, 6}},
		{"source", eventbus.Filter{Source: eventbus.SourceEnvironment}, []int64{6, 7}},
		{"start_date inclusive string comparison", eventbus.Filter{StartDate: "2025-01-02"}, []int64{5, 6, 7}},
		{"end_date inclusive string comparison", eventbus.Filter{EndDate: "2025-01-01T10:00:02.000000"}, []int64{0, 1, 2}},
		{"id range inclusive", eventbus.Filter{StartID: 2, EndID: i64(4)}, []int64{2, 3, 4}},
		{"limit", eventbus.Filter{Limit: 3}, []int64{0, 1, 2}},
		{"reverse with limit", eventbus.Filter{Reverse: true, Limit: 2}, []int64{7, 6}},
		{"reverse within range and filter", eventbus.Filter{Reverse: true, StartID: 1, EndID: i64(6), IncludeTypes: []string{"run"}, ExcludeHidden: true}, []int64{2, 1}},
		{"combined predicates are ANDed", eventbus.Filter{Source: eventbus.SourceAgent, IncludeTypes: []string{"run"}, Query: "exit code 0"}, []int64{2, 4}},
		{"empty range", eventbus.Filter{StartID: 9}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, err := s.Search(context.Background(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, it := range items {
				got = append(got, it.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("ids %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := s.Search(context.Background(), eventbus.Filter{Limit: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
	if _, err := s.Get(context.Background(), 42); err == nil {
		t.Fatal("Get of a missing id succeeded")
	}
}

func testStreamMasksBeforePersistAndFanOut(t *testing.T, open Opener) {
	s := openStream(t, open, nil)
	s.SetSecrets(map[string]string{"gh": "ghp_SECRET"})
	s.UpdateSecrets(map[string]string{"aws": "AKIA_SECRET"})
	sub, err := s.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	act := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: "export T=ghp_SECRET K=AKIA_SECRET", ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
	stored := mustAppend(t, s, act)
	obs := eventbus.NewObservation(0, "token ghp_SECRET", &eventbus.IPythonRunCellObservation{Code: "print(1)", ImageURLs: []string{"http://x/?k=AKIA_SECRET"}})
	mustAppend(t, s, obs)

	if got := stored.Action.(*eventbus.CmdRunAction).Command; got != "export T=<secret_hidden> K=<secret_hidden>" {
		t.Fatalf("returned event not masked: %q", got)
	}
	if act.Action.(*eventbus.CmdRunAction).Command != "export T=ghp_SECRET K=AKIA_SECRET" {
		t.Fatal("caller's event was modified")
	}
	live := collect(t, sub, 2)
	items, err := s.Search(context.Background(), eventbus.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range append(live, items...) {
		// Unlike OpenHands, the derived message is masked too.
		if strings.Contains(string(it.JSON), "SECRET") {
			t.Fatalf("item %d leaks a secret: %s", i, it.JSON)
		}
		ev, _ := it.Event()
		if ev.IsAction() {
			if c := ev.Action.(*eventbus.CmdRunAction).Command; strings.Contains(c, "SECRET") {
				t.Fatalf("decoded event leaks: %q", c)
			}
		} else if !reflect.DeepEqual(ev.Observation.(*eventbus.IPythonRunCellObservation).ImageURLs, []string{"http://x/?k=<secret_hidden>"}) || ev.Content != "token <secret_hidden>" {
			t.Fatalf("observation not masked: %+v %q", ev.Observation, ev.Content)
		}
	}
	if !strings.Contains(string(items[0].JSON), `"message":"Running command: export T=<secret_hidden>`) {
		t.Fatalf("top-level message must be masked: %s", items[0].JSON)
	}
	s.SetSecrets(nil)
	plain := mustAppend(t, s, runAction("echo ghp_SECRET"))
	if plain.Action.(*eventbus.CmdRunAction).Command != "echo ghp_SECRET" {
		t.Fatal("SetSecrets(nil) did not clear the secrets")
	}
}
