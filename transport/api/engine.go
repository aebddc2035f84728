package api

import (
	"context"
	"errors"
	"io"
	"time"

	"corral/eventbus"
	"corral/runtimes"
)

// Engine is what the server needs from the session engine. Errors should
// wrap one of the Err* sentinels below so the server can pick the status
// code; anything else is a 500.
type Engine interface {
	CreateSession(ctx context.Context, req SessionRequest) (Session, error)
	ListSessions(ctx context.Context) ([]Session, error)
	GetSession(ctx context.Context, id string) (Session, error)
	// DeleteSession stops the session and releases its sandbox; its events
	// stay readable.
	DeleteSession(ctx context.Context, id string) (Session, error)
	// StartSession runs a stopped session again under the same id (its
	// events are kept and new ones continue their ids).
	StartSession(ctx context.Context, id string) (Session, error)
	PauseSession(ctx context.Context, id string) (Session, error)
	ResumeSession(ctx context.Context, id string) (Session, error)
	// Interrupt sends Ctrl-C to what runs in the session's sandbox now,
	// past the action queue: the in-flight run ends with exit code 130 and
	// OpenHands' C-c suffix, queued actions stay queued. Nothing running:
	// nil. ErrNotFound, ErrNotRunning (stopped, paused, not ready yet),
	// ErrNotSupported (an agent without interrupt).
	Interrupt(ctx context.Context, id string) error

	// Submit stores the action and queues it; it returns the action's id.
	Submit(ctx context.Context, id string, action *eventbus.Event) (int64, error)
	// Run submits the action and waits for its observation; obs is nil
	// when the action gets none (e.g. it awaits confirmation).
	Run(ctx context.Context, id string, action *eventbus.Event) (actionID int64, obs *eventbus.Event, err error)
	// Confirm and Reject decide an action awaiting confirmation. They
	// return the id of the event that records the decision (the action
	// re-added with its new confirmation_state, as OpenHands does).
	Confirm(ctx context.Context, id string, eventID int64) (int64, error)
	Reject(ctx context.Context, id string, eventID int64) (int64, error)

	// Events returns stored events that pass f.
	Events(ctx context.Context, id string, f eventbus.Filter) ([]*eventbus.Item, error)
	// Subscribe delivers events with id >= from: stored ones, then live ones,
	// in order, without gap or duplicate (eventbus.Subscription semantics: an
	// overflow ends it with an *eventbus.OverflowError).
	Subscribe(ctx context.Context, id string, from int64) (EventSubscription, error)
	// SubscribeOutput delivers live output chunks of the session's running
	// commands until cancel is called or the session ends (then the channel
	// is closed). Chunks are not stored; a slow reader may lose some.
	SubscribeOutput(ctx context.Context, id string) (chunks <-chan OutputChunk, cancel func(), err error)

	// ListFiles lists a directory of the sandbox with OpenHands' list_files
	// semantics (path "" = the working directory).
	ListFiles(ctx context.Context, id, path string) ([]string, error)
	// Upload writes one file named name into directory dest of the sandbox.
	Upload(ctx context.Context, id, dest, name string, r io.Reader) error
	// Download writes a zip of the sandbox directory path to w.
	Download(ctx context.Context, id, path string, w io.Writer) error

	// Ready reports whether the engine accepts new sessions (nil = ready).
	Ready(ctx context.Context) error
}

// EventSubscription is a live event subscription; *eventbus.Subscription
// implements it.
type EventSubscription interface {
	C() <-chan *eventbus.Item
	Err() error
	Close()
}

// OutputChunk is a piece of a running command's output.
type OutputChunk struct {
	ActionID int64
	Seq      uint64
	Data     []byte
}

// SessionRequest is the body of POST /api/sessions.
type SessionRequest struct {
	// ID is optional; the engine assigns one when empty.
	ID        string            `json:"id,omitempty"`
	Runtime   string            `json:"runtime,omitempty"`
	Image     string            `json:"image,omitempty"`
	Workspace string            `json:"workspace,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Resources Resources         `json:"resources,omitzero"`
	// MCP is the session's MCP servers (the body's mcp_config, decoded and
	// validated by the handler); nil: the server's default ([mcp]).
	MCP *eventbus.MCPConfig `json:"-"`
}

// Resources are sandbox limits; zero means the backend's default. A
// runtime that cannot enforce them refuses the session (501).
type Resources struct {
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	NanoCPUs    int64 `json:"nano_cpus,omitempty"`
	PidsLimit   int64 `json:"pids_limit,omitempty"`
}

func (r Resources) toRuntimes() runtimes.Resources {
	return runtimes.Resources{MemoryBytes: r.MemoryBytes, NanoCPUs: r.NanoCPUs, PidsLimit: r.PidsLimit}
}

// Session is a session as the API reports it.
type Session struct {
	ID            string     `json:"id"`
	Status        string     `json:"status"` // QUEUED, STARTING, RUNNING, PAUSED, STOPPING, STOPPED, ERROR
	Backend       string     `json:"backend"`
	Node          string     `json:"node,omitempty"`           // host the sandbox runs on (remote host name, else this server's)
	RuntimeStatus string     `json:"runtime_status,omitempty"` // last STATUS$... id
	Image         string     `json:"image,omitempty"`
	Workspace     string     `json:"workspace,omitempty"`
	Created       time.Time  `json:"created"`
	LastActivity  time.Time  `json:"last_activity"`
	QueuePosition int        `json:"queue_position,omitempty"`
	Restarts      int        `json:"restarts,omitempty"`
	Error         string     `json:"error,omitempty"`
	ForkedFrom    *ForkPoint `json:"forked_from,omitempty"` // the session and event it was forked from
}

// Errors an Engine wraps so the server maps them to statuses.
var (
	ErrNotFound       = errors.New("not found")                              // 404
	ErrNotRunning     = errors.New("session is not running")                 // 409
	ErrConflict       = errors.New("conflict")                               // 409
	ErrInvalid        = errors.New("invalid request")                        // 400
	ErrQueueFull      = errors.New("admission queue full")                   // 503
	ErrNotSupported   = errors.New("not supported by the session's runtime") // 501
	ErrShuttingDown   = errors.New("engine shutting down")                   // 503
	ErrUnknownRuntime = errors.New("unknown runtime")                        // 400
	// ErrUnavailable: the session cannot act now (the cluster's replicated
	// store has no quorum, or another node took the session over); retry.
	ErrUnavailable = errors.New("session temporarily unavailable") // 503
)
