package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"corral/runtimes"
)

var _ runtimes.LogSource = (*Backend)(nil)

// logPoll is how often a followed log looks for new lines and for the
// agent's end: a file has no "written" event we could wait on portably.
const logPoll = 50 * time.Millisecond

// Logs implements runtimes.LogSource with the agent's own log, agent.log in
// its socket directory (its stdout and stderr). The agent logs with slog's
// text handler, so each line's "time=" is its timestamp; a line without one
// (a panic trace) gets the previous line's. A followed log ends once the
// agent has exited and its last lines are read. The log is removed with the
// sandbox (Destroy): then Logs is runtimes.ErrNotFound.
func (b *Backend) Logs(ctx context.Context, h *runtimes.Handle, opts runtimes.LogOptions) (io.ReadCloser, error) {
	if h == nil || h.Meta[metaSockDir] == "" || !strings.HasPrefix(filepath.Base(h.Meta[metaSockDir]), "corral-agent-") {
		return nil, fmt.Errorf("local backend: logs: the handle names no agent directory: %w", runtimes.ErrNotFound)
	}
	path := filepath.Join(h.Meta[metaSockDir], agentLog)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("local backend: the log of agent %s (%s) was removed with its sandbox: %w", h.ID, path, runtimes.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("local backend: open the agent's log: %w", err)
	}
	st, err := f.Stat()
	if err == nil && opts.Tail >= 0 {
		err = seekTail(f, opts.Tail)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("local backend: read the agent's log %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	lr := &logReader{PipeReader: pr, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		defer f.Close()
		pw.CloseWithError(b.copyLog(ctx, h, f, pw, st.ModTime(), opts.Follow))
	}()
	return lr, nil
}

// copyLog writes the lines of f to w, stamped, until EOF (or, following,
// until the agent has ended and its last line is read, or ctx ends).
func (b *Backend) copyLog(ctx context.Context, h *runtimes.Handle, f *os.File, w io.Writer, stamp time.Time, follow bool) error {
	r := bufio.NewReader(f)
	var partial []byte
	var tick *time.Ticker
	for {
		line, err := r.ReadBytes('\n')
		partial = append(partial, line...)
		if err == nil {
			if _, err := w.Write(stampLine(partial, &stamp)); err != nil {
				return nil // the reader was closed
			}
			partial = partial[:0]
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		if !follow || ctx.Err() != nil {
			break
		}
		if st, ierr := b.Inspect(ctx, h); ierr != nil || !st.Running && !st.Paused {
			follow = false // it has ended: read what it wrote last, then stop
			continue
		}
		if tick == nil {
			tick = time.NewTicker(logPoll)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	if len(partial) > 0 && ctx.Err() == nil {
		_, _ = w.Write(stampLine(append(partial, '\n'), &stamp))
	}
	return nil
}

// stampLine turns an slog text line "time=T rest" into "T rest" with T in
// UTC RFC 3339 nano; other lines get the last stamp seen.
func stampLine(line []byte, last *time.Time) []byte {
	rest := line
	if after, ok := bytes.CutPrefix(line, []byte("time=")); ok {
		end := bytes.IndexAny(after, " \n")
		if t, err := time.Parse(time.RFC3339Nano, string(after[:max(end, 0)])); end > 0 && err == nil {
			*last = t
			rest = bytes.TrimPrefix(after[end:], []byte(" "))
		}
	}
	out := make([]byte, 0, len(rest)+36)
	out = last.UTC().AppendFormat(out, time.RFC3339Nano)
	out = append(out, ' ')
	return append(out, rest...)
}

// seekTail positions f at the start of its last n lines (a final line
// without newline counts as one).
func seekTail(f *os.File, n int) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	start := len(data)
	if n > 0 {
		end := len(data)
		if end > 0 && data[end-1] == '\n' {
			end-- // the last line's own newline does not start a line
		}
		start = 0
		for i, seen := end-1, 0; i >= 0; i-- {
			if data[i] == '\n' {
				if seen++; seen == n {
					start = i + 1
					break
				}
			}
		}
	}
	_, err = f.Seek(int64(start), io.SeekStart)
	return err
}

// logReader is what Logs returns: Close stops the copy goroutine and waits
// for it, so nothing outlives the caller's Close.
type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (l *logReader) Close() error {
	l.once.Do(func() {
		l.cancel()
		_ = l.PipeReader.Close()
		<-l.done
	})
	return nil
}
