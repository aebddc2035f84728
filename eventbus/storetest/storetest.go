package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"corral/eventbus"
)

// Opener opens a store in a fresh directory for t, with the config edited
// by edit (nil: defaults); t's cleanup closes it.
type Opener func(t testing.TB, edit func(*eventbus.Config)) *eventbus.Store

// Run runs every conformance test as a subtest of t against stores made by
// open.
func Run(t *testing.T, open Opener) {
	for _, tc := range streamTests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// openStream opens session "sess" of a fresh store.
func openStream(t testing.TB, open Opener, edit func(*eventbus.Config)) *eventbus.Stream {
	t.Helper()
	st := open(t, edit)
	s, err := st.Open("sess")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func strp(s string) *string { return &s }

// runObs is a realistic ~300-byte `run` observation.
func runObs(cause int64, i int) *eventbus.Event {
	o := &eventbus.CmdOutputObservation{
		Command: fmt.Sprintf("ls -la /workspace/project-%d", i),
		Metadata: eventbus.CmdOutputMetadata{
			ExitCode: 0, PID: -1,
			Username: strp("openhands"), Hostname: strp("0301ebbced1e"),
			WorkingDir: strp("/workspace"), PyInterpreterPath: strp("/usr/bin/python3"),
			Suffix: "\n[The command completed with exit code 0.]",
		},
	}
	e := eventbus.NewObservation(cause, "total 8\ndrwxr-xr-x 2 openhands openhands 4096 Nov 27 00:31 .\n", o)
	e.Source = eventbus.SourceAgent
	return e
}

func runAction(cmd string) *eventbus.Event {
	return eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: cmd, ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
}

func mustAppend(t testing.TB, s *eventbus.Stream, e *eventbus.Event) *eventbus.Event {
	t.Helper()
	got, err := s.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// collect receives n items from sub or fails after a generous timeout.
// Only for the test goroutine; other goroutines use receiveN.
func collect(t testing.TB, sub *eventbus.Subscription, n int) []*eventbus.Item {
	t.Helper()
	out, err := receiveN(sub, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// receiveN receives n items from sub, or reports why it could not.
func receiveN(sub *eventbus.Subscription, n int) ([]*eventbus.Item, error) {
	out := make([]*eventbus.Item, 0, n)
	timeout := time.After(60 * time.Second)
	for len(out) < n {
		select {
		case it, ok := <-sub.C():
			if !ok {
				return out, fmt.Errorf("subscription ended after %d of %d items: %v", len(out), n, sub.Err())
			}
			out = append(out, it)
		case <-timeout:
			return out, fmt.Errorf("timed out after %d of %d items", len(out), n)
		}
	}
	return out, nil
}

func checkConsecutive(t testing.TB, items []*eventbus.Item, first int64) {
	t.Helper()
	for i, it := range items {
		if it.ID != first+int64(i) {
			t.Fatalf("item %d has id %d, want %d (gap or duplicate)", i, it.ID, first+int64(i))
		}
		if !bytes.HasPrefix(it.JSON, []byte(fmt.Sprintf(`{"id":%d,`, it.ID))) {
			t.Fatalf("item %d JSON does not start with its id: %.60s", it.ID, it.JSON)
		}
	}
}

// storedJSON returns the stored JSON of every event of s, in id order.
func storedJSON(t testing.TB, s *eventbus.Stream) [][]byte {
	t.Helper()
	items, err := s.Search(context.Background(), eventbus.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, it := range items {
		out = append(out, it.JSON)
	}
	return out
}
