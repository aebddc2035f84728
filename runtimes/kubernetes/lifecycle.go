package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"corral/runtimes"
)

var (
	_ runtimes.Backend = (*Backend)(nil)
	_ runtimes.Lister  = (*Backend)(nil)
)

// errStartTimeout is the cause of a start that ran out of start_timeout.
var errStartTimeout = errors.New("start_timeout")

// cleanupTimeout bounds the deletions of a failed start: the caller's ctx
// may be what failed.
const cleanupTimeout = 30 * time.Second

// goneSlack is how long past its grace period Stop and Destroy wait for a
// deleted pod to disappear (the kubelet confirms the containers ended).
const goneSlack = 30 * time.Second

// Name implements runtimes.Backend.
func (b *Backend) Name() string { return "kubernetes" }

// Capabilities implements runtimes.Backend. A pod cannot be frozen, so no
// Pause.
func (b *Backend) Capabilities() runtimes.Capabilities {
	return runtimes.Capabilities{Recover: true, Images: true, Limits: true}
}

// Start implements runtimes.Backend: create the pod (and its workspace
// PVC), follow it with the watch until the sandbox container runs, then
// dial the agent until it answers. Anything that will not resolve by
// waiting (an image the node cannot have, the agent's init container
// failing, the container dying) fails at once with the kubelet's reason;
// an unschedulable pod fails at start_timeout with the scheduler's reason.
// On any failure the pod and PVC are deleted.
func (b *Backend) Start(ctx context.Context, spec runtimes.Spec) (*runtimes.Handle, error) {
	if err := checkSpec(spec); err != nil {
		return nil, fmt.Errorf("kubernetes backend: start session %s: %w", spec.SessionID, err)
	}
	if spec.Owner.ID == "" {
		spec.Owner = b.o.owner
	}
	ctx, cancel := context.WithTimeoutCause(ctx, b.cfg.StartTimeout.D(), errStartTimeout)
	defer cancel()
	p := podParams{name: podName(spec.SessionID, randHex(3)), token: randHex(32), node: b.node}
	if b.cfg.WorkspaceSize != "" {
		p.pvc = p.name + "-workspace"
	}
	pod, err := buildPod(b.cfg, spec, p)
	if err != nil {
		return nil, fmt.Errorf("kubernetes backend: start session %s: %w", spec.SessionID, err)
	}
	what := fmt.Sprintf("start session %s (pod %s/%s, image %s)", spec.SessionID, b.cfg.Namespace, p.name, sandboxOf(pod).Image)
	bx, err := b.watch.follow(p.name)
	if err != nil {
		return nil, fmt.Errorf("kubernetes backend: %s: %w", what, err)
	}
	// Only what this start made is deleted when it fails: a name that
	// collides with an existing pod or claim is someone else's.
	ok, podMine, ownPVC := false, true, ""
	defer func() {
		if !ok {
			b.discard(p.name, ownPVC, podMine)
		}
	}()
	if p.pvc != "" {
		if err := b.createPVC(ctx, p.pvc, pod.Labels); err != nil {
			podMine = false // not created yet
			return nil, fmt.Errorf("kubernetes backend: %s: %w", what, err)
		}
		ownPVC = p.pvc
	}
	if _, err := b.client.CoreV1().Pods(b.cfg.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		podMine = !apierrors.IsAlreadyExists(err)
		return nil, fmt.Errorf("kubernetes backend: %s: %w", what, b.apiErr("create", "pods", err))
	}
	h, err := b.await(ctx, bx)
	if err != nil {
		return nil, fmt.Errorf("kubernetes backend: %s: %w", what, err)
	}
	ok = true
	b.logger.Debug("sandbox started", "session", spec.SessionID, "pod", p.name, "node", h.Meta[metaNode])
	return h, nil
}

