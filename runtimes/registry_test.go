package runtimes

import (
	"context"
	"strings"
	"testing"
	"time"
)

// namedBackend is the smallest Backend with a name: the registry only ever
// calls Name, so the other methods are never reached.
type namedBackend struct{ name string }

func (b namedBackend) Name() string                               { return b.name }
func (namedBackend) Capabilities() Capabilities                   { return Capabilities{} }
func (namedBackend) Start(context.Context, Spec) (*Handle, error) { return nil, ErrNotSupported }
func (namedBackend) Recover(context.Context, *Handle) (*Handle, error) {
	return nil, ErrNotSupported
}
func (namedBackend) Stop(context.Context, *Handle, time.Duration) error  { return ErrNotSupported }
func (namedBackend) Destroy(context.Context, *Handle) error              { return ErrNotSupported }
func (namedBackend) Pause(context.Context, *Handle) error                { return ErrNotSupported }
func (namedBackend) Resume(context.Context, *Handle) error               { return ErrNotSupported }
func (namedBackend) Inspect(context.Context, *Handle) (State, error)     { return State{}, ErrNotSupported }
func (namedBackend) Wait(context.Context, *Handle) (<-chan Exit, error)  { return nil, ErrNotSupported }
func (namedBackend) Connect(context.Context, *Handle) (AgentConn, error) { return nil, ErrNotSupported }

func TestRegistry(t *testing.T) {
	r, err := NewRegistry(namedBackend{"local"}, namedBackend{"docker"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		lookup  string
		wantErr string
	}{
		{"known name returns its backend", "local", ""},
		{"unknown name lists the known ones", "lokal", `unknown runtime "lokal"; known: docker, local`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := r.Get(tt.lookup)
			if tt.wantErr == "" {
				if err != nil || b.Name() != tt.lookup {
					t.Fatalf("Get(%q) = %v, %v", tt.lookup, b, err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Get(%q) error = %v, want %q", tt.lookup, err, tt.wantErr)
			}
		})
	}
	t.Run("duplicate name is refused", func(t *testing.T) {
		if err := r.Register(namedBackend{"local"}); err == nil || !strings.Contains(err.Error(), "already registered") {
			t.Fatalf("Register duplicate: %v", err)
		}
	})
	t.Run("empty registry says so", func(t *testing.T) {
		var empty Registry
		if _, err := empty.Get("x"); err == nil || !strings.Contains(err.Error(), "no runtimes are registered") {
			t.Fatalf("Get on empty registry: %v", err)
		}
	})
}
