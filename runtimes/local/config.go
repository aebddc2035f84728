package local

import (
	"context"
	"errors"
	"fmt"

	"corral/runtimes"
)

// Config is the [runtime.local] section of corral's configuration file:
// agents as host subprocesses. A local sandbox enforces no resource
// limits (Capabilities().Limits is false).
type Config struct {
	// AgentBinary is the corral-agent executable ("": next to the running
	// executable, then $PATH).
	AgentBinary string `toml:"agent_binary"`
	// WarmPool keeps this many agents started ahead.
	WarmPool int `toml:"warm_pool"`
	// HostHome gives sandboxes the host user's HOME (OpenHands'
	// LocalRuntime) instead of a private one each.
	HostHome bool `toml:"host_home"`
	// User is the user agents run commands as when Corral runs as root
	// ("": Corral's own user).
	User string `toml:"user"`
	// TempDir holds temporary workspaces and socket directories ("": the
	// system's temporary directory).
	TempDir string `toml:"temp_dir"`
	// NoChangeTimeout is the agent's no-change timeout (0: the agent's
	// default, 10 s or NO_CHANGE_TIMEOUT_SECONDS).
	NoChangeTimeout runtimes.Duration `toml:"no_change_timeout"`
}

// DefaultConfig returns the defaults of [runtime.local].
func DefaultConfig() Config { return Config{} }

// Validate refuses values that cannot work, naming the key.
func (c Config) Validate() error {
	var errs []error
	if c.WarmPool < 0 {
		errs = append(errs, fmt.Errorf("warm_pool = %d: want >= 0", c.WarmPool))
	}
	if c.NoChangeTimeout < 0 {
		errs = append(errs, fmt.Errorf("no_change_timeout = %q: want >= 0 (0: the agent's default)", c.NoChangeTimeout.D()))
	}
	return errors.Join(errs...)
}

// Options turns the config into New's options.
func (c Config) Options() []Option {
	var opts []Option
	if c.AgentBinary != "" {
		opts = append(opts, WithAgentBinary(c.AgentBinary))
	}
	if c.WarmPool > 0 {
		opts = append(opts, WithWarmPool(c.WarmPool))
	}
	if c.HostHome {
		opts = append(opts, WithHostHome())
	}
	if c.User != "" {
		opts = append(opts, WithUser(c.User))
	}
	if c.TempDir != "" {
		opts = append(opts, WithTempDir(c.TempDir))
	}
	if c.NoChangeTimeout > 0 {
		opts = append(opts, WithNoChangeTimeout(c.NoChangeTimeout.D()))
	}
	return opts
}

// Factory returns the runtimes.Factory of the "local" runtime.
func Factory() runtimes.Factory {
	return runtimes.NewFactory("local", DefaultConfig, func(_ context.Context, c Config, env runtimes.Env) (runtimes.Backend, error) {
		opts := append(c.Options(), WithLogger(env.Logger), WithAgentGracePeriod(env.AgentGracePeriod))
		if env.Owner.ID != "" {
			opts = append(opts, WithOwner(env.Owner))
		}
		b, err := New(opts...)
		if err != nil {
			return nil, fmt.Errorf("local runtime: %w", err)
		}
		return b, nil
	})
}

// InProcessConfig is the [runtime.cli] section: the executor inside
// Corral's own process (OpenHands' CLIRuntime). It enforces no resource
// limits.
type InProcessConfig struct {
	// TempDir holds temporary workspaces ("": the system's temporary
	// directory).
	TempDir string `toml:"temp_dir"`
	// NoChangeTimeout is the executor's no-change timeout (0: 10 s or
	// NO_CHANGE_TIMEOUT_SECONDS).
	NoChangeTimeout runtimes.Duration `toml:"no_change_timeout"`
}

// DefaultInProcessConfig returns the defaults of [runtime.cli].
func DefaultInProcessConfig() InProcessConfig { return InProcessConfig{} }

// Validate refuses values that cannot work, naming the key.
func (c InProcessConfig) Validate() error {
	if c.NoChangeTimeout < 0 {
		return fmt.Errorf("no_change_timeout = %q: want >= 0 (0: the default)", c.NoChangeTimeout.D())
	}
	return nil
}

// InProcessFactory returns the runtimes.Factory of the "cli" runtime.
func InProcessFactory() runtimes.Factory {
	return runtimes.NewFactory("cli", DefaultInProcessConfig, func(_ context.Context, c InProcessConfig, env runtimes.Env) (runtimes.Backend, error) {
		opts := []InProcessOption{InProcessLogger(env.Logger)}
		if c.TempDir != "" {
			opts = append(opts, InProcessTempDir(c.TempDir))
		}
		if c.NoChangeTimeout > 0 {
			opts = append(opts, InProcessNoChangeTimeout(c.NoChangeTimeout.D()))
		}
		return NewInProcess(opts...), nil
	})
}
