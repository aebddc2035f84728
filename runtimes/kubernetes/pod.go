package kubernetes

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"corral/runtimes"
)

// Pod annotations (exact values; labels hold sanitized ones) and the
// agent's token variable.
const (
	// AnnotationSession is the exact session id (the label is sanitized).
	AnnotationSession = "corral.session"
	// AnnotationWorkspacePVC names the PVC made for the pod's /workspace.
	AnnotationWorkspacePVC = "corral.workspace_pvc"

	tokenEnv      = "CORRAL_AGENT_TOKEN"
	agentVolume   = "corral-agent"
	workVolume    = "workspace"
	metaPVC       = "workspace_pvc"
	maxNameSeed   = 40 // session-id part of a pod name
	labelValueMax = validation.LabelValueMaxLength
)

// podParams are the per-sandbox values buildPod does not derive from the
// config and spec itself.
type podParams struct {
	name  string // pod name
	token string // agent token
	node  string // corral.node label (unsanitized)
	pvc   string // workspace PVC name; "" = emptyDir
}

// buildPod is the pod of one sandbox: the init container that installs the
// agent, the sandbox container that runs it, labels and annotations that
// let List, Recover and Reap find it again. spec must have passed
// checkSpec. Pure: it reads nothing but its arguments.
func buildPod(cfg Config, spec runtimes.Spec, p podParams) (*corev1.Pod, error) {
	res, err := podResources(cfg, spec.Resources)
	if err != nil {
		return nil, err
	}
	image := spec.Image
	if image == "" {
		image = cfg.Image
	}
	pull := corev1.PullPolicy(cfg.ImagePullPolicy)
	agentMount := corev1.VolumeMount{Name: agentVolume, MountPath: AgentDir}
	install := corev1.Container{
		Name:            installContainer,
		Image:           cfg.AgentImage,
		Command:         []string{"/corral-agent", "--copy-to", AgentPath},
		ImagePullPolicy: pull,
		Resources:       res,
		VolumeMounts:    []corev1.VolumeMount{agentMount},
	}
	sandbox := corev1.Container{
		Name:            sandboxContainer,
		Image:           image,
		Command:         agentCommand(cfg, spec),
		Env:             podEnv(spec.Env, p.token),
		ImagePullPolicy: pull,
		Resources:       res,
		Ports:           []corev1.ContainerPort{{Name: "agentwire", ContainerPort: int32(cfg.AgentPort), Protocol: corev1.ProtocolTCP}},
		VolumeMounts:    []corev1.VolumeMount{agentMount, {Name: workVolume, MountPath: WorkspaceDir}},
	}
	grace := int64(math.Ceil(cfg.DeleteGracePeriod.D().Seconds()))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        p.name,
			Labels:      podLabels(cfg, spec, p.node),
			Annotations: podAnnotations(spec, p.pvc),
		},
		Spec: corev1.PodSpec{
			InitContainers:                []corev1.Container{install},
			Containers:                    []corev1.Container{sandbox},
			Volumes:                       podVolumes(p.pvc),
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr(false),
			EnableServiceLinks:            ptr(false),
			TerminationGracePeriodSeconds: &grace,
			NodeSelector:                  maps.Clone(cfg.NodeSelector),
			Tolerations:                   podTolerations(cfg.Tolerations),
			ServiceAccountName:            cfg.ServiceAccount,
			SecurityContext:               podSecurity(cfg),
		},
	}
	if cfg.RuntimeClass != "" {
		pod.Spec.RuntimeClassName = ptr(cfg.RuntimeClass)
	}
	return pod, nil
}

// agentCommand is the sandbox container's command: the agent copied in by
// the init container, listening where Connect will reach it.
func agentCommand(cfg Config, spec runtimes.Spec) []string {
	workDir := spec.WorkDir
	if workDir == "" {
		workDir = WorkspaceDir
	}
	// Port-forward reaches the pod's loopback, so the agent need not be
	// exposed on the pod network at all; pod-ip must listen on it (in clear
	// text, protected by the token only: the operator chose it).
	listen := "127.0.0.1:" + strconv.Itoa(cfg.AgentPort)
	var extra []string
	if cfg.Connect == ConnectPodIP {
		listen = "0.0.0.0:" + strconv.Itoa(cfg.AgentPort)
		extra = append(extra, "--insecure-plaintext")
	}
	cmd := []string{AgentPath, "--listen", listen, "--workdir", workDir}
	if spec.User != "" {
		cmd = append(cmd, "--user", spec.User)
	}
	return append(cmd, extra...)
}

// podEnv renders env sorted (stable pod specs) plus the agent's token.
func podEnv(env map[string]string, token string) []corev1.EnvVar {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]corev1.EnvVar, 0, len(keys)+1)
	for _, k := range keys {
		out = append(out, corev1.EnvVar{Name: k, Value: env[k]})
	}
	return append(out, corev1.EnvVar{Name: tokenEnv, Value: token})
}

// podResources are the session's limits, as requests equal to limits (the
// Guaranteed QoS class: a sandbox is never squeezed below what it asked
// for), else the config's cpu and memory.
func podResources(cfg Config, r runtimes.Resources) (corev1.ResourceRequirements, error) {
	list := corev1.ResourceList{}
	switch {
	case r.NanoCPUs > 0:
		list[corev1.ResourceCPU] = *resource.NewMilliQuantity(max(r.NanoCPUs/1e6, 1), resource.DecimalSI)
	case cfg.CPU != "":
		q, err := resource.ParseQuantity(cfg.CPU)
		if err != nil {
			return corev1.ResourceRequirements{}, fmt.Errorf("[runtime.kubernetes] cpu = %q: %w", cfg.CPU, err)
		}
		list[corev1.ResourceCPU] = q
	}
	switch {
	case r.MemoryBytes > 0:
		list[corev1.ResourceMemory] = *resource.NewQuantity(r.MemoryBytes, resource.BinarySI)
	case cfg.Memory != "":
		q, err := resource.ParseQuantity(cfg.Memory)
		if err != nil {
			return corev1.ResourceRequirements{}, fmt.Errorf("[runtime.kubernetes] memory = %q: %w", cfg.Memory, err)
		}
		list[corev1.ResourceMemory] = q
	}
	if len(list) == 0 {
		return corev1.ResourceRequirements{}, nil
	}
	return corev1.ResourceRequirements{Requests: list, Limits: list.DeepCopy()}, nil
}

