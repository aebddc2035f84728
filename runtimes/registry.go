package runtimes

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Registry maps runtime names ("local", "docker", ...) to backends. The zero
// value is ready to use and safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	backends map[string]Backend
}

// NewRegistry returns a registry holding the given backends.
func NewRegistry(backends ...Backend) (*Registry, error) {
	r := &Registry{}
	for _, b := range backends {
		if err := r.Register(b); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds b under b.Name(). Registering a second backend under a name
// already taken is an error, so two packages cannot silently shadow each other.
func (r *Registry) Register(b Backend) error {
	if b == nil {
		return fmt.Errorf("runtimes: register: nil backend")
	}
	name := b.Name()
	if name == "" {
		return fmt.Errorf("runtimes: register %T: backend has an empty name", b)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.backends == nil {
		r.backends = make(map[string]Backend)
	}
	if _, ok := r.backends[name]; ok {
		return fmt.Errorf("runtimes: register: runtime %q is already registered", name)
	}
	r.backends[name] = b
	return nil
}

// Get returns the backend registered as name, or an error listing the known
// names so a typo in configuration is easy to fix.
func (r *Registry) Get(name string) (Backend, error) {
	r.mu.RLock()
	b, ok := r.backends[name]
	r.mu.RUnlock()
	if !ok {
		known := r.Names()
		if len(known) == 0 {
			return nil, fmt.Errorf("unknown runtime %q; no runtimes are registered", name)
		}
		return nil, fmt.Errorf("unknown runtime %q; known: %s", name, strings.Join(known, ", "))
	}
	return b, nil
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.backends))
	for n := range r.backends {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// MetaOwnsWorkspace is the Handle.Meta key (value "true") a backend sets
// when it created the sandbox's workspace and Destroy removes it. A caller
// re-provisioning a lost sandbox in the same workspace passes it back as a
// Spec.Labels entry so the new sandbox owns the directory in turn.
const MetaOwnsWorkspace = "corral.owns_workspace"
