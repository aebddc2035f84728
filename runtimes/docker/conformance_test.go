package docker

import (
	"testing"

	"corral/runtimes"
	"corral/runtimes/backendtest"
)

// TestConformanceDocker runs the shared action suite against a container
// of the minimal image (busybox + static bash, no python3) through the
// agent's socket, reached with Backend.Connect.
func TestConformanceDocker(t *testing.T) {
	b := newBackend(t)
	backendtest.Run(t, backendtest.Harness{
		Backend:   b,
		Start:     func(t *testing.T) *runtimes.Handle { return start(t, b, runtimes.Spec{}) },
		HasPython: false, // the minimal image has no python3
	})
}
