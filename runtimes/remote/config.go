package remote

import (
	"context"
	"errors"
	"fmt"

	"corral/runtimes"
)

// The remote backend's Config (the [runtime.remote] section) is declared
// in backend.go with New; this file makes it a runtimes.Factory. Remote
// sandboxes enforce no resource limits (Capabilities().Limits is false).

// DefaultConfig returns the defaults of [runtime.remote]: no hosts (the
// backend refuses to start without one).
func DefaultConfig() Config { return Config{} }

// Validate checks what can be checked without touching files or hosts,
// naming the entry; New checks the rest when the runtime is enabled.
func (c Config) Validate() error {
	var errs []error
	for i, h := range c.Hosts {
		switch h.Mode {
		case "agent", "ssh":
		default:
			errs = append(errs, fmt.Errorf("hosts[%d] (%s): mode = %q: want \"agent\" or \"ssh\"", i, h.Name, h.Mode))
		}
		if h.MaxSandboxes < 0 {
			errs = append(errs, fmt.Errorf("hosts[%d] (%s): max_sandboxes = %d: want >= 0", i, h.Name, h.MaxSandboxes))
		}
	}
	return errors.Join(errs...)
}

// Factory returns the runtimes.Factory of the "remote" runtime.
func Factory() runtimes.Factory {
	return runtimes.NewFactory("remote", DefaultConfig, func(_ context.Context, c Config, env runtimes.Env) (runtimes.Backend, error) {
		b, err := New(c, WithLogger(env.Logger), WithAgentGracePeriod(env.AgentGracePeriod))
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}
