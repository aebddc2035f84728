package runtimes

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Factory builds one kind of Backend from its own configuration section,
// [runtime.<name>], as containerd's plugins do: the factory alone knows the
// section's shape and defaults, so the program that wires backends together
// needs no switch over backend names.
//
// Make one with NewFactory.
type Factory interface {
	// Name is the runtime name the factory registers ("docker"); it is
	// also the name of its configuration section.
	Name() string
	// NewConfig returns a pointer to a fresh configuration struct (toml
	// tags) holding the defaults.
	NewConfig() any
	// New checks cfg (a value NewConfig returned, possibly decoded since)
	// and builds the Backend.
	New(ctx context.Context, cfg any, env Env) (Backend, error)
}

// Env is what a factory gets besides its own section: things the whole
// program shares.
type Env struct {
	Logger *slog.Logger // never nil when passed by Factories.New
	// AgentGracePeriod is how long a lost agent connection may reconnect
	// (resuming output) before the sandbox is declared lost; 0: the
	// transport's default. For backends whose Connect dials agentwire.
	AgentGracePeriod time.Duration
	// Owner is recorded on sandboxes a backend starts before any session
	// asks (a warm pool), so that they too are reaped once their owner is
	// gone; zero: none known yet.
	Owner Owner
}

// Validator is implemented by configurations that can check themselves;
// Factories calls it after decoding, so a bad value is reported when the
// file is read, before anything starts.
type Validator interface {
	Validate() error
}

// OrphanReaping is implemented by configurations with a reap_orphans key.
// Reaping is the caller's decision (it knows whether it owns this node's
// leftovers and whether sandboxes are meant to outlive it), never part of
// building the backend.
type OrphanReaping interface {
	ReapOrphansAtStart() bool
}

// NewFactory returns a Factory whose configuration is a C, built by
// defaults and given (by value) to build. When *C or C implements
// Validator it is called before build.
func NewFactory[C any](name string, defaults func() C, build func(ctx context.Context, cfg C, env Env) (Backend, error)) Factory {
	return &typedFactory[C]{name: name, defaults: defaults, build: build}
}

type typedFactory[C any] struct {
	name     string
	defaults func() C
	build    func(context.Context, C, Env) (Backend, error)
}

func (f *typedFactory[C]) Name() string { return f.name }

func (f *typedFactory[C]) NewConfig() any {
	c := f.defaults()
	return &c
}

