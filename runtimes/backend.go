package runtimes

import (
	"context"
	"errors"
	"time"
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
}

// Capabilities lists a backend's optional features.
type Capabilities struct {
	Pause    bool // Pause/Resume work
	Recover  bool // Recover can re-attach after a restart of Corral
	Images   bool // Spec.Image is meaningful
	Limits   bool // Spec.Resources are enforced
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
