package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"corral/runtimes"
)

// Config is the [runtime.kubernetes] section of corral's configuration
// file: every setting of the backend, with the defaults DefaultConfig
// returns.
type Config struct {
	// Kubeconfig is the kubeconfig file ("": $KUBECONFIG, then
	// ~/.kube/config). Ignored with InCluster.
	Kubeconfig string `toml:"kubeconfig"`
	// InCluster uses the pod's service account (Corral itself runs in the
	// cluster).
	InCluster bool `toml:"in_cluster"`
	// Context is the kubeconfig context ("": its current-context).
	Context string `toml:"context"`
	// Namespace holds the sandbox pods; it must exist.
	Namespace string `toml:"namespace"`
	// Image is the image of sessions that name none.
	Image string `toml:"image"`
	// AgentImage holds the static corral-agent at /corral-agent; its init
	// container copies the agent into every pod.
	AgentImage string `toml:"agent_image"`
	// ImagePullPolicy of both containers: "IfNotPresent", "Never" or
	// "Always".
	ImagePullPolicy string `toml:"image_pull_policy"`
	// Connect is how Corral reaches an agent: "port-forward" (through the
	// API server) or "pod-ip" (directly; the agent's traffic then crosses
	// the pod network in clear text, protected by its token only).
	Connect string `toml:"connect"`
	// AgentPort is the port the agent listens on inside the pod.
	AgentPort int `toml:"agent_port"`
	// NodeID is written to the corral.node label ("": the host name).
	NodeID string `toml:"node_id"`
	// CPU and Memory are the requests and limits of sessions that set no
	// resources, in Kubernetes quantities ("500m", "1Gi"; "": none).
	CPU    string `toml:"cpu"`
	Memory string `toml:"memory"`
	// NodeSelector, Tolerations, RuntimeClass and ServiceAccount go into
	// every pod's spec as they are.
	NodeSelector   map[string]string `toml:"node_selector"`
	Tolerations    []Toleration      `toml:"tolerations"`
	RuntimeClass   string            `toml:"runtime_class"`
	ServiceAccount string            `toml:"service_account"`
	// RunAsUser, RunAsGroup and FSGroup form the pod's security context
	// (unset: the image's user). The agent runs commands as the session's
	// user itself when it runs as root.
	RunAsUser  *int64 `toml:"run_as_user"`
	RunAsGroup *int64 `toml:"run_as_group"`
	FSGroup    *int64 `toml:"fs_group"`
	// WorkspaceSize, when set ("10Gi"), gives each sandbox a
	// PersistentVolumeClaim of that size for /workspace (of
	// WorkspaceStorageClass, "": the cluster's default), deleted with the
	// sandbox; otherwise /workspace is an emptyDir.
	WorkspaceSize         string `toml:"workspace_size"`
	WorkspaceStorageClass string `toml:"workspace_storage_class"`
	// Labels are added to every pod.
	Labels map[string]string `toml:"labels"`
	// StartTimeout bounds the wait from pod creation to a ready agent
	// (scheduling, image pull, agent start).
	StartTimeout runtimes.Duration `toml:"start_timeout"`
	// DeleteGracePeriod is the pod deletion grace period of Destroy.
	DeleteGracePeriod runtimes.Duration `toml:"delete_grace_period"`
	// ReapOrphans asks the long-running server to remove, at start, the
	// pods of this node's dead owners. It is read by the caller
	// (runtimes.OrphanReaping), never by the backend.
	ReapOrphans bool `toml:"reap_orphans"`
}

// Toleration is one entry of a pod's tolerations.
type Toleration struct {
	Key      string `toml:"key"`
	Operator string `toml:"operator"` // "Equal" (default) or "Exists"
	Value    string `toml:"value"`
	Effect   string `toml:"effect"` // "", "NoSchedule", "PreferNoSchedule" or "NoExecute"
}

// Defaults of [runtime.kubernetes].
const (
	DefaultNamespace  = "default"
	DefaultImage      = "corral-sandbox:minimal"
	DefaultAgentImage = "corral-agent:latest"
	DefaultAgentPort  = 7777

	ConnectPortForward = "port-forward"
	ConnectPodIP       = "pod-ip"
)

