package runtimes

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"corral/eventbus"
)

// Backend provisions sandboxes: a place where a corral-agent runs and
// answers agentwire. Its shape follows HashiCorp Nomad's task-driver plugin
// (start, recover, stop, destroy, inspect): every call is idempotent on the
// handle, and a Handle is plain data that survives a restart of Corral so
// the sandbox can be re-attached.
//
// Implementations must not block forever: every call honours ctx.
type Backend interface {
	// Name is the registry name ("local", "docker", "remote").
	Name() string
	// Capabilities says which optional calls are supported.
	Capabilities() Capabilities
	// Start provisions a sandbox and returns once its agent accepts
	// connections at Handle.AgentAddr.
	Start(ctx context.Context, spec Spec) (*Handle, error)
	// Recover re-attaches to a sandbox started earlier (possibly by another
	// Corral process) and returns its current handle; ErrNotFound when the
	// sandbox no longer exists.
	Recover(ctx context.Context, h *Handle) (*Handle, error)
	// Stop ends the sandbox's processes, waiting up to timeout before
	// killing them. The sandbox can still be inspected afterwards.
	Stop(ctx context.Context, h *Handle, timeout time.Duration) error
	// Destroy removes everything the sandbox owns. Destroying a sandbox that
	// is already gone is not an error.
	Destroy(ctx context.Context, h *Handle) error
	// Pause freezes the sandbox; Resume thaws it. ErrNotSupported where the
	// capability is missing.
	Pause(ctx context.Context, h *Handle) error
	Resume(ctx context.Context, h *Handle) error
	// Inspect reports the sandbox's state.
	Inspect(ctx context.Context, h *Handle) (State, error)
	// Wait returns a channel that receives one Exit when the sandbox dies on
	// its own (crash, OOM kill, killed from outside), then is closed. It is
	// closed without a value when ctx ends or the sandbox is destroyed.
	Wait(ctx context.Context, h *Handle) (<-chan Exit, error)
	// Connect opens a connection to the agent of a started (or recovered)
	// sandbox. The backend alone knows how to reach its sandboxes (unix
	// socket, TLS, SSH tunnel, in-process executor): nobody else dials an
	// agent.
	Connect(ctx context.Context, h *Handle) (AgentConn, error)
}

// AgentConn is a live connection to one sandbox's agent.
type AgentConn interface {
	// Execute runs one action and returns its observation; onChunk, when
	// not nil, receives output as it is produced (in order, each seq once).
	// reqID names the request on the agent: sending the same id again, also
	// on a new connection after Corral restarted, is answered from the
	// running or finished request and never runs the action twice (within
	// the agent's retention). "" picks a fresh id.
	Execute(ctx context.Context, reqID string, action *eventbus.Event, onChunk func(seq uint64, data []byte)) (*eventbus.Event, error)
	// Interrupt interrupts what runs in the sandbox now, out of band: it
	// does not wait behind a running Execute, whose observation then tells
	// how the action ended (a command: exit code 130 and OpenHands' C-c
	// suffix "[The command completed with exit code 130. CTRL+C was
	// sent.]"; a Python cell: a KeyboardInterrupt traceback). With nothing
	// running it does nothing and returns nil. An agent that cannot
	// interrupt (older than the feature) returns an error matching
	// errors.ErrUnsupported.
	Interrupt(ctx context.Context) error
	// ListFiles lists a directory with OpenHands' list_files semantics.
	ListFiles(ctx context.Context, path string) ([]string, error)
	// Upload writes filename (a zip to unpack into dest when recursive)
	// into directory dest of the sandbox.
	Upload(ctx context.Context, dest string, r io.Reader, filename string, recursive bool) error
	// Download writes a zip of path to w.
	Download(ctx context.Context, path string, w io.Writer) error
	Close() error
	// Done is closed when the connection is lost for good; Err says why.
	Done() <-chan struct{}
	Err() error
}

