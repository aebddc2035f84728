package kubernetes

import (
	"testing"

	"corral/runtimes"
	"corral/runtimes/backendtest"
)

// TestConformance runs the shared action suite against a pod on the test
// cluster, reached through the API server's port-forward and at the pod
// IP. corral-sandbox:minimal has no python3, so run_ipython must answer
// with an error observation.
func TestConformance(t *testing.T) {
	for _, mode := range []string{ConnectPortForward, ConnectPodIP} {
		t.Run(mode, func(t *testing.T) {
			b := connBackend(t, mode, nil)
			backendtest.Run(t, backendtest.Harness{
				Backend: b,
				Start: func(t *testing.T) *runtimes.Handle {
					return connStart(t, b, "conformance-"+mode)
				},
				HasPython: false,
			})
		})
	}
}
