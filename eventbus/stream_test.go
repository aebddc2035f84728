package eventbus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTestStream(t testing.TB, edit func(*Config)) *Stream {
	t.Helper()
	st, _ := newTestStore(t, edit)
	s, err := st.Open("sess")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestAppendReturnsAStoredCopyWithIDAndTimestamp(t *testing.T) {
	checkLeaks(t)
	s := openTestStream(t, nil)
	in := runAction("echo hi")
	got := mustAppend(t, s, in)
	if in.ID != InvalidID || in.Timestamp != "" {
		t.Fatal("Append modified its argument")
	}
	if got.ID != 0 || len(got.Timestamp) != len(TimestampLayout) {
		t.Fatalf("stored event id %d timestamp %q", got.ID, got.Timestamp)
	}
	if _, err := time.ParseInLocation(TimestampLayout, got.Timestamp, time.Local); err != nil {
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
	if ev.ID != 0 || ev.Action.(*CmdRunAction).Command != "echo hi" || ev.Timestamp != got.Timestamp && ev.Timestamp == "" {
		t.Fatalf("stored event decodes to %+v", ev)
	}
	if !strings.HasPrefix(string(it.JSON), `{"id":0,"timestamp":"`) {
		t.Fatalf("stored JSON does not start like OpenHands': %s", it.JSON)
	}
}

func TestConcurrentAppendersGetGapFreeIDs(t *testing.T) {
	checkLeaks(t)
	for _, pol := range []SyncPolicy{SyncBatch, SyncNever} {
		t.Run(string(pol), func(t *testing.T) {
			s := openTestStream(t, func(c *Config) { c.Sync = pol })
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
			items, err := s.Search(context.Background(), Filter{})
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

func TestSubscribeFromIDHasNoGapOrDuplicateAtTheSeam(t *testing.T) {
	checkLeaks(t)
	s := openTestStream(t, func(c *Config) { c.Sync = SyncNever; c.SubscriberBuffer = 1 << 16 })
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

func TestSlowSubscriberOverflowsWithoutSlowingOthersAndCanResume(t *testing.T) {
	checkLeaks(t)
	const buf, total = 16, 500
	s := openTestStream(t, func(c *Config) { c.Sync = SyncNever; c.SubscriberBuffer = buf })
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
	for deadline := time.Now().Add(time.Minute); s.nlive.Load() != 2; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 subscriptions live after a minute", s.nlive.Load())
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

	var got []*Item
	for it := range slow.C() {
		got = append(got, it)
	}
	var ovf *OverflowError
	if err := slow.Err(); !errors.As(err, &ovf) || !errors.Is(err, ErrSubscriberOverflow) {
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

func TestSubscriptionsEndOnCancelCloseAndStreamClose(t *testing.T) {
	checkLeaks(t)
	st, _ := newTestStore(t, func(c *Config) { c.SubscriberBuffer = 4 })
	s, err := st.Open("s")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		mustAppend(t, s, runObs(0, i))
	}
	drain := func(sub *Subscription) {
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
	if !errors.Is(a.Err(), ErrStreamClosed) || !errors.Is(b.Err(), ErrStreamClosed) {
		t.Fatalf("after stream Close: %v, %v", a.Err(), b.Err())
	}
	if _, err := s.Append(context.Background(), runObs(0, 0)); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("append after Close: %v", err)
	}
	if _, err := s.Subscribe(context.Background(), 0); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("subscribe after Close: %v", err)
	}
}

func TestSubscribeFromAFutureIDWaitsForIt(t *testing.T) {
	checkLeaks(t)
	s := openTestStream(t, nil)
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
	if err != nil || ev.ID != 3 || ev.Observation.(*CmdOutputObservation).Command != "ls -la /workspace/project-3" {
		t.Fatalf("live item event = %+v, %v", ev, err)
	}
}

func TestAppendAfterContextCancelIsRefused(t *testing.T) {
	s := openTestStream(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, runObs(0, 0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if s.Len() != 0 {
		t.Fatal("cancelled append was stored")
	}
}

func TestSubscribeWithAnAlreadyCancelledContextEndsCleanly(t *testing.T) {
	checkLeaks(t)
	s := openTestStream(t, nil)
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
func TestReusedCommitBuffersNeverChangeDeliveredEvents(t *testing.T) {
	checkLeaks(t)
	s := openTestStream(t, nil)
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
	for s.nlive.Load() == 0 {
		runtime.Gosched()
	}
	var appended []*Event
	for i := 20; i < 40; i++ {
		in := runObs(0, i)
		appended = append(appended, in)
		mustAppend(t, s, in)
		if i%2 == 0 {
			mustAppend(t, s, runObs(0, 1000+i)) // more buffer churn
		}
	}
	for _, in := range appended {
		in.Observation.(*CmdOutputObservation).Command = "changed by the caller"
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
		if c := ev.Observation.(*CmdOutputObservation).Command; c == "changed by the caller" {
			t.Fatalf("event %d seen by a subscriber changed with the caller's copy", it.ID)
		}
	}
}