// HTTPAgent is implemented by agent connections that speak HTTP to their
// agent (agentwire.Client): RoundTrip sends a request to the agent's HTTP
// API (OpenHands' action-execution endpoints: /alive, /execute_action,
// /list_files, ...) over the connection's own transport, the same dialer,
// TLS or SSH tunnel as the connection. The request URL's scheme and host
// are replaced by the agent's; no credentials are added (OpenHands'
// endpoints check the X-Session-API-Key the caller sends). Connections
// without it (the in-process cli runtime) have no HTTP API.
type HTTPAgent interface {
	RoundTrip(req *http.Request) (*http.Response, error)
}

// Capabilities lists a backend's optional features.
type Capabilities struct {
	Pause   bool // Pause/Resume work
	Recover bool // Recover can re-attach after a restart of Corral
	Images  bool // Spec.Image is meaningful
	Limits  bool // Spec.Resources are enforced
	// HostUser: commands run as the host user in the host's HOME
	// (OpenHands' cli runtime), so the engine must not change global
	// settings such as `git config --global`.
	HostUser bool
	Networks bool // Spec.Network is honoured
}

// Spec describes the sandbox to start.
type Spec struct {
	SessionID string            // the Corral session this sandbox serves
	Image     string            // container image (docker); ignored elsewhere
	Workspace string            // host directory or volume spec for /workspace; empty = backend default
	Env       map[string]string // environment of the agent and its shells
	User      string            // user the agent runs commands as; empty = backend default
	WorkDir   string            // working directory inside the sandbox
	Resources Resources
	Network   string            // network mode; empty = backend default
	Volumes   []string          // OpenHands `volumes` entries host:container[:mode]
	Labels    map[string]string // extra labels (docker) or metadata
	Owner     Owner             // the engine that owns the sandbox (recorded on it)
}

// Owner identifies the engine that owns a sandbox. Backends record it on
// the sandbox (container labels, the local state file, Handle.Meta) so that
// reaping can tell a dead owner's sandboxes from a live one's.
//
// Liveness is an exclusive flock the owner holds on LockPath for its whole
// life: the kernel drops it when the process dies, however it dies.
type Owner struct {
	// ID is the owner's stable id: the event store's id. A process that
	// re-opens the same store after a crash is the same owner and
	// re-adopts the sandboxes.
	ID string
	// Instance is unique per process run (diagnosis only).
	Instance string
	// Host is the hostname of the owner; liveness can only be checked on
	// the same host, so sandboxes of owners on other hosts are never
	// reaped.
	Host string
	// LockPath is the file the owner holds an exclusive flock on.
	LockPath string
	// Durable owners (`corral serve` on a persistent store) have their
	// sessions recovered by the next process on the same store: their
	// sandboxes are reaped only once LockPath no longer exists. Ephemeral
	// owners (exec, farm, shell on a temporary store) are reaped as soon
	// as the lock is free.
	Durable bool
}

// Resources are limits; zero means unlimited.
type Resources struct {
	MemoryBytes int64
	NanoCPUs    int64
	PidsLimit   int64
}

// Handle identifies a started sandbox. It is plain data (JSON-encodable) so
// it can be stored and passed to Recover after a restart.
type Handle struct {
	Backend   string            `json:"backend"`
	ID        string            `json:"id"`         // backend-specific id (container id, pid, host/pid)
	SessionID string            `json:"session_id"` // Spec.SessionID
	AgentAddr string            `json:"agent_addr"` // "unix:///path.sock" or "host:port"
	Token     string            `json:"token"`      // agentwire token
	Workspace string            `json:"workspace"`  // host path of the workspace, where known
	Meta      map[string]string `json:"meta,omitempty"`
}

// State is what Inspect reports.
type State struct {
	Running bool
	Paused  bool
	Exit    *Exit // set once the sandbox has exited
}

// Exit describes how a sandbox ended.
type Exit struct {
	Code      int
	OOMKilled bool
	Signal    int
	Reason    string
}

// Errors backends return (wrapped with detail).
var (
	ErrNotFound     = errors.New("sandbox not found")
	ErrNotSupported = errors.New("not supported by this backend")
)