func podVolumes(pvc string) []corev1.Volume {
	ws := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
	if pvc != "" {
		ws = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc}}
	}
	return []corev1.Volume{
		{Name: agentVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: workVolume, VolumeSource: ws},
	}
}

func podTolerations(ts []Toleration) []corev1.Toleration {
	var out []corev1.Toleration
	for _, t := range ts {
		out = append(out, corev1.Toleration{
			Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value, Effect: corev1.TaintEffect(t.Effect),
		})
	}
	return out
}

func podSecurity(cfg Config) *corev1.PodSecurityContext {
	if cfg.RunAsUser == nil && cfg.RunAsGroup == nil && cfg.FSGroup == nil {
		return nil
	}
	return &corev1.PodSecurityContext{RunAsUser: cfg.RunAsUser, RunAsGroup: cfg.RunAsGroup, FSGroup: cfg.FSGroup}
}

// reservedLabel reports keys a spec's or the config's labels may not set:
// Corral's own, so nobody can make a pod look like another session's or
// another owner's.
func reservedLabel(k string) bool {
	return strings.HasPrefix(k, "corral.") && k != runtimes.MetaOwnsWorkspace
}

// podLabels: config labels, then the spec's, then Corral's own (which win).
func podLabels(cfg Config, spec runtimes.Spec, node string) map[string]string {
	labels := map[string]string{}
	for _, src := range []map[string]string{cfg.Labels, spec.Labels} {
		for k, v := range src {
			if !reservedLabel(k) {
				labels[k] = v
			}
		}
	}
	labels[LabelManaged] = "true"
	labels[LabelSession] = labelValue(spec.SessionID)
	labels[LabelNode] = labelValue(node)
	if spec.Owner.ID != "" {
		labels[LabelOwner] = labelValue(spec.Owner.ID)
	}
	return labels
}

// podAnnotations hold what labels cannot: the exact session id and the
// owner's whole lease (runtimes.Owner.Meta, read back by OwnerFromMeta).
func podAnnotations(spec runtimes.Spec, pvc string) map[string]string {
	a := spec.Owner.Meta()
	a[AnnotationSession] = spec.SessionID
	if pvc != "" {
		a[AnnotationWorkspacePVC] = pvc
	}
	return a
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// labelValue makes s a valid label value (63 characters of [A-Za-z0-9_.-],
// alphanumeric at both ends). A value that had to change gets a hash of s
// so that different ids rarely meet; lookups compare the exact annotation
// anyway.
func labelValue(s string) string {
	v := strings.Trim(labelUnsafe.ReplaceAllString(s, "_"), "_.-")
	if v == s && len(v) <= labelValueMax {
		return v
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:4])
	if len(v) > labelValueMax-len(h)-1 {
		v = strings.TrimRight(v[:labelValueMax-len(h)-1], "_.-")
	}
	if v == "" {
		return h
	}
	return v + "-" + h
}

var nameUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// podName is corral-<session id as a DNS label, truncated>-<6 hex>.
func podName(sessionID, suffix string) string {
	seed := strings.Trim(nameUnsafe.ReplaceAllString(strings.ToLower(sessionID), "-"), "-")
	if len(seed) > maxNameSeed {
		seed = strings.TrimRight(seed[:maxNameSeed], "-")
	}
	if seed == "" {
		seed = "sandbox"
	}
	return "corral-" + seed + "-" + suffix
}

// checkSpec refuses what a pod cannot carry, naming the field.
func checkSpec(spec runtimes.Spec) error {
	var errs []error
	if spec.SessionID == "" {
		errs = append(errs, errors.New("empty Spec.SessionID"))
	}
	if spec.Workspace != "" {
		errs = append(errs, fmt.Errorf("workspace %q: a host directory cannot be mounted into a pod; /workspace is an emptyDir, or a PersistentVolumeClaim with [runtime.kubernetes] workspace_size", spec.Workspace))
	}
	if len(spec.Volumes) > 0 {
		errs = append(errs, fmt.Errorf("volumes %q: host directories cannot be mounted into a pod by the kubernetes backend", spec.Volumes))
	}
	for k, v := range spec.Env {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			errs = append(errs, fmt.Errorf("env var name %q: must be non-empty without '=' or NUL", k))
		case k == tokenEnv:
			errs = append(errs, fmt.Errorf("env var %s is reserved for the agent's token", tokenEnv))
		case strings.ContainsRune(v, 0):
			errs = append(errs, fmt.Errorf("env var %s: value contains a NUL byte", k))
		}
	}
	for k, v := range spec.Labels {
		if reservedLabel(k) {
			continue
		}
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Errorf("label key %q: %s", k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, fmt.Errorf("label %s = %q: %s", k, v, msg))
		}
	}
	if spec.Resources.MemoryBytes < 0 || spec.Resources.NanoCPUs < 0 {
		errs = append(errs, fmt.Errorf("resources: negative memory (%d) or CPU (%d)", spec.Resources.MemoryBytes, spec.Resources.NanoCPUs))
	}
	return errors.Join(errs...)
}

// randHex is n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func ptr[T any](v T) *T { return &v }
