package kubernetes

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"corral/runtimes"
)

// Pod layout shared by the pod spec (Start) and the connection (Connect).
const (
	// Labels on every pod (annotations hold the owner's lease).
	LabelManaged = "corral.managed"
	LabelSession = "corral.session"
	LabelNode    = "corral.node"
	LabelOwner   = "corral.owner"

	// AgentDir is the emptyDir the init container copies the agent into;
	// AgentPath is the agent inside the sandbox container.
	AgentDir  = "/.corral"
	AgentPath = AgentDir + "/corral-agent"
	// WorkspaceDir is the sandbox's /workspace (emptyDir or PVC).
	WorkspaceDir = "/workspace"

	sandboxContainer = "sandbox"
	installContainer = "corral-agent-install"

	// Handle.Meta keys.
	metaNamespace = "namespace"
	metaPodUID    = "pod_uid"
	metaConnect   = "connect"
	metaNode      = "node"
)

// Backend runs sandboxes as pods of one namespace. Make one with New.
type Backend struct {
	cfg    Config
	o      options
	rest   *rest.Config
	client kubernetes.Interface
	node   string
	logger *slog.Logger
	// fwd holds the port-forwards of open agent connections (connect.go).
	fwd forwarders
}

// New connects to the cluster cfg names and checks that its namespace
// exists and can be used.
func New(ctx context.Context, cfg Config, opts ...Option) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("[runtime.kubernetes]: %w", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	rc := o.rest
	if rc == nil {
		var err error
		if rc, err = loadRESTConfig(cfg); err != nil {
			return nil, err
		}
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes backend: client for %s: %w", rc.Host, err)
	}
	node := cfg.NodeID
	if node == "" {
		node = runtimes.Hostname()
	}
	b := &Backend{cfg: cfg, o: o, rest: rc, client: client, node: node, logger: o.logger}
	return b, nil
}

// loadRESTConfig reads the kubeconfig (or the in-cluster config) cfg names.
func loadRESTConfig(cfg Config) (*rest.Config, error) {
	if cfg.InCluster {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes backend: in_cluster = true but this process does not run in a pod with a service account: %w", err)
		}
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if cfg.Kubeconfig != "" {
		rules.ExplicitPath = cfg.Kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes backend: no usable kubeconfig (kubeconfig = %q, $KUBECONFIG, ~/.kube/config): %w; set [runtime.kubernetes] kubeconfig, export KUBECONFIG, or run `make k8s-up` for a local test cluster", cfg.Kubeconfig, err)
	}
	return rc, nil
}
