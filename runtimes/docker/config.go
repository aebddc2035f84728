package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"corral/runtimes"
)

// Config is the [runtime.docker] section of corral's configuration file:
// every setting of the backend, with the defaults DefaultConfig returns.
// Keys that mean what an OpenHands [sandbox] key means carry its name
// (runtime_container_image, use_host_network, additional_networks,
// volumes). An empty or zero value where the default is computed on this
// machine (agent_binary, state_dir, node_id, start_concurrency) means
// "compute it".
type Config struct {
	// Image is the image of sessions that name none.
	Image string `toml:"runtime_container_image"`
	// AgentBinary is the static corral-agent bind-mounted into every
	// container ("": next to the running executable, then $PATH).
	AgentBinary string `toml:"agent_binary"`
	// AgentUser is the container user the agent runs as; it runs commands
	// as the session's user itself.
	AgentUser string `toml:"agent_user"`
	// StateDir holds the per-sandbox socket directories ("":
	// $TMPDIR/corral-docker). Keep it short (unix socket path limit).
	StateDir string `toml:"state_dir"`
	// NodeID is written to the corral.node label ("": the host name).
	NodeID string `toml:"node_id"`
	// StartConcurrency bounds container starts in flight (0: 2 x CPUs).
	StartConcurrency int `toml:"start_concurrency"`
	// StartTimeout bounds the wait for a new (or resumed) agent.
	StartTimeout runtimes.Duration `toml:"start_timeout"`
	// StopTimeout is the grace period of `docker stop` in pause_mode "stop".
	StopTimeout runtimes.Duration `toml:"stop_timeout"`
	// Readiness is how Start learns the agent is up: "socket" or "logs".
	Readiness string `toml:"readiness"`
	// ReadyPollInterval is how often readiness "socket" probes.
	ReadyPollInterval runtimes.Duration `toml:"ready_poll_interval"`
	// PauseMode is how a session is paused (also when it is closed with
	// keep_runtime_alive): "pause" freezes it (docker pause), "stop" stops
	// it as OpenHands does, releasing its memory.
	PauseMode string `toml:"pause_mode"`
	// Network is the network mode of sessions that name none: "bridge",
	// "none", "host" or a named network.
	Network string `toml:"network"`
	// UseHostNetwork is OpenHands' switch for Network = "host".
	UseHostNetwork bool `toml:"use_host_network"`
	// AdditionalNetworks are connected to every sandbox after start.
	AdditionalNetworks []string `toml:"additional_networks"`
	// Volumes are mounted into every sandbox, OpenHands' host:container[:mode]
	// entries (a list, or OpenHands' comma-separated string). A session's
	// own workspace or volumes win over an entry for the same container path.
	Volumes VolumeList `toml:"volumes"`
	// MemoryBytes, CPUs and PidsLimit are the limits of sessions that set
	// none (0: unlimited). Memory is also the swap limit: no swap.
	MemoryBytes int64   `toml:"memory_bytes"`
	CPUs        float64 `toml:"cpus"`
	PidsLimit   int64   `toml:"pids_limit"`
	// OOMPolicy is what an OOM kill inside a running sandbox means: "kill"
	// (the sandbox is lost) or "ignore" (only the killed process is).
	OOMPolicy string `toml:"oom_policy"`
	// ReapOrphans asks the long-running server to remove, at start, this
	// node's containers left by a Corral that died. It is read by the
	// caller (runtimes.OrphanReaping), never by the backend.
	ReapOrphans bool `toml:"reap_orphans"`
	// WarmPool keeps this many started, idle containers per image for
	// sessions that set nothing but their image (0: none).
	WarmPool int `toml:"warm_pool"`
}

// VolumeList is a list of host:container[:mode] entries. In TOML it is an
// array of strings or, as in OpenHands, one comma-separated string.
type VolumeList []string

// UnmarshalTOML accepts an array of strings or a comma-separated string.
func (v *VolumeList) UnmarshalTOML(data any) error {
	switch d := data.(type) {
	case string:
		out := VolumeList{}
		for _, e := range strings.Split(d, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
		*v = out
	case []any:
		out := make(VolumeList, 0, len(d))
		for i, e := range d {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("volumes[%d]: want a string host:container[:mode], got %T", i, e)
			}
			out = append(out, s)
		}
		*v = out
	default:
		return fmt.Errorf("volumes: want an array of \"host:container[:mode]\" strings (or one comma-separated string), got %T", data)
	}
	return nil
}

