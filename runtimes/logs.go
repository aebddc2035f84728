package runtimes

import (
	"context"
	"io"
)

// LogSource is implemented by backends that can read a sandbox's own logs:
// what its main process (the agent) writes, outside any action. The engine
// uses it for GET /api/sessions/{id}/logs; backends without it (cli,
// remote) are refused with ErrNotSupported.
type LogSource interface {
	// Logs returns the sandbox's log as lines "TIMESTAMP TEXT\n", TIMESTAMP
	// in RFC 3339 with nanoseconds, UTC (docker logs --timestamps). With
	// opts.Follow the reader delivers new lines as they are written and
	// reaches EOF once the sandbox stops (or ctx ends, or the reader is
	// closed); without it EOF comes after the lines written so far. A
	// sandbox that is gone with its logs is ErrNotFound (wrapped). The
	// caller must Close the reader; Close ends every goroutine behind it.
	Logs(ctx context.Context, h *Handle, opts LogOptions) (io.ReadCloser, error)
}

// LogOptions select what Logs returns.
type LogOptions struct {
	Follow bool
	// Tail is how many of the last lines to return before following; a
	// negative value returns every line.
	Tail int
}
