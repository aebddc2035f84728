package eventbus

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// logBuffer captures slog output for assertions on warnings.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testConfig(dir string) Config {
	c := DefaultConfig()
	c.StoreDir = dir
	return c
}

// newTestStore opens a store in a fresh temporary directory; edit adjusts
// the config.
func newTestStore(t testing.TB, edit func(*Config)) (*Store, *logBuffer) {
	t.Helper()
	cfg := testConfig(t.TempDir())
	if edit != nil {
		edit(&cfg)
	}
	lb := &logBuffer{}
	st, err := OpenStore(cfg, WithLogger(slog.New(slog.NewTextHandler(lb, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, lb
}

func strp(s string) *string { return &s }

// runObs is a realistic ~300-byte `run` observation.
func runObs(cause int64, i int) *Event {
	o := &CmdOutputObservation{
		Command: fmt.Sprintf("ls -la /workspace/project-%d", i),
		Metadata: CmdOutputMetadata{
			ExitCode: 0, PID: -1,
			Username: strp("openhands"), Hostname: strp("0301ebbced1e"),
			WorkingDir: strp("/workspace"), PyInterpreterPath: strp("/usr/bin/python3"),
			Suffix: "\n[The command completed with exit code 0.]",
		},
	}
	e := NewObservation(cause, "total 8\ndrwxr-xr-x 2 openhands openhands 4096 Nov 27 00:31 .\n", o)
	e.Source = SourceAgent
	return e
}

func runAction(cmd string) *Event {
	return NewAction(SourceAgent, &CmdRunAction{Command: cmd, ConfirmationState: Confirmed, SecurityRisk: RiskUnknown})
}

func mustAppend(t testing.TB, s *Stream, e *Event) *Event {
	t.Helper()
	got, err := s.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// collect receives n items from sub or fails after a generous timeout.
// Only for the test goroutine; other goroutines use receiveN.
func collect(t testing.TB, sub *Subscription, n int) []*Item {
	t.Helper()
	out, err := receiveN(sub, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// receiveN receives n items from sub, or reports why it could not.
func receiveN(sub *Subscription, n int) ([]*Item, error) {
	out := make([]*Item, 0, n)
	timeout := time.After(30 * time.Second)
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

func checkConsecutive(t testing.TB, items []*Item, first int64) {
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

// checkLeaks verifies, after every other cleanup of t has run (stores and
// streams closed), that no goroutine started by the test is left.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}