func (f *typedFactory[C]) New(ctx context.Context, cfg any, env Env) (Backend, error) {
	var c C
	switch v := cfg.(type) {
	case nil:
		c = f.defaults()
	case *C:
		if v == nil {
			c = f.defaults()
		} else {
			c = *v
		}
	case C:
		c = v
	default:
		return nil, fmt.Errorf("runtime %s: configuration is a %T, want a %T", f.name, cfg, &c)
	}
	if err := validate(&c); err != nil {
		return nil, fmt.Errorf("[runtime.%s]: %w", f.name, err)
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	return f.build(ctx, c, env)
}

// validate calls Validate on p (a pointer) or the value it points to.
func validate(p any) error {
	if v, ok := p.(Validator); ok {
		return v.Validate()
	}
	if v, ok := reflect.ValueOf(p).Elem().Interface().(Validator); ok {
		return v.Validate()
	}
	return nil
}

// Factories is the set of backend kinds a program knows, by name. It is a
// value its caller builds (there is no package-level registry).
type Factories struct {
	byName map[string]Factory
}

// EnabledKey is the key of the runtime section that lists the backends to
// start; it can therefore not be a runtime name.
const EnabledKey = "enabled"

// NewFactories returns the set of fs. A nil factory, an empty or reserved
// name or a name given twice is a programming error and panics.
func NewFactories(fs ...Factory) *Factories {
	s := &Factories{byName: make(map[string]Factory, len(fs))}
	for _, f := range fs {
		if f == nil {
			panic("runtimes: NewFactories: nil factory")
		}
		name := f.Name()
		if name == "" || name == EnabledKey {
			panic(fmt.Sprintf("runtimes: NewFactories: factory %T has the invalid name %q", f, name))
		}
		if _, dup := s.byName[name]; dup {
			panic(fmt.Sprintf("runtimes: NewFactories: two factories named %q", name))
		}
		s.byName[name] = f
	}
	return s
}

// Names returns the known runtime names, sorted.
func (s *Factories) Names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Get returns the factory called name, or an error listing the known ones.
func (s *Factories) Get(name string) (Factory, error) {
	if f, ok := s.byName[name]; ok {
		return f, nil
	}
	return nil, &UnknownRuntimeError{Name: name, Known: s.Names()}
}

// UnknownRuntimeError is returned for a runtime name no factory has.
type UnknownRuntimeError struct {
	Name  string
	Known []string
}

func (e *UnknownRuntimeError) Error() string {
	return fmt.Sprintf("unknown runtime %q; known: %s", e.Name, strings.Join(e.Known, ", "))
}

// Config is the runtime section of a configuration file: which backends
// to start and every known backend's own configuration.
type Config struct {
	// Enabled lists the backends to start, in order.
	Enabled []string
	// Backends holds, by runtime name, what that factory's NewConfig
	// returned (a pointer), decoded from [runtime.<name>] when the file
	// has that section.
	Backends map[string]any
}

// DefaultConfig returns every factory's defaults, with enabled as the
// enabled list.
func (s *Factories) DefaultConfig(enabled ...string) Config {
	c := Config{Enabled: enabled, Backends: make(map[string]any, len(s.byName))}
	for n, f := range s.byName {
		c.Backends[n] = f.NewConfig()
	}
	return c
}

// Clone returns a copy of c whose backend configurations can be changed
// without changing c's (a shallow copy of each struct: do not append to
// their slices in place).
func (c Config) Clone() Config {
	out := Config{Enabled: slices.Clone(c.Enabled), Backends: make(map[string]any, len(c.Backends))}
	for n, v := range c.Backends {
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Pointer && !rv.IsNil() {
			cp := reflect.New(rv.Elem().Type())
			cp.Elem().Set(rv.Elem())
			out.Backends[n] = cp.Interface()
			continue
		}
		out.Backends[n] = v
	}
	return out
}

// ReapOrphans returns the names in names whose configuration asks for
// leftover sandboxes to be reaped at start (see OrphanReaping).
func (c Config) ReapOrphans(names []string) []string {
	var out []string
	for _, n := range names {
		if r, ok := c.Backends[n].(OrphanReaping); ok && r.ReapOrphansAtStart() {
			out = append(out, n)
		}
	}
	return out
}

// Decode fills into (which holds the defaults, see DefaultConfig) from the
// undecoded entries of a TOML table named table ("runtime"): the enabled
// list and one section per runtime, each decoded by its factory with
// md.PrimitiveDecode. Keys a section sets that its configuration does not
// define stay undecoded in md, so md.Undecoded() names them with their
// section (runtime.docker.memroy). A section or an enabled name no
// factory knows is an error listing the known runtimes; a configuration
// that fails its Validate is an error naming the section.
func (s *Factories) Decode(md toml.MetaData, table string, raw map[string]toml.Primitive, into *Config) error {
	if into.Backends == nil {
		into.Backends = map[string]any{}
	}
	if p, ok := raw[EnabledKey]; ok {
		var enabled []string
		if err := md.PrimitiveDecode(p, &enabled); err != nil {
			return fmt.Errorf("[%s] %s: %w", table, EnabledKey, err)
		}
		into.Enabled = enabled
	}
	names := make([]string, 0, len(raw))
	for n := range raw {
		if n != EnabledKey {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		f, err := s.Get(n)
		if err != nil {
			return fmt.Errorf("[%s.%s]: %w", table, n, err)
		}
		cfg := into.Backends[n]
		if cfg == nil {
			cfg = f.NewConfig()
			into.Backends[n] = cfg
		}
		if err := md.PrimitiveDecode(raw[n], cfg); err != nil {
			return fmt.Errorf("[%s.%s]: %w", table, n, err)
		}
		if err := validate(cfg); err != nil {
			return fmt.Errorf("[%s.%s]: %w", table, n, err)
		}
	}
	for _, n := range into.Enabled {
		if _, err := s.Get(n); err != nil {
			return fmt.Errorf("[%s] %s: %w", table, EnabledKey, err)
		}
	}
	return nil
}

// New builds the backend called name from its configuration in cfg (the
// factory's defaults when cfg has none).
func (s *Factories) New(ctx context.Context, name string, cfg Config, env Env) (Backend, error) {
	f, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	b, err := f.New(ctx, cfg.Backends[name], env)
	if err != nil {
		return nil, err
	}
	if b.Name() != name {
		if c, ok := b.(interface{ Close() error }); ok {
			c.Close()
		}
		return nil, fmt.Errorf("runtime %s: factory built a backend named %q", name, b.Name())
	}
	return b, nil
}

// Duration is a time.Duration written as a Go duration string ("60s",
// "2m") in configuration files.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. \"30s\", \"2m\"): %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