// DefaultConfig returns the backend's defaults.
func DefaultConfig() Config {
	d := defaultConfig()
	return Config{
		Image:              d.image,
		AgentUser:          d.agentUser,
		StartTimeout:       runtimes.Duration(d.startTimeout),
		StopTimeout:        runtimes.Duration(d.stopTimeout),
		Readiness:          string(d.readiness),
		ReadyPollInterval:  runtimes.Duration(d.readyPoll),
		PauseMode:          string(d.pauseMode),
		Network:            d.network,
		AdditionalNetworks: []string{},
		Volumes:            VolumeList{},
		OOMPolicy:          string(d.oomPolicy),
		ReapOrphans:        true,
	}
}

// Factory returns the runtimes.Factory of the "docker" runtime: it
// decodes a Config and builds the Backend with New.
func Factory() runtimes.Factory {
	return runtimes.NewFactory("docker", DefaultConfig, func(ctx context.Context, c Config, env runtimes.Env) (runtimes.Backend, error) {
		opts, err := c.Options()
		if err != nil {
			return nil, err
		}
		opts = append(opts, WithLogger(env.Logger))
		if env.Owner.ID != "" {
			opts = append(opts, WithOwner(env.Owner))
		}
		b, err := New(ctx, opts...)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

// ReapOrphansAtStart implements runtimes.OrphanReaping.
func (c *Config) ReapOrphansAtStart() bool { return c.ReapOrphans }

// network returns the default network mode the config selects.
func (c Config) network() (string, error) {
	if !c.UseHostNetwork {
		return c.Network, nil
	}
	switch c.Network {
	case "", "host", defaultConfig().network:
		return "host", nil
	}
	return "", fmt.Errorf("use_host_network = true conflicts with network = %q", c.Network)
}

// Validate refuses values that cannot work, naming the key.
func (c Config) Validate() error {
	var errs []error
	if c.StartConcurrency < 0 {
		errs = append(errs, fmt.Errorf("start_concurrency = %d: want >= 1 (0: 2 x CPUs)", c.StartConcurrency))
	}
	switch PauseMode(c.PauseMode) {
	case PauseFreeze, PauseStop:
	default:
		errs = append(errs, fmt.Errorf("pause_mode = %q: want %q or %q", c.PauseMode, PauseFreeze, PauseStop))
	}
	switch OOMPolicy(c.OOMPolicy) {
	case OOMKillSandbox, OOMIgnore:
	default:
		errs = append(errs, fmt.Errorf("oom_policy = %q: want %q or %q", c.OOMPolicy, OOMKillSandbox, OOMIgnore))
	}
	switch Readiness(c.Readiness) {
	case ReadySocket, ReadyLogs:
	default:
		errs = append(errs, fmt.Errorf("readiness = %q: want %q or %q", c.Readiness, ReadySocket, ReadyLogs))
	}
	if c.Image == "" {
		errs = append(errs, errors.New(`runtime_container_image = "": want an image (default `+DefaultImage+`)`))
	}
	if c.AgentUser == "" {
		errs = append(errs, errors.New(`agent_user = "": want a container user such as "0:0"`))
	}
	for key, d := range map[string]runtimes.Duration{"start_timeout": c.StartTimeout, "stop_timeout": c.StopTimeout, "ready_poll_interval": c.ReadyPollInterval} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s = %q: want a positive duration such as \"10s\"", key, d.D()))
		}
	}
	if _, err := c.network(); err != nil {
		errs = append(errs, err)
	} else if c.Network == "" && !c.UseHostNetwork {
		errs = append(errs, errors.New(`network = "": want "bridge", "none", "host" or a network name`))
	}
	for _, n := range c.AdditionalNetworks {
		if strings.TrimSpace(n) == "" {
			errs = append(errs, errors.New("additional_networks: empty network name"))
		}
	}
	if c.MemoryBytes < 0 {
		errs = append(errs, fmt.Errorf("memory_bytes = %d: want >= 0 (0: unlimited)", c.MemoryBytes))
	} else if c.MemoryBytes > 0 && c.MemoryBytes < 6<<20 {
		errs = append(errs, fmt.Errorf("memory_bytes = %d: Docker's minimum is 6 MiB (6291456)", c.MemoryBytes))
	}
	if c.CPUs < 0 {
		errs = append(errs, fmt.Errorf("cpus = %g: want >= 0 (0: unlimited)", c.CPUs))
	} else if c.CPUs > 0 && c.CPUs < 0.01 {
		errs = append(errs, fmt.Errorf("cpus = %g: Docker's minimum is 0.01", c.CPUs))
	}
	if c.WarmPool < 0 {
		errs = append(errs, fmt.Errorf("warm_pool = %d: want >= 0 (0: no warm pool)", c.WarmPool))
	}
	if c.PidsLimit < 0 {
		errs = append(errs, fmt.Errorf("pids_limit = %d: want >= 0 (0: unlimited)", c.PidsLimit))
	}
	seen := map[string]string{}
	for _, v := range c.Volumes {
		m, err := parseVolume(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("volumes: %w", err))
			continue
		}
		if prev, dup := seen[m.Target]; dup {
			errs = append(errs, fmt.Errorf("volumes: %q and %q both mount %s", prev, v, m.Target))
		}
		seen[m.Target] = v
	}
	return errors.Join(errs...)
}

