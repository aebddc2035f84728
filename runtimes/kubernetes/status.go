package kubernetes

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"corral/runtimes"
)

// Reading a pod's status: is the sandbox up, dead (and why), or stuck in a
// way that will not resolve by waiting. Pure functions of the pod.

// imageErrors are the waiting reasons of a container whose image cannot be
// had; waiting longer will not help a start.
var imageErrors = map[string]bool{
	"ErrImageNeverPull": true,
	"ImagePullBackOff":  true,
	"ErrImagePull":      true,
	"InvalidImageName":  true,
}

// createErrors are waiting reasons of a container the kubelet cannot make.
var createErrors = map[string]bool{
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"PreCreateHookError":         true,
	"PreStartHookError":          true,
}

func containerStatus(statuses []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range statuses {
		if statuses[i].Name == name {
			return &statuses[i]
		}
	}
	return nil
}

// podRunning: the sandbox container runs (the agent may still be starting).
func podRunning(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	cs := containerStatus(pod.Status.ContainerStatuses, sandboxContainer)
	return cs != nil && cs.State.Running != nil
}

// exitOfPod is how the sandbox ended, or nil while it lives. deleted: the
// pod object is gone.
func exitOfPod(pod *corev1.Pod, deleted bool) *runtimes.Exit {
	cs := containerStatus(pod.Status.ContainerStatuses, sandboxContainer)
	switch {
	case cs != nil && cs.State.Terminated != nil && cs.State.Terminated.Reason == "OOMKilled":
		return exitOfTerminated(pod, cs.State.Terminated)
	case pod.Status.Reason == "Evicted":
		e := runtimes.Exit{Code: 137, Signal: 9, Reason: "evicted by the kubelet: " + pod.Status.Message}
		return &e
	case deleted || pod.DeletionTimestamp != nil:
		e := runtimes.Exit{Code: 137, Signal: 9, Reason: fmt.Sprintf("pod deleted (pod %s in namespace %s was deleted outside this sandbox's lifecycle: kubectl delete, a node drain or a controller)", pod.Name, pod.Namespace)}
		return &e
	case cs != nil && cs.State.Terminated != nil:
		return exitOfTerminated(pod, cs.State.Terminated)
	case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
		e := runtimes.Exit{Code: 1, Reason: fmt.Sprintf("pod %s: phase %s", pod.Name, pod.Status.Phase)}
		if pod.Status.Reason != "" || pod.Status.Message != "" {
			e.Reason += ": " + strings.TrimSpace(pod.Status.Reason+" "+pod.Status.Message)
		}
		return &e
	}
	return nil
}

func exitOfTerminated(pod *corev1.Pod, t *corev1.ContainerStateTerminated) *runtimes.Exit {
	e := runtimes.Exit{Code: int(t.ExitCode), Signal: int(t.Signal)}
	if e.Signal == 0 && e.Code > 128 && e.Code < 160 {
		e.Signal = e.Code - 128
	}
	switch {
	case t.Reason == "OOMKilled":
		e.OOMKilled = true
		if e.Code == 0 {
			e.Code, e.Signal = 137, 9
		}
		e.Reason = fmt.Sprintf("OOMKilled: the kernel OOM killer ended the sandbox container (out of memory%s; exit code %d)", memoryLimitOf(pod), e.Code)
	case e.Signal != 0:
		e.Reason = fmt.Sprintf("the sandbox container was killed by signal %d (exit code %d)", e.Signal, e.Code)
	default:
		e.Reason = fmt.Sprintf("the sandbox container exited with code %d", e.Code)
	}
	if t.Reason != "" && t.Reason != "OOMKilled" && t.Reason != "Completed" && t.Reason != "Error" {
		e.Reason += " (" + t.Reason + ")"
	}
	if msg := strings.TrimSpace(t.Message); msg != "" {
		e.Reason += ": " + msg
	}
	return &e
}

func memoryLimitOf(pod *corev1.Pod) string {
	for _, c := range pod.Spec.Containers {
		if c.Name != sandboxContainer {
			continue
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			return ": memory limit " + q.String()
		}
	}
	return ""
}

// startProblem is a reason a starting pod will never run its agent, or
// nil. It names the image, the container and what to do.
func startProblem(pod *corev1.Pod, pullPolicy string) error {
	for _, cs := range pod.Status.InitContainerStatuses {
		if err := waitingProblem(cs, pullPolicy); err != nil {
			return err
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Errorf("init container %s (image %s, which copies the agent into the pod) failed with exit code %d (%s)%s",
				cs.Name, cs.Image, t.ExitCode, t.Reason, suffix(": ", t.Message))
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if err := waitingProblem(cs, pullPolicy); err != nil {
			return err
		}
	}
	return nil
}

func waitingProblem(cs corev1.ContainerStatus, pullPolicy string) error {
	w := cs.State.Waiting
	switch {
	case w == nil:
		return nil
	case imageErrors[w.Reason]:
		return fmt.Errorf("image %q of container %s cannot be had (%s: %s): the node does not have it and image_pull_policy = %q does not (or cannot) pull it; import it into the node's containerd (`make k8s-up` imports corral-sandbox:minimal and corral-agent:latest into the test cluster), push it where the node can pull it, or fix the image name or [runtime.kubernetes] image_pull_policy",
			cs.Image, cs.Name, w.Reason, w.Message, pullPolicy)
	case createErrors[w.Reason]:
		return fmt.Errorf("the kubelet cannot create container %s (image %s): %s: %s", cs.Name, cs.Image, w.Reason, w.Message)
	}
	return nil
}

// unschedulable is the scheduler's reason for not placing the pod ("" if
// it has none).
func unschedulable(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Message
		}
	}
	return ""
}

// describePending says where a pod that is not running yet stands.
func describePending(pod *corev1.Pod) string {
	if pod == nil {
		return "the pod was never seen by the watch"
	}
	if msg := unschedulable(pod); msg != "" {
		return "the scheduler cannot place it: " + msg
	}
	if pod.Spec.NodeName == "" {
		return "it is not scheduled yet (is a kube-scheduler running?)"
	}
	var parts []string
	for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			parts = append(parts, fmt.Sprintf("container %s waiting: %s%s", cs.Name, w.Reason, suffix(": ", w.Message)))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("on node %s, phase %s", pod.Spec.NodeName, pod.Status.Phase)
	}
	return fmt.Sprintf("on node %s: %s", pod.Spec.NodeName, strings.Join(parts, "; "))
}

func suffix(sep, s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return ""
	}
	return sep + s
}

func envOf(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func sandboxOf(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == sandboxContainer {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}
