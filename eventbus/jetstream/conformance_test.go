package jetstream

import (
	"testing"

	"corral/eventbus"
	"corral/eventbus/storetest"
)

// TestStreamConformance runs eventbus's stream conformance tests against
// the replicated store: a file store whose every commit group goes to
// JetStream first. Each test gets its own embedded server, so sessions of
// different tests never share a subject.
func TestStreamConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB, edit func(*eventbus.Config)) *eventbus.Store {
		t.Helper()
		c := startCluster(t, 1)
		return openStore(t, openLog(t, c.url()), edit)
	})
}
