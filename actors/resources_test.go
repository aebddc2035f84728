package actors

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"corral/runtimes"
	"corral/runtimes/local"
)

// limitsBackend claims to enforce limits and records the specs it starts.
type limitsBackend struct {
	runtimes.Backend
	mu    sync.Mutex
	specs []runtimes.Spec
}

func (b *limitsBackend) Capabilities() runtimes.Capabilities {
	c := b.Backend.Capabilities()
	c.Limits = true
	return c
}

func (b *limitsBackend) Start(ctx context.Context, spec runtimes.Spec) (*runtimes.Handle, error) {
	b.mu.Lock()
	b.specs = append(b.specs, spec)
	b.mu.Unlock()
	return b.Backend.Start(ctx, spec)
}

func TestPerSessionResourcesReachTheBackendWithTheOwner(t *testing.T) {
	var lb *limitsBackend
	e := newWrappedCLIEngine(t, testConfig(), func(b runtimes.Backend) runtimes.Backend {
		lb = &limitsBackend{Backend: b}
		return lb
	})
	want := runtimes.Resources{MemoryBytes: 256 << 20, NanoCPUs: 1.5e9, PidsLimit: 64}
	startSession(t, e, SessionSpec{Resources: want})
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if len(lb.specs) != 1 || lb.specs[0].Resources != want {
		t.Fatalf("started specs %+v, want one with resources %+v", lb.specs, want)
	}
	if o := lb.specs[0].Owner; o.ID == "" || o.LockPath == "" || o.Durable {
		t.Fatalf("owner %+v: want the temporary store's id and lock, not durable", o)
	}
}

func TestResourcesAreRefusedWhereTheRuntimeCannotEnforceThem(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	_, err := e.CreateSession(ctxT(t), SessionSpec{Resources: runtimes.Resources{MemoryBytes: 1 << 30}})
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("CreateSession with limits on cli = %v, want ErrNotSupported", err)
	}
}

func TestNegativeResourcesAreRefusedNamingThem(t *testing.T) {
	e := newWrappedCLIEngine(t, testConfig(), func(b runtimes.Backend) runtimes.Backend { return &limitsBackend{Backend: b} })
	_, err := e.CreateSession(ctxT(t), SessionSpec{Resources: runtimes.Resources{MemoryBytes: -1}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "memory_bytes -1") {
		t.Fatalf("CreateSession with negative memory = %v, want ErrInvalid naming it", err)
	}
}

func TestNewEngineRefusesAnUnknownOnLostSandbox(t *testing.T) {
	cfg := testConfig()
	cfg.OnLostSandbox = "retry"
	reg, err := runtimes.NewRegistry(local.NewInProcess(local.InProcessTempDir(t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine(cfg, reg); err == nil || !strings.Contains(err.Error(), "on_lost_sandbox") {
		t.Fatalf("NewEngine = %v, want an error naming on_lost_sandbox", err)
	}
}
