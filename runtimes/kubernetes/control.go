package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"corral/runtimes"
)

// The calls on a started sandbox: Recover, Stop, Destroy, Inspect, Wait,
// Pause and Resume.

// lookup finds the pod behind a handle: by name (and uid, when the handle
// has one), or, for a handle with only a session id, by the corral.session
// label and the exact id in the annotation, newest first. ErrNotFound
// (wrapped) when there is none.
func (b *Backend) lookup(ctx context.Context, h *runtimes.Handle) (*corev1.Pod, error) {
	if h == nil {
		return nil, errors.New("kubernetes backend: nil handle")
	}
	if ns := h.Meta[metaNamespace]; ns != "" && ns != b.cfg.Namespace {
		return nil, fmt.Errorf("kubernetes backend: pod %s is in namespace %q, but this backend serves namespace %q: use a backend configured with namespace = %q", h.ID, ns, b.cfg.Namespace, ns)
	}
	pods := b.client.CoreV1().Pods(b.cfg.Namespace)
	if h.ID != "" {
		pod, err := pods.Get(ctx, h.ID, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("kubernetes backend: pod %s/%s: %w", b.cfg.Namespace, h.ID, runtimes.ErrNotFound)
		case err != nil:
			return nil, fmt.Errorf("kubernetes backend: %w", b.apiErr("get", "pods", err))
		case pod.Labels[LabelManaged] != "true":
			return nil, fmt.Errorf("kubernetes backend: pod %s/%s is not managed by Corral (no %s=true label)", b.cfg.Namespace, h.ID, LabelManaged)
		case h.Meta[metaPodUID] != "" && string(pod.UID) != h.Meta[metaPodUID]:
			return nil, fmt.Errorf("kubernetes backend: pod %s/%s is another pod now (uid %s, the handle's %s): %w", b.cfg.Namespace, h.ID, pod.UID, h.Meta[metaPodUID], runtimes.ErrNotFound)
		}
		return pod, nil
	}
	if h.SessionID == "" {
		return nil, errors.New("kubernetes backend: the handle has neither a pod name nor a session id")
	}
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: LabelManaged + "=true," + LabelSession + "=" + labelValue(h.SessionID)})
	if err != nil {
		return nil, fmt.Errorf("kubernetes backend: %w", b.apiErr("list", "pods", err))
	}
	var mine []*corev1.Pod
	for i := range list.Items {
		if p := &list.Items[i]; p.Annotations[AnnotationSession] == h.SessionID && p.DeletionTimestamp == nil {
			mine = append(mine, p)
		}
	}
	if len(mine) == 0 {
		return nil, fmt.Errorf("kubernetes backend: session %s: no pod in namespace %q: %w", h.SessionID, b.cfg.Namespace, runtimes.ErrNotFound)
	}
	sort.Slice(mine, func(i, j int) bool { return mine[j].CreationTimestamp.Before(&mine[i].CreationTimestamp) })
	return mine[0], nil
}

