package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"corral/runtimes"
)

// LogsEngine is the optional Engine capability behind GET
// /api/sessions/{id}/logs: the sandbox's own log (its agent's output) as
// lines "TIMESTAMP TEXT" (runtimes.LogSource). An Engine without it is
// answered 501.
type LogsEngine interface {
	Logs(ctx context.Context, id string, opts runtimes.LogOptions) (io.ReadCloser, error)
}

// MaxLogTail bounds ?tail=: more lines than a sandbox's agent log holds in
// practice, few enough that a typo does not ask for a huge read.
const MaxLogTail = 100_000

// Logs implements LogsEngine (actors' Logs).
func (a *EngineAdapter) Logs(ctx context.Context, id string, opts runtimes.LogOptions) (io.ReadCloser, error) {
	rc, err := a.eng.Logs(ctx, id, opts)
	return rc, mapErr(err)
}

// sessionLogs streams the sandbox's log as text/plain: the lines so far
// (the last ?tail=N), then, with ?follow=true, new lines until the sandbox
// stops, the client goes away or the server closes. A followed stream that
// ends because the sandbox stopped or is gone, or because the server is
// shutting down, says so on a last line "TIMESTAMP corral: end of logs: ...".
func (s *Server) sessionLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	opts, err := logOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	le, ok := s.eng.(LogsEngine)
	if !ok {
		writeError(w, http.StatusNotImplemented, "not_supported", "this server's engine cannot read sandbox logs")
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.baseCtx, cancel) // the server is closing
	defer stop()
	rc, err := le.Logs(ctx, id, opts)
	if errors.Is(err, runtimes.ErrNotFound) {
		writeError(w, http.StatusGone, "sandbox_gone",
			fmt.Sprintf("session %q: its sandbox is gone and its logs with it (%v); the session's events are still at GET /api/sessions/%s/events", id, err, id))
		return
	}
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("logs of session %q", id), err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush() // the client knows the stream is open before the first line
	rerr := copyFlushing(w, rc)
	switch {
	case r.Context().Err() != nil: // the client went away: nobody to tell
	case s.baseCtx.Err() != nil:
		writeLogEnd(w, "the server is shutting down")
	case rerr != nil:
		writeLogEnd(w, fmt.Sprintf("the log could not be read further: %v", rerr))
	case opts.Follow:
		writeLogEnd(w, "the sandbox stopped")
	}
}

// logOptions parses ?follow= and ?tail= (absent: not following, every
// line).
func logOptions(r *http.Request) (runtimes.LogOptions, error) {
	q := r.URL.Query()
	opts := runtimes.LogOptions{Tail: -1}
	if v := q.Get("follow"); v != "" {
		f, err := strconv.ParseBool(v)
		if err != nil {
			return opts, fmt.Errorf("query parameter follow=%q: want true or false", v)
		}
		opts.Follow = f
	}
	if q.Has("tail") {
		v := q.Get("tail")
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxLogTail {
			return opts, fmt.Errorf("query parameter tail=%q: want a whole number of lines from 0 to %d, or leave tail out for the whole log", v, MaxLogTail)
		}
		opts.Tail = n
	}
	return opts, nil
}

// copyFlushing copies r to w, flushing after every read so followed lines
// reach the client as they are written. It returns r's error (nil at EOF);
// a failed write ends it quietly (the client is gone).
func copyFlushing(w http.ResponseWriter, r io.Reader) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			_ = rc.Flush()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// writeLogEnd writes the stream's last line, stamped like the log's own.
func writeLogEnd(w http.ResponseWriter, why string) {
	_, _ = fmt.Fprintf(w, "%s corral: end of logs: %s\n", time.Now().UTC().Format(time.RFC3339Nano), why)
	_ = http.NewResponseController(w).Flush()
}
