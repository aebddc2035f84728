package docker

import (
	"fmt"
	"time"

	"corral/runtimes"
)

// Config is the TOML form of the backend's settings (a [docker] table that
// cmd/corral composes). Keys that mean what an OpenHands [sandbox] key
// means carry its name (runtime_container_image, use_host_network,
// additional_networks). Zero values mean "backend default".
type Config struct {
	AgentBinary        string   `toml:"agent_binary"`
	StateDir           string   `toml:"state_dir"`
	NodeID             string   `toml:"node_id"`
	Image              string   `toml:"runtime_container_image"`
	StartConcurrency   int      `toml:"start_concurrency"`
	PauseMode          string   `toml:"pause_mode"` // "pause" or "stop"
	Network            string   `toml:"network"`    // none, bridge, host or a named network
	UseHostNetwork     bool     `toml:"use_host_network"`
	AdditionalNetworks []string `toml:"additional_networks"`
	MemoryBytes        int64    `toml:"memory_bytes"`
	CPUs               float64  `toml:"cpus"`
	PidsLimit          int64    `toml:"pids_limit"`
	ReapOrphans        bool     `toml:"reap_orphans"`
	OOMPolicy          string   `toml:"oom_policy"`    // "kill" or "ignore"
	StartTimeout       string   `toml:"start_timeout"` // Go duration, e.g. "60s"
}

// Options turns the config into constructor options, refusing values that
// cannot work.
func (c Config) Options() ([]Option, error) {
	var opts []Option
	if c.AgentBinary != "" {
		opts = append(opts, WithAgentBinary(c.AgentBinary))
	}
	if c.StateDir != "" {
		opts = append(opts, WithStateDir(c.StateDir))
	}
	if c.NodeID != "" {
		opts = append(opts, WithNodeID(c.NodeID))
	}
	if c.Image != "" {
		opts = append(opts, WithDefaultImage(c.Image))
	}
	if c.StartConcurrency < 0 {
		return nil, fmt.Errorf("docker config: start_concurrency = %d: want >= 1 (0 = default)", c.StartConcurrency)
	}
	if c.StartConcurrency > 0 {
		opts = append(opts, WithStartConcurrency(c.StartConcurrency))
	}
	switch PauseMode(c.PauseMode) {
	case "":
	case PauseFreeze, PauseStop:
		opts = append(opts, WithPauseMode(PauseMode(c.PauseMode)))
	default:
		return nil, fmt.Errorf("docker config: pause_mode = %q: want \"pause\" or \"stop\"", c.PauseMode)
	}
	switch OOMPolicy(c.OOMPolicy) {
	case "":
	case OOMKillSandbox, OOMIgnore:
		opts = append(opts, WithOOMPolicy(OOMPolicy(c.OOMPolicy)))
	default:
		return nil, fmt.Errorf("docker config: oom_policy = %q: want \"kill\" or \"ignore\"", c.OOMPolicy)
	}
	network := c.Network
	if c.UseHostNetwork {
		if network != "" && network != "host" {
			return nil, fmt.Errorf("docker config: use_host_network = true conflicts with network = %q", network)
		}
		network = "host"
	}
	if network != "" || len(c.AdditionalNetworks) > 0 {
		if network == "" {
			network = defaultConfig().network
		}
		opts = append(opts, WithNetwork(network, c.AdditionalNetworks...))
	}
	if c.MemoryBytes < 0 || c.CPUs < 0 || c.PidsLimit < 0 {
		return nil, fmt.Errorf("docker config: memory_bytes, cpus and pids_limit must not be negative")
	}
	if c.MemoryBytes > 0 || c.CPUs > 0 || c.PidsLimit > 0 {
		opts = append(opts, WithDefaultResources(runtimes.Resources{
			MemoryBytes: c.MemoryBytes, NanoCPUs: int64(c.CPUs * 1e9), PidsLimit: c.PidsLimit,
		}))
	}
	if c.ReapOrphans {
		opts = append(opts, WithReapOrphans(true))
	}
	if c.StartTimeout != "" {
		d, err := time.ParseDuration(c.StartTimeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("docker config: start_timeout = %q: want a positive Go duration such as \"60s\"", c.StartTimeout)
		}
		opts = append(opts, WithStartTimeout(d))
	}
	return opts, nil
}
