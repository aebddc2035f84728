package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// apiErr explains an API call's failure: what Corral tried (verb, resource,
// namespace), what the API server or the network said, and what to do.
// Errors stay wrapped (%w), so apierrors.IsNotFound and friends still work
// on the result.
func (b *Backend) apiErr(verb, resource string, err error) error {
	return explainAPIErr(b.rest.Host, b.cfg.Namespace, verb, resource, err)
}

func explainAPIErr(host, ns, verb, resource string, err error) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("%s %s in namespace %q", verb, resource, ns)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", what, err)
	case unreachable(err):
		return fmt.Errorf("%s: cannot reach the Kubernetes API server at %s: is the cluster up (`make k8s-up` for the local test cluster) and the kubeconfig's server address right? %w", what, host, err)
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota"):
		return fmt.Errorf("%s: a ResourceQuota of namespace %q refuses it: %w; raise the quota (kubectl describe resourcequota -n %s) or end other sandboxes", what, ns, err, ns)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: forbidden by the cluster's authorization (RBAC): %w; grant the user of the kubeconfig a Role in namespace %q allowing %s on %s", what, err, ns, verb, resource)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: the API server at %s does not accept the kubeconfig's credentials (expired token or certificate?): %w", what, host, err)
	case apierrors.IsNotFound(err) && strings.Contains(err.Error(), "namespaces"):
		return fmt.Errorf("%s: namespace %q does not exist: create it (kubectl create namespace %s) or set [runtime.kubernetes] namespace: %w", what, ns, ns, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// unreachable reports transport failures: nothing answered at the address.
func unreachable(err error) bool {
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	case errors.As(err, &oe):
		return true
	case errors.As(err, &ue) && errors.As(err, &ne):
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host")
}
