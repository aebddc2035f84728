package kubernetes

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
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
	// watch follows the pods of the namespace (watch.go).
	watch *watcher
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
	// The checks are bounded even when ctx is not: an API server address
	// that drops packets would otherwise hang New.
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := b.checkAccess(cctx); err != nil {
		return nil, fmt.Errorf("kubernetes backend: %w", err)
	}
	if b.watch, err = newWatcher(cctx, b); err != nil {
		return nil, fmt.Errorf("kubernetes backend: %w", err)
	}
	return b, nil
}

// checkTimeout bounds New's checks of the cluster.
const checkTimeout = 30 * time.Second

// Close stops the pod watch (closing pending Wait channels without a
// value) and the port-forwards of open agent connections. Sandboxes keep
// running: they are the engine's to destroy or reap.
func (b *Backend) Close() error {
	if b.watch != nil {
		b.watch.close()
	}
	b.fwd.closeAll()
	closeIdle(b.client)
	return nil
}

// closeIdle closes the idle connections of c's transport, which client-go
// shares between clients of the same configuration: only idle ones, so
// other users of it lose nothing, and no connection outlives the last
// Backend.
func closeIdle(c kubernetes.Interface) {
	if rc, ok := c.CoreV1().RESTClient().(*rest.RESTClient); ok && rc.Client != nil {
		// The transport is wrapped (user agent, auth): unwrap to close.
		utilnet.CloseIdleConnectionsFor(rc.Client.Transport)
	}
}

// Namespace is the namespace of the backend's pods.
func (b *Backend) Namespace() string { return b.cfg.Namespace }

// Client is the backend's Kubernetes client.
func (b *Backend) Client() kubernetes.Interface { return b.client }

// checkAccess makes sure the API server answers, the namespace exists and
// the kubeconfig's user may do what a sandbox's life needs there, so that
// a wrong setting fails New, not the first session.
func (b *Backend) checkAccess(ctx context.Context) error {
	ns := b.cfg.Namespace
	_, err := b.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case err == nil:
	case apierrors.IsForbidden(err):
		// Users confined to their namespace may not read it: the
		// access review below says what matters.
		b.logger.Debug("cannot read the namespace object; checking pod access only", "namespace", ns, "err", err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("namespace %q does not exist on the cluster at %s: create it (kubectl create namespace %s) or set [runtime.kubernetes] namespace to an existing one", ns, b.rest.Host, ns)
	default:
		return explainAPIErr(b.rest.Host, ns, "get", "namespaces", err)
	}
	return b.checkRBAC(ctx)
}

// access is one permission a sandbox's life needs.
type access struct{ verb, resource, sub string }

func (a access) String() string {
	if a.sub != "" {
		return a.verb + " " + a.resource + "/" + a.sub
	}
	return a.verb + " " + a.resource
}

// needed lists the permissions of the backend's configuration.
func (b *Backend) needed() []access {
	need := []access{{"create", "pods", ""}, {"get", "pods", ""}, {"list", "pods", ""}, {"watch", "pods", ""}, {"delete", "pods", ""}, {"get", "pods", "log"}}
	if b.cfg.Connect == ConnectPortForward {
		need = append(need, access{"create", "pods", "portforward"})
	}
	if b.cfg.WorkspaceSize != "" {
		need = append(need, access{"create", "persistentvolumeclaims", ""}, access{"delete", "persistentvolumeclaims", ""})
	}
	return need
}

// checkRBAC asks the API server (SelfSubjectAccessReview) whether the
// user may do each needed thing in the namespace and names all it may not.
func (b *Backend) checkRBAC(ctx context.Context) error {
	ns := b.cfg.Namespace
	var denied []string
	for _, a := range b.needed() {
		r, err := b.client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Namespace: ns, Verb: a.verb, Resource: a.resource, Subresource: a.sub,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
				b.logger.Warn("cannot review access; pod calls will tell", "err", err)
				return nil
			}
			return explainAPIErr(b.rest.Host, ns, "create", "selfsubjectaccessreviews", err)
		}
		if !r.Status.Allowed {
			d := a.String()
			if r.Status.Reason != "" {
				d += " (" + r.Status.Reason + ")"
			}
			denied = append(denied, d)
		}
	}
	if len(denied) > 0 {
		return fmt.Errorf("RBAC forbids the kubeconfig's user, in namespace %q: %s; grant it a Role there allowing create, get, list, watch and delete on pods, get on pods/log and create on pods/portforward (and create and delete on persistentvolumeclaims with workspace_size)",
			ns, strings.Join(denied, ", "))
	}
	return nil
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
		return nil, fmt.Errorf("kubernetes backend: no usable kubeconfig (kubeconfig = %q, $KUBECONFIG = %q, then ~/.kube/config): %w; set [runtime.kubernetes] kubeconfig, export KUBECONFIG, or run `make k8s-up` for a local test cluster", cfg.Kubeconfig, os.Getenv("KUBECONFIG"), err)
	}
	return rc, nil
}