// Options validates the config and turns it into constructor options
// (every key but reap_orphans, which is not the backend's business).
func (c Config) Options() ([]Option, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	network, _ := c.network()
	opts := []Option{
		WithDefaultImage(c.Image),
		WithAgentUser(c.AgentUser),
		WithStartTimeout(c.StartTimeout.D()),
		WithStopTimeout(c.StopTimeout.D()),
		WithReadiness(Readiness(c.Readiness)),
		WithReadyPollInterval(c.ReadyPollInterval.D()),
		WithPauseMode(PauseMode(c.PauseMode)),
		WithOOMPolicy(OOMPolicy(c.OOMPolicy)),
		WithNetwork(network, c.AdditionalNetworks...),
		WithDefaultVolumes(c.Volumes...),
		WithDefaultResources(runtimes.Resources{
			MemoryBytes: c.MemoryBytes,
			NanoCPUs:    int64(c.CPUs*1e9 + 0.5),
			PidsLimit:   c.PidsLimit,
		}),
	}
	if c.AgentBinary != "" {
		opts = append(opts, WithAgentBinary(c.AgentBinary))
	}
	if c.StateDir != "" {
		opts = append(opts, WithStateDir(c.StateDir))
	}
	if c.NodeID != "" {
		opts = append(opts, WithNodeID(c.NodeID))
	}
	if c.StartConcurrency > 0 {
		opts = append(opts, WithStartConcurrency(c.StartConcurrency))
	}
	if c.WarmPool > 0 {
		opts = append(opts, WithWarmPool(c.WarmPool))
	}
	return opts, nil
}

// specDefaults fills what spec leaves empty from the backend's settings:
// image, network mode, each resource limit, and the default volumes (an
// entry whose container path the session mounts itself, or /workspace
// when the session has a workspace, is left out). Start calls it first.
func (c *config) specDefaults(spec runtimes.Spec) runtimes.Spec {
	if spec.Image == "" {
		spec.Image = c.image
	}
	if spec.Network == "" {
		spec.Network = c.network
	}
	if spec.Resources.MemoryBytes == 0 {
		spec.Resources.MemoryBytes = c.resources.MemoryBytes
	}
	if spec.Resources.NanoCPUs == 0 {
		spec.Resources.NanoCPUs = c.resources.NanoCPUs
	}
	if spec.Resources.PidsLimit == 0 {
		spec.Resources.PidsLimit = c.resources.PidsLimit
	}
	if len(c.volumes) > 0 {
		taken := map[string]bool{}
		if spec.Workspace != "" {
			taken[WorkspaceDir] = true
		}
		for _, v := range spec.Volumes {
			if m, err := parseVolume(v); err == nil {
				taken[m.Target] = true
			}
		}
		var vols []string
		for _, v := range c.volumes {
			if m, err := parseVolume(v); err == nil && taken[m.Target] {
				continue
			}
			vols = append(vols, v)
		}
		spec.Volumes = append(vols, spec.Volumes...)
	}
	return spec
}
