package local

import (
	"context"
	"os/exec"
	"testing"

	"corral/runtimes"
	"corral/runtimes/backendtest"
)

// TestConformanceLocal runs the shared action suite against the local
// backend: a real corral-agent subprocess reached over agentwire.
func TestConformanceLocal(t *testing.T) {
	b := newBackend(t)
	backendtest.Run(t, backendtest.Harness{
		Backend: b,
		Start: func(t *testing.T) *runtimes.Handle {
			h, err := b.Start(context.Background(), runtimes.Spec{SessionID: "conformance-local"})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			t.Cleanup(func() {
				if err := b.Destroy(context.Background(), h); err != nil {
					t.Errorf("Destroy: %v", err)
				}
			})
			return h
		},
		HasPython: hasPython3(),
	})
}

// TestConformanceCLI runs the shared action suite against the in-process
// ("cli") backend through its Connect (the executor in this process).
func TestConformanceCLI(t *testing.T) {
	b := NewInProcess(InProcessTempDir(t.TempDir()))
	backendtest.Run(t, backendtest.Harness{
		Backend: b,
		Start: func(t *testing.T) *runtimes.Handle {
			h, err := b.Start(context.Background(), runtimes.Spec{SessionID: "conformance-cli"})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			t.Cleanup(func() {
				if err := b.Destroy(context.Background(), h); err != nil {
					t.Errorf("Destroy: %v", err)
				}
			})
			return h
		},
		HasPython: hasPython3(),
	})
}

// hasPython3 mirrors the executor's default: python3 on the host's PATH
// (both backends run the executor on this host).
func hasPython3() bool {
	_, err := exec.LookPath("python3")
	return err == nil
}
