package eventbus_test

import (
	"io"
	"log/slog"
	"testing"

	"go.uber.org/goleak"

	"corral/eventbus"
	"corral/eventbus/storetest"
)

// TestStreamConformance runs the stream conformance tests against the
// single-node file store; eventbus/jetstream runs the same tests against
// the replicated store.
func TestStreamConformance(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs after every store is closed
	storetest.Run(t, func(t testing.TB, edit func(*eventbus.Config)) *eventbus.Store {
		t.Helper()
		cfg := eventbus.DefaultConfig()
		cfg.StoreDir = t.TempDir()
		if edit != nil {
			edit(&cfg)
		}
		st, err := eventbus.OpenStore(cfg, eventbus.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}