// await waits until a followed pod runs and its agent answers, and returns
// its handle.
func (b *Backend) await(ctx context.Context, bx *box) (*runtimes.Handle, error) {
	pod, err := b.waitRunning(ctx, bx)
	if err != nil {
		return nil, err
	}
	h, err := b.handleOf(pod)
	if err != nil {
		return nil, err
	}
	// The agent is dialled until it answers, or until the watch sees the
	// sandbox die: then its exit is the error, not a dial timeout.
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	go func() {
		select {
		case <-bx.died:
			acancel()
		case <-actx.Done():
		}
	}()
	if err := b.waitAgent(actx, h); err != nil {
		if e := b.watch.exitOf(bx); e != nil {
			return nil, fmt.Errorf("the sandbox ended before its agent answered: %s; its output: %s", e.Reason, b.tailLogs(pod.Name, sandboxContainer))
		}
		return nil, b.timeoutErr(ctx, err, "the agent did not answer")
	}
	return h, nil
}

// waitRunning follows the pod's events until its sandbox container runs,
// or a reason it never will shows.
func (b *Backend) waitRunning(ctx context.Context, bx *box) (*corev1.Pod, error) {
	var pod *corev1.Pod
	for {
		pod = b.watch.latest(bx)
		if e := b.watch.exitOf(bx); e != nil {
			return nil, fmt.Errorf("the sandbox ended while starting: %s; its output: %s", e.Reason, b.tailLogs(bx.name, sandboxContainer))
		}
		if b.watch.endedByCorral(bx) {
			return nil, errors.New("the pod was stopped or destroyed while starting")
		}
		if pod != nil {
			if err := startProblem(pod, b.cfg.ImagePullPolicy); err != nil {
				return nil, b.withInitLogs(pod, err)
			}
			if podRunning(pod) {
				return pod, nil
			}
		}
		select {
		case <-bx.changed:
		case <-bx.died:
		case <-ctx.Done():
			return nil, b.timeoutErr(ctx, nil, "the pod is not running: "+describePending(pod))
		}
	}
}

// timeoutErr says why a start stopped waiting: start_timeout (with what
// was last seen) or the caller's context.
func (b *Backend) timeoutErr(ctx context.Context, last error, what string) error {
	if last != nil {
		what += " (last error: " + last.Error() + ")"
	}
	if errors.Is(context.Cause(ctx), errStartTimeout) {
		return fmt.Errorf("not ready within start_timeout = %s: %s; raise [runtime.kubernetes] start_timeout if the cluster is just slow: %w",
			b.cfg.StartTimeout.D(), what, context.DeadlineExceeded)
	}
	return fmt.Errorf("%s: %w", what, ctx.Err())
}

// withInitLogs adds the failed init container's output to err.
func (b *Backend) withInitLogs(pod *corev1.Pod, err error) error {
	for _, cs := range pod.Status.InitContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Errorf("%w; its output: %s", err, b.tailLogs(pod.Name, cs.Name))
		}
	}
	return err
}

// handleOf is the handle of a running pod of this backend.
func (b *Backend) handleOf(pod *corev1.Pod) (*runtimes.Handle, error) {
	c := sandboxOf(pod)
	token := ""
	if c != nil {
		token = envOf(c, tokenEnv)
	}
	if token == "" {
		return nil, fmt.Errorf("pod %s/%s has no %s in its sandbox container: it was not started by this backend", pod.Namespace, pod.Name, tokenEnv)
	}
	port := b.cfg.AgentPort
	if c != nil && len(c.Ports) > 0 {
		port = int(c.Ports[0].ContainerPort)
	}
	host := "127.0.0.1"
	mode := ConnectPortForward
	if b.cfg.Connect == ConnectPodIP {
		mode, host = ConnectPodIP, pod.Status.PodIP
		if host == "" {
			return nil, fmt.Errorf("pod %s/%s runs but has no IP yet", pod.Namespace, pod.Name)
		}
	}
	h := &runtimes.Handle{
		Backend:   "kubernetes",
		ID:        pod.Name,
		SessionID: pod.Annotations[AnnotationSession],
		AgentAddr: net.JoinHostPort(host, strconv.Itoa(port)),
		Token:     token,
		Meta:      handleMeta(pod),
	}
	h.Meta[metaConnect] = mode
	return h, nil
}

