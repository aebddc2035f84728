package docker

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/docker/docker/client"

	"corral/runtimes"
)

// PauseMode says how Pause and Resume freeze a sandbox.
type PauseMode string

const (
	// PauseFreeze uses `docker pause`/`unpause` (cgroup freezer): processes,
	// shells and their state survive; memory stays allocated.
	PauseFreeze PauseMode = "pause"
	// PauseStop uses `docker stop`/`start` as OpenHands does: memory is
	// released, the agent restarts on Resume, the filesystem (and so
	// ~/.bashrc with persisted env vars) survives, live shells do not.
	PauseStop PauseMode = "stop"
)

// OOMPolicy says what happens when the kernel OOM-kills a process inside a
// sandbox that itself keeps running.
type OOMPolicy string

const (
	// OOMKillSandbox treats any OOM kill as the loss of the sandbox: the
	// container is killed and Wait reports Exit{OOMKilled: true}. After an
	// OOM kill the victim may have been the agent or the shell, so the
	// sandbox's state cannot be trusted.
	OOMKillSandbox OOMPolicy = "kill"
	// OOMIgnore leaves the sandbox running; only the killed process is gone
	// (a command then typically ends with exit code 137).
	OOMIgnore OOMPolicy = "ignore"
)

// Option configures a Backend.
type Option func(*config)

type config struct {
	cli           client.APIClient
	agentBinary   string
	stateDir      string
	nodeID        string
	concurrency   int
	pauseMode     PauseMode
	network       string
	extraNetworks []string
	resources     runtimes.Resources
	volumes       []string
	logger        *slog.Logger
	reap          bool
	live          func(sessionID string) bool
	startTimeout  time.Duration
	stopTimeout   time.Duration
	image         string
	oomPolicy     OOMPolicy
	readyPoll     time.Duration
	agentUser     string
	readiness     Readiness
	warmPool      int
	owner         runtimes.Owner
}

func defaultConfig() config {
	host, _ := os.Hostname()
	if host == "" {
		host = "corral"
	}
	return config{
		stateDir:     filepath.Join(os.TempDir(), "corral-docker"),
		nodeID:       host,
		concurrency:  max(2, 2*runtime.NumCPU()),
		pauseMode:    PauseFreeze,
		network:      "bridge",
		logger:       slog.New(slog.DiscardHandler),
		startTimeout: 60 * time.Second,
		stopTimeout:  10 * time.Second,
		image:        DefaultImage,
		oomPolicy:    OOMKillSandbox,
		readyPoll:    2 * time.Millisecond,
		agentUser:    "0:0",
		readiness:    ReadySocket,
	}
}

// WithClient uses an existing Docker API client instead of one built from
// the environment (client.FromEnv). The Backend does not close it.
func WithClient(c client.APIClient) Option { return func(o *config) { o.cli = c } }

// WithAgentBinary sets the host path of the static corral-agent binary that
// is bind-mounted read-only into every container. Default: `corral-agent`
// next to the running executable, else in PATH.
func WithAgentBinary(path string) Option { return func(o *config) { o.agentBinary = path } }

// WithStateDir sets the host directory holding one short-named socket
// directory per sandbox (mounted at /.corral/run). Keep it short: the agent's
// socket path must fit the 108-byte unix socket limit. Default
// $TMPDIR/corral-docker.
func WithStateDir(dir string) Option { return func(o *config) { o.stateDir = dir } }

// WithNodeID sets the id written to the corral.node label of every
// container; orphan reaping only touches containers with this node id.
// Default: the host name.
func WithNodeID(id string) Option { return func(o *config) { o.nodeID = id } }

// WithStartConcurrency limits how many sandboxes start at once on this
// Docker host (create + start + agent ready); others wait their turn
// (honouring their ctx). Default 2 x the CPUs of this host (at least 2):
// the engine's throughput, not Corral, is the limit, and a queue in front of
// it keeps early sandboxes fast instead of slowing all of them (see
// BENCHMARKS.md). n < 1 means 1.
func WithStartConcurrency(n int) Option { return func(o *config) { o.concurrency = max(n, 1) } }

// WithPauseMode selects PauseFreeze (default) or PauseStop.
func WithPauseMode(m PauseMode) Option { return func(o *config) { o.pauseMode = m } }

