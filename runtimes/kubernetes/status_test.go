package kubernetes

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func podWith(phase corev1.PodPhase, init, main []corev1.ContainerStatus) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "corral-s-1", Namespace: "ns"},
		Status:     corev1.PodStatus{Phase: phase, InitContainerStatuses: init, ContainerStatuses: main},
	}
}

func terminated(name string, code int32, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}}}
}

func waiting(name, image, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Image: image, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "detail"}}}
}

func TestExitOfPodSaysHowTheSandboxEnded(t *testing.T) {
	running := corev1.ContainerStatus{Name: sandboxContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	evicted := podWith(corev1.PodFailed, nil, nil)
	evicted.Status.Reason, evicted.Status.Message = "Evicted", "The node was low on resource: memory."
	deleting := podWith(corev1.PodRunning, nil, []corev1.ContainerStatus{running})
	deleting.DeletionTimestamp = &metav1.Time{}
	tests := []struct {
		name    string
		pod     *corev1.Pod
		deleted bool
		alive   bool
		oom     bool
		code    int
		reason  string
	}{
		{"running", podWith(corev1.PodRunning, nil, []corev1.ContainerStatus{running}), false, true, false, 0, ""},
		{"pending", podWith(corev1.PodPending, nil, nil), false, true, false, 0, ""},
		{"OOMKilled", podWith(corev1.PodFailed, nil, []corev1.ContainerStatus{terminated(sandboxContainer, 137, "OOMKilled")}), false, false, true, 137, "OOMKilled"},
		{"exited", podWith(corev1.PodFailed, nil, []corev1.ContainerStatus{terminated(sandboxContainer, 3, "Error")}), false, false, false, 3, "exited with code 3"},
		{"killed", podWith(corev1.PodFailed, nil, []corev1.ContainerStatus{terminated(sandboxContainer, 137, "Error")}), false, false, false, 137, "signal 9"},
		{"evicted", evicted, false, false, false, 137, "low on resource"},
		{"being deleted", deleting, false, false, false, 137, "pod deleted"},
		{"deleted", podWith(corev1.PodPending, nil, nil), true, false, false, 137, "pod deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := exitOfPod(tt.pod, tt.deleted)
			if tt.alive {
				if e != nil {
					t.Errorf("exit %+v of a live pod", e)
				}
				return
			}
			if e == nil || e.OOMKilled != tt.oom || e.Code != tt.code || !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("exit = %+v, want OOMKilled %v, code %d, reason with %q", e, tt.oom, tt.code, tt.reason)
			}
		})
	}
}

func TestStartProblemsNameTheCauseAndTheFix(t *testing.T) {
	tests := []struct {
		name  string
		pod   *corev1.Pod
		parts []string // nil: no problem
	}{
		{"image never pulled", podWith(corev1.PodPending, nil, []corev1.ContainerStatus{waiting(sandboxContainer, "x:1", "ErrImageNeverPull")}),
			[]string{`"x:1"`, "ErrImageNeverPull", "make k8s-up", "image_pull_policy"}},
		{"agent image pull backoff", podWith(corev1.PodPending, []corev1.ContainerStatus{waiting(installContainer, "corral-agent:latest", "ImagePullBackOff")}, nil),
			[]string{"corral-agent:latest", installContainer}},
		{"init container failed", podWith(corev1.PodFailed, []corev1.ContainerStatus{terminated(installContainer, 2, "Error")}, nil),
			[]string{installContainer, "exit code 2"}},
		{"config error", podWith(corev1.PodPending, nil, []corev1.ContainerStatus{waiting(sandboxContainer, "x", "CreateContainerConfigError")}),
			[]string{"CreateContainerConfigError", "detail"}},
		{"still initialising", podWith(corev1.PodPending, nil, []corev1.ContainerStatus{waiting(sandboxContainer, "x", "PodInitializing")}), nil},
		{"init done", podWith(corev1.PodPending, []corev1.ContainerStatus{terminated(installContainer, 0, "Completed")}, nil), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := startProblem(tt.pod, "Never")
			if tt.parts == nil {
				if err != nil {
					t.Errorf("startProblem = %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no problem found, want one mentioning %q", tt.parts)
			}
			for _, p := range tt.parts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("%q does not mention %q", err, p)
				}
			}
		})
	}
}

func TestDescribePendingGivesTheSchedulersReason(t *testing.T) {
	pod := podWith(corev1.PodPending, nil, nil)
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}}
	if got := describePending(pod); !strings.Contains(got, "didn't match Pod's node affinity/selector") {
		t.Errorf("describePending = %q", got)
	}
}