// handleMeta is Handle.Meta of a pod: where it is, who owns it.
func handleMeta(pod *corev1.Pod) map[string]string {
	m := map[string]string{}
	if o, ok := runtimes.OwnerFromMeta(pod.Annotations); ok {
		m = o.Meta()
	}
	m[metaNamespace] = pod.Namespace
	m[metaPodUID] = string(pod.UID)
	m[metaNode] = pod.Labels[LabelNode]
	if pvc := pod.Annotations[AnnotationWorkspacePVC]; pvc != "" {
		m[metaPVC] = pvc
	}
	if v := pod.Labels[runtimes.MetaOwnsWorkspace]; v != "" {
		m[runtimes.MetaOwnsWorkspace] = v
	}
	return m
}

// createPVC makes the per-sandbox workspace claim.
func (b *Backend) createPVC(ctx context.Context, name string, labels map[string]string) error {
	size, err := resource.ParseQuantity(b.cfg.WorkspaceSize)
	if err != nil {
		return fmt.Errorf("[runtime.kubernetes] workspace_size = %q: %w", b.cfg.WorkspaceSize, err)
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
	if b.cfg.WorkspaceStorageClass != "" {
		pvc.Spec.StorageClassName = ptr(b.cfg.WorkspaceStorageClass)
	}
	_, err = b.client.CoreV1().PersistentVolumeClaims(b.cfg.Namespace).Create(ctx, pvc, metav1.CreateOptions{})
	return b.apiErr("create", "persistentvolumeclaims", err)
}

// discard deletes what a failed start made, with a context of its own.
// The pod goes without a grace period: nothing of the session ran in it,
// and the kubelet, which confirms graceful deletions of pods stuck on an
// image or a failed init container only on its next sync (10-20 s here),
// still kills its containers.
// podMine false: the pod was never created by this start (or the name
// was another pod's); pvc "": no claim was made.
func (b *Backend) discard(name, pvc string, podMine bool) {
	defer b.watch.forget(name)
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if podMine {
		if _, err := b.deletePod(ctx, name, "", 0); err != nil {
			b.logger.Warn("delete the pod of a failed start", "pod", name, "err", err)
		}
	}
	if err := b.deletePVC(ctx, pvc); err != nil {
		b.logger.Warn("delete the workspace claim of a failed start", "pvc", pvc, "err", err)
	}
}

// deletePod deletes pod name (uid "" or the pod's) with grace and waits
// until the watch sees it gone, bounded by grace plus goneSlack. found is
// false when it did not exist. Its Wait channels close without a value.
func (b *Backend) deletePod(ctx context.Context, name string, uid types.UID, grace time.Duration) (found bool, err error) {
	bx, err := b.watch.expectEnd(name)
	if err != nil {
		return false, err
	}
	secs := int64(math.Ceil(grace.Seconds()))
	opts := metav1.DeleteOptions{GracePeriodSeconds: &secs}
	if uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	err = b.client.CoreV1().Pods(b.cfg.Namespace).Delete(ctx, name, opts)
	switch {
	case apierrors.IsNotFound(err), uid != "" && apierrors.IsConflict(err):
		return false, nil // gone, or the name is another pod's now
	case err != nil:
		return true, b.apiErr("delete", "pods", err)
	}
	wctx, cancel := context.WithTimeout(ctx, grace+goneSlack)
	defer cancel()
	select {
	case <-bx.gone:
		return true, nil
	case <-wctx.Done():
		return true, fmt.Errorf("pod %s/%s is deleted but still terminating after %s (the kubelet has not confirmed its containers ended): %w", b.cfg.Namespace, name, grace+goneSlack, wctx.Err())
	}
}

func (b *Backend) deletePVC(ctx context.Context, name string) error {
	if name == "" {
		return nil
	}
	err := b.client.CoreV1().PersistentVolumeClaims(b.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return b.apiErr("delete", "persistentvolumeclaims", err)
}

// tailLogs is the last lines a container printed, for error messages.
func (b *Backend) tailLogs(pod, container string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tail := int64(20)
	raw, err := b.client.CoreV1().Pods(b.cfg.Namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &tail, LimitBytes: ptr(int64(4000))}).DoRaw(ctx)
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	if len(raw) == 0 {
		return "(none)"
	}
	return strconv.Quote(string(raw))
}