// WithNetwork sets the default network mode ("bridge" (default), "none",
// "host" or a named network) used when Spec.Network is empty, plus networks
// every sandbox is connected to after start (OpenHands additional_networks).
// No host port is ever published.
func WithNetwork(mode string, additional ...string) Option {
	return func(o *config) { o.network, o.extraNetworks = mode, additional }
}

// WithDefaultResources sets limits for fields a Spec leaves at zero.
func WithDefaultResources(r runtimes.Resources) Option { return func(o *config) { o.resources = r } }

// WithDefaultVolumes mounts these OpenHands `volumes` entries
// (host:container[:mode]) into every sandbox, before Spec.Volumes; an entry
// for a container path the Spec mounts itself (or /workspace when the Spec
// has a workspace) is left out.
func WithDefaultVolumes(entries ...string) Option {
	return func(o *config) { o.volumes = append([]string(nil), entries...) }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *config) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithReapOrphans turns on removal, when the Backend is created, of every
// container labelled with this node's id whose session is not live (see
// WithLiveSessions), so a crash of Corral never leaks containers. Default
// off: turn it on in the long-running server, which knows its sessions.
func WithReapOrphans(on bool) Option { return func(o *config) { o.reap = on } }

// WithLiveSessions tells orphan reaping which sessions are still wanted
// (e.g. those about to be Recovered). Without it every container of this
// node is an orphan.
func WithLiveSessions(isLive func(sessionID string) bool) Option {
	return func(o *config) { o.live = isLive }
}

// WithStartTimeout bounds how long Start (and Resume/Recover in stop mode)
// waits for the agent to answer, on top of the caller's ctx. Default 60s.
func WithStartTimeout(d time.Duration) Option { return func(o *config) { o.startTimeout = d } }

// WithStopTimeout is the grace period given to processes when Pause stops a
// container in PauseStop mode. Default 10s.
func WithStopTimeout(d time.Duration) Option { return func(o *config) { o.stopTimeout = d } }

// WithDefaultImage sets the image used when Spec.Image is empty. Default
// corral-sandbox:latest.
func WithDefaultImage(img string) Option { return func(o *config) { o.image = img } }

// WithOOMPolicy selects what an OOM kill inside a running sandbox means
// (default OOMKillSandbox).
func WithOOMPolicy(p OOMPolicy) Option { return func(o *config) { o.oomPolicy = p } }

// WithReadyPollInterval sets how often Start probes the agent's socket
// while waiting for it. Default 2ms.
func WithReadyPollInterval(d time.Duration) Option {
	return func(o *config) { o.readyPoll = max(d, 100*time.Microsecond) }
}

// WithAgentUser sets the container user the agent process runs as
// (default "0:0": the agent needs root to run commands as Spec.User and to
// create its socket in the host-owned socket directory).
func WithAgentUser(u string) Option { return func(o *config) { o.agentUser = u } }

// Readiness says how Start learns that the agent is up.
type Readiness string

const (
	// ReadySocket polls the agent's socket (connect + GET /alive) every
	// WithReadyPollInterval. Default: measured faster (see BENCHMARKS.md).
	ReadySocket Readiness = "socket"
	// ReadyLogs attaches to the container's output before starting it and
	// waits for the agent's "listening on" line.
	ReadyLogs Readiness = "logs"
)

// WithReadiness selects how Start waits for the agent (default ReadySocket).
func WithReadiness(r Readiness) Option { return func(o *config) { o.readiness = r } }

// WithLiveSessionIDs is WithLiveSessions for a fixed set of session ids.
func WithLiveSessionIDs(ids ...string) Option {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return WithLiveSessions(func(s string) bool { return set[s] })
}

// WithWarmPool keeps n started, idle containers (agent up) per image,
// handed out by Start to sessions that set nothing but their image (see
// README, "Docker sandboxes"); the default image's pool fills from New,
// another image's from its first such Start. 0 (default): no pool.
func WithWarmPool(n int) Option { return func(o *config) { o.warmPool = max(n, 0) } }

// WithOwner sets the owner recorded on warm-pool containers; a Start takes
// one only when its Spec.Owner is this owner (labels cannot change after
// create). Without it pool containers have no owner and are never reaped.
func WithOwner(owner runtimes.Owner) Option { return func(o *config) { o.owner = owner } }