// Recover implements runtimes.Backend: it finds the pod (see lookup),
// waits until it runs if it is still starting, and until its agent
// answers, and returns a fresh handle (token read back from the pod). A pod
// whose sandbox has ended cannot be restarted (restartPolicy Never): that
// is ErrNotFound, with the reason.
func (b *Backend) Recover(ctx context.Context, h *runtimes.Handle) (*runtimes.Handle, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, b.cfg.StartTimeout.D(), errStartTimeout)
	defer cancel()
	pod, err := b.lookup(ctx, h)
	if err != nil {
		return nil, err
	}
	if e := exitOfPod(pod, false); e != nil {
		return nil, fmt.Errorf("kubernetes backend: recover pod %s/%s: the sandbox has ended (%s) and a pod cannot be restarted: %w", pod.Namespace, pod.Name, e.Reason, runtimes.ErrNotFound)
	}
	bx, err := b.watch.follow(pod.Name)
	if err != nil {
		return nil, err
	}
	out, err := b.await(ctx, bx)
	if err != nil {
		return nil, fmt.Errorf("kubernetes backend: recover pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return out, nil
}

// Stop implements runtimes.Backend: a pod cannot be stopped and kept, so it
// is deleted with timeout as its grace period (SIGTERM, then SIGKILL), and
// Stop returns once it is gone. Its workspace claim stays until Destroy.
// Pending Wait channels close without a value.
func (b *Backend) Stop(ctx context.Context, h *runtimes.Handle, timeout time.Duration) error {
	if h == nil || h.ID == "" {
		return errors.New("kubernetes backend: stop: the handle names no pod")
	}
	found, err := b.deletePod(ctx, h.ID, types.UID(h.Meta[metaPodUID]), timeout)
	if err != nil {
		return fmt.Errorf("kubernetes backend: stop pod %s: %w", h.ID, err)
	}
	if !found {
		return fmt.Errorf("kubernetes backend: stop pod %s/%s: %w", b.cfg.Namespace, h.ID, runtimes.ErrNotFound)
	}
	return nil
}

// Destroy implements runtimes.Backend: delete the pod with
// delete_grace_period, wait (bounded) until it is gone, and delete its
// workspace claim. Already gone is not an error.
func (b *Backend) Destroy(ctx context.Context, h *runtimes.Handle) error {
	if h == nil || (h.ID == "" && h.SessionID == "") {
		return errors.New("kubernetes backend: destroy: empty handle")
	}
	name, pvc := h.ID, h.Meta[metaPVC]
	pod, err := b.lookup(ctx, h)
	switch {
	case err == nil:
		name = pod.Name
		if v := pod.Annotations[AnnotationWorkspacePVC]; v != "" {
			pvc = v
		}
		if _, err := b.deletePod(ctx, name, pod.UID, b.cfg.DeleteGracePeriod.D()); err != nil {
			return fmt.Errorf("kubernetes backend: destroy pod %s: %w", name, err)
		}
	case !errors.Is(err, runtimes.ErrNotFound):
		return err
	}
	if name != "" {
		b.watch.forget(name)
	}
	if err := b.deletePVC(ctx, pvc); err != nil {
		return fmt.Errorf("kubernetes backend: destroy the workspace of pod %s: %w", name, err)
	}
	return nil
}

// Pause implements runtimes.Backend: Kubernetes cannot freeze a pod.
func (b *Backend) Pause(ctx context.Context, h *runtimes.Handle) error {
	return fmt.Errorf("kubernetes backend: pause: Kubernetes cannot freeze a pod's processes (no equivalent of docker pause); stop the session instead: %w", runtimes.ErrNotSupported)
}

// Resume implements runtimes.Backend; see Pause.
func (b *Backend) Resume(ctx context.Context, h *runtimes.Handle) error {
	return fmt.Errorf("kubernetes backend: resume: Kubernetes cannot freeze or thaw a pod: %w", runtimes.ErrNotSupported)
}

// Inspect implements runtimes.Backend from the pod's status. A pod this
// Backend stopped reads as exited; any other missing pod is ErrNotFound.
func (b *Backend) Inspect(ctx context.Context, h *runtimes.Handle) (runtimes.State, error) {
	if h == nil || h.ID == "" {
		return runtimes.State{}, errors.New("kubernetes backend: inspect: the handle names no pod")
	}
	pod, err := b.lookup(ctx, h)
	if errors.Is(err, runtimes.ErrNotFound) {
		if e := b.watch.ended(h.ID); e != nil {
			return runtimes.State{Exit: e}, nil
		}
	}
	if err != nil {
		return runtimes.State{}, err
	}
	st := runtimes.State{Running: podRunning(pod)}
	if e := exitOfPod(pod, false); e != nil {
		st.Running, st.Exit = false, e
	}
	return st, nil
}

// Wait implements runtimes.Backend: one Exit when the sandbox container
// ends, or the pod is evicted or deleted by anyone but this Backend.
func (b *Backend) Wait(ctx context.Context, h *runtimes.Handle) (<-chan runtimes.Exit, error) {
	if h == nil || h.ID == "" {
		return nil, errors.New("kubernetes backend: wait: the handle names no pod")
	}
	return b.watch.wait(ctx, h.ID, types.UID(h.Meta[metaPodUID]))
}
