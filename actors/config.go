package actors

import (
	"fmt"
	"time"
)

// Config is the engine's part of the configuration file ([engine]). Keys
// that mean what an OpenHands config key means carry its name.
type Config struct {
	// MaxSessions bounds concurrently running sessions on this node.
	MaxSessions int `toml:"max_sessions"`
	// MaxQueued bounds sessions waiting for admission; beyond it
	// CreateSession fails with ErrQueueFull.
	MaxQueued int `toml:"max_queued"`
	// MaxConcurrentStarts bounds sandbox starts in flight per backend.
	MaxConcurrentStarts int `toml:"max_concurrent_starts"`
	// DefaultRuntime is used when a SessionSpec names none.
	DefaultRuntime string `toml:"default_runtime"`

	// Timeout is OpenHands' sandbox.timeout: the hard timeout in seconds set
	// on actions that carry none.
	Timeout int `toml:"timeout"`
	// KeepRuntimeAlive leaves sandboxes running when their session stops.
	KeepRuntimeAlive bool `toml:"keep_runtime_alive"`
	// RuntimeStartupEnvVars are exported in every sandbox after start.
	RuntimeStartupEnvVars map[string]string `toml:"runtime_startup_env_vars"`
	// InitGitInEmptyWorkspace runs `git init` in a workspace without a repository.
	InitGitInEmptyWorkspace bool `toml:"init_git_in_empty_workspace"`
	// GitUserName and GitUserEmail are written with `git config --global`.
	GitUserName  string `toml:"git_user_name"`
	GitUserEmail string `toml:"git_user_email"`
	// SkipGitConfig disables the `git config --global` step (it changes the
	// host's ~/.gitconfig when the agent runs on the host).
	SkipGitConfig bool `toml:"skip_git_config"`

	// StartTimeout is the deadline of STATUS$STARTING_RUNTIME.
	StartTimeout Duration `toml:"start_timeout"`
	// SetupTimeout is the deadline of each workspace set-up state; the
	// setup script alone may take 600 s as in OpenHands.
	SetupTimeout Duration `toml:"setup_timeout"`
	// StopTimeout bounds stopping a sandbox before it is killed.
	StopTimeout Duration `toml:"stop_timeout"`

	// RestartMaxRetries is how many consecutive runtime failures are
	// restarted before the session gives up with STATUS$ERROR.
	RestartMaxRetries int `toml:"restart_max_retries"`
	// RestartInitialBackoff and RestartMaxBackoff shape the exponential
	// backoff between restarts.
	RestartInitialBackoff Duration `toml:"restart_initial_backoff"`
	RestartMaxBackoff     Duration `toml:"restart_max_backoff"`
	// AgentGracePeriod is how long a lost agent connection may try to
	// reconnect (resuming in-flight output from its last chunk) before the
	// sandbox is declared lost: STATUS$ERROR_RUNTIME_DISCONNECTED, an error
	// observation, then supervision.
	AgentGracePeriod Duration `toml:"agent_grace_period"`
	// OnLostSandbox says what a session recovered after a crash of Corral
	// does when its sandbox did not survive: "restart" goes on in a new
	// sandbox, "stop" leaves the session stopped (it can be started again).
	// Either way the action that was in flight gets an error observation
	// (AGENT_ERROR$SANDBOX_LOST).
	OnLostSandbox string `toml:"on_lost_sandbox"`

	// DataDir holds per-session files the engine writes itself
	// (task_tracking's TASKS.md) when the log store has no directory.
	DataDir string `toml:"data_dir"`
}

// Duration is a time.Duration written in TOML as a string ("120s", "1m30s").
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

// DefaultConfig returns the defaults every zero field of a Config falls back to.
func DefaultConfig() Config {
	return Config{
		MaxSessions:           1000,
		MaxQueued:             1000,
		MaxConcurrentStarts:   32,
		DefaultRuntime:        "local",
		Timeout:               120,
		GitUserName:           "openhands",
		GitUserEmail:          "openhands@all-hands.dev",
		StartTimeout:          Duration(120 * time.Second),
		SetupTimeout:          Duration(660 * time.Second),
		StopTimeout:           Duration(10 * time.Second),
		RestartMaxRetries:     5,
		RestartInitialBackoff: Duration(100 * time.Millisecond),
		RestartMaxBackoff:     Duration(10 * time.Second),
		AgentGracePeriod:      Duration(30 * time.Second),
		OnLostSandbox:         LostSandboxRestart,
	}
}

// Values of Config.OnLostSandbox.
const (
	LostSandboxRestart = "restart"
	LostSandboxStop    = "stop"
)

// Validate reports settings that cannot work, naming the key.
func (c Config) Validate() error {
	switch c.OnLostSandbox {
	case "", LostSandboxRestart, LostSandboxStop:
		return nil
	}
	return fmt.Errorf("[engine] on_lost_sandbox = %q: use %q or %q", c.OnLostSandbox, LostSandboxRestart, LostSandboxStop)
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxSessions <= 0 {
		c.MaxSessions = d.MaxSessions
	}
	if c.MaxQueued < 0 {
		c.MaxQueued = 0
	}
	if c.MaxConcurrentStarts <= 0 {
		c.MaxConcurrentStarts = d.MaxConcurrentStarts
	}
	if c.DefaultRuntime == "" {
		c.DefaultRuntime = d.DefaultRuntime
	}
	if c.OnLostSandbox == "" {
		c.OnLostSandbox = d.OnLostSandbox
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.GitUserName == "" {
		c.GitUserName = d.GitUserName
	}
	if c.GitUserEmail == "" {
		c.GitUserEmail = d.GitUserEmail
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = d.StartTimeout
	}
	if c.SetupTimeout <= 0 {
		c.SetupTimeout = d.SetupTimeout
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = d.StopTimeout
	}
	if c.RestartMaxRetries < 0 {
		c.RestartMaxRetries = 0
	}
	if c.RestartInitialBackoff <= 0 {
		c.RestartInitialBackoff = d.RestartInitialBackoff
	}
	if c.AgentGracePeriod <= 0 {
		c.AgentGracePeriod = d.AgentGracePeriod
	}
	if c.RestartMaxBackoff <= 0 {
		c.RestartMaxBackoff = d.RestartMaxBackoff
	}
	return c
}
