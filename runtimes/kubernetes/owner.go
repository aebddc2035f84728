package kubernetes

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"corral/runtimes"
)

// List implements runtimes.Lister: a handle for every pod labelled
// corral.managed=true in the namespace, whatever its state, owner or node,
// with the owner's lease from its annotations: enough for runtimes.Reap to
// judge the owner and for Destroy to remove the pod and its workspace
// claim. Recover a handle before connecting to it.
func (b *Backend) List(ctx context.Context) ([]*runtimes.Handle, error) {
	list, err := b.client.CoreV1().Pods(b.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelManaged + "=true"})
	if err != nil {
		return nil, fmt.Errorf("kubernetes backend: list sandboxes: %w", b.apiErr("list", "pods", err))
	}
	out := make([]*runtimes.Handle, 0, len(list.Items))
	for i := range list.Items {
		pod := &list.Items[i]
		out = append(out, &runtimes.Handle{
			Backend:   "kubernetes",
			ID:        pod.Name,
			SessionID: pod.Annotations[AnnotationSession],
			Meta:      handleMeta(pod),
		})
	}
	return out, nil
}