// DefaultConfig returns the backend's defaults.
func DefaultConfig() Config {
	return Config{
		Namespace:         DefaultNamespace,
		Image:             DefaultImage,
		AgentImage:        DefaultAgentImage,
		ImagePullPolicy:   string(corev1.PullIfNotPresent),
		Connect:           ConnectPortForward,
		AgentPort:         DefaultAgentPort,
		NodeSelector:      map[string]string{},
		Tolerations:       []Toleration{}, // as `tolerations = []` decodes: the example file states the defaults exactly
		Labels:            map[string]string{},
		StartTimeout:      runtimes.Duration(2 * time.Minute),
		DeleteGracePeriod: runtimes.Duration(5 * time.Second),
		ReapOrphans:       true,
	}
}

// ReapOrphansAtStart implements runtimes.OrphanReaping.
func (c *Config) ReapOrphansAtStart() bool { return c.ReapOrphans }

// Validate refuses values that cannot work, naming the key.
func (c Config) Validate() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New(`namespace = "": want an existing namespace such as "default"`))
	}
	if c.Image == "" {
		errs = append(errs, errors.New(`image = "": want an image (default `+DefaultImage+`)`))
	}
	if c.AgentImage == "" {
		errs = append(errs, errors.New(`agent_image = "": want the image holding /corral-agent (default `+DefaultAgentImage+`; make k8s-up imports it)`))
	}
	switch corev1.PullPolicy(c.ImagePullPolicy) {
	case corev1.PullIfNotPresent, corev1.PullNever, corev1.PullAlways:
	default:
		errs = append(errs, fmt.Errorf("image_pull_policy = %q: want \"IfNotPresent\", \"Never\" or \"Always\"", c.ImagePullPolicy))
	}
	switch c.Connect {
	case ConnectPortForward, ConnectPodIP:
	default:
		errs = append(errs, fmt.Errorf("connect = %q: want %q or %q", c.Connect, ConnectPortForward, ConnectPodIP))
	}
	if c.AgentPort <= 0 || c.AgentPort > 65535 {
		errs = append(errs, fmt.Errorf("agent_port = %d: want a port in 1..65535", c.AgentPort))
	}
	for key, q := range map[string]string{"cpu": c.CPU, "memory": c.Memory, "workspace_size": c.WorkspaceSize} {
		if q == "" {
			continue
		}
		if _, err := resource.ParseQuantity(q); err != nil {
			errs = append(errs, fmt.Errorf("%s = %q: not a Kubernetes quantity (examples: \"500m\", \"2\", \"512Mi\", \"10Gi\"): %w", key, q, err))
		}
	}
	for i, t := range c.Tolerations {
		switch corev1.TolerationOperator(t.Operator) {
		case "", corev1.TolerationOpEqual, corev1.TolerationOpExists:
		default:
			errs = append(errs, fmt.Errorf("tolerations[%d]: operator = %q: want \"Equal\" or \"Exists\"", i, t.Operator))
		}
		switch corev1.TaintEffect(t.Effect) {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			errs = append(errs, fmt.Errorf("tolerations[%d]: effect = %q: want \"NoSchedule\", \"PreferNoSchedule\" or \"NoExecute\"", i, t.Effect))
		}
	}
	for key, d := range map[string]runtimes.Duration{"start_timeout": c.StartTimeout, "delete_grace_period": c.DeleteGracePeriod} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s = %q: want a positive duration such as \"30s\"", key, d.D()))
		}
	}
	if c.InCluster && (c.Kubeconfig != "" || c.Context != "") {
		errs = append(errs, errors.New("in_cluster = true conflicts with kubeconfig/context: choose one"))
	}
	for k := range c.Labels {
		if strings.HasPrefix(k, "corral.") {
			errs = append(errs, fmt.Errorf("labels: key %q: the corral. prefix is reserved for Corral's own labels", k))
		}
	}
	return errors.Join(errs...)
}

// Factory returns the runtimes.Factory of the "kubernetes" runtime: it
// decodes a Config and builds the Backend with New.
func Factory() runtimes.Factory {
	return runtimes.NewFactory("kubernetes", DefaultConfig, func(ctx context.Context, c Config, env runtimes.Env) (runtimes.Backend, error) {
		opts := []Option{WithLogger(env.Logger), WithAgentGracePeriod(env.AgentGracePeriod)}
		if env.Owner.ID != "" {
			opts = append(opts, WithOwner(env.Owner))
		}
		return New(ctx, c, opts...)
	})
}
