package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"corral/runtimes"
)

var _ runtimes.LogSource = (*Backend)(nil)

// Logs implements runtimes.LogSource with the Engine's container logs
// (docker logs --timestamps): the container's stdout and stderr, which hold
// corral-agent's own log since the agent is the container's main process.
// Docker prefixes each line with its RFC 3339 nano timestamp, and ends a
// followed stream when the container stops. A removed container is
// runtimes.ErrNotFound: its logs went with it.
func (b *Backend) Logs(ctx context.Context, h *runtimes.Handle, opts runtimes.LogOptions) (io.ReadCloser, error) {
	insp, err := b.lookup(ctx, h)
	if err != nil {
		return nil, err
	}
	tail := "all"
	if opts.Tail >= 0 {
		tail = strconv.Itoa(opts.Tail)
	}
	body, err := b.cli.ContainerLogs(ctx, insp.ID, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: opts.Follow, Tail: tail,
	})
	if err != nil {
		return nil, b.notFound("read the logs of", insp.ID, err)
	}
	if insp.Config != nil && insp.Config.Tty {
		return body, nil // a TTY's output is one raw stream
	}
	// Without a TTY the Engine multiplexes stdout and stderr in frames;
	// both go to one reader, in the order Docker sends them.
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := stdcopy.StdCopy(pw, pw, body)
		if err != nil {
			err = fmt.Errorf("docker backend: read the logs of container %s: %w", insp.ID, err)
		}
		pw.CloseWithError(err)
	}()
	return &demuxed{PipeReader: pr, body: body, done: done}, nil
}

// demuxed is the reader Logs returns: Close ends the copy goroutine and
// waits for it, so no goroutine outlives the caller's Close.
type demuxed struct {
	*io.PipeReader
	body io.Closer
	done chan struct{}
	once sync.Once
}

func (d *demuxed) Close() error {
	d.once.Do(func() {
		_ = d.PipeReader.Close()
		_ = d.body.Close()
		<-d.done
	})
	return nil
}
