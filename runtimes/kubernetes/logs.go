package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"corral/runtimes"
)

var _ runtimes.LogSource = (*Backend)(nil)

// Logs implements runtimes.LogSource with the kubelet's container log of
// the sandbox container (kubectl logs --timestamps): corral-agent's own
// log, since the agent is the container's main process. Each line starts
// with its RFC 3339 nano timestamp; a followed stream ends when the
// container stops. A deleted pod is runtimes.ErrNotFound: its logs went
// with it.
func (b *Backend) Logs(ctx context.Context, h *runtimes.Handle, opts runtimes.LogOptions) (io.ReadCloser, error) {
	pod, err := b.lookup(ctx, h)
	if err != nil {
		return nil, err
	}
	lo := &corev1.PodLogOptions{Container: sandboxContainer, Follow: opts.Follow, Timestamps: true}
	if opts.Tail >= 0 {
		lo.TailLines = ptr(int64(opts.Tail))
	}
	rc, err := b.client.CoreV1().Pods(b.cfg.Namespace).GetLogs(pod.Name, lo).Stream(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("kubernetes backend: logs of pod %s/%s: %w", b.cfg.Namespace, pod.Name, errors.Join(runtimes.ErrNotFound, err))
	case err != nil:
		return nil, fmt.Errorf("kubernetes backend: logs of pod %s: %w", pod.Name, b.apiErr("get", "pods/log", err))
	}
	return rc, nil
}
