package main

import (
	"context"
	"fmt"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
)

// kubeImageExists answers the Runtime API's /image_exists for the
// kubernetes runtime. An image exists when a node holds it (the kubelet
// lists its images in the node's status). One no node holds exists when
// image_pull_policy lets the kubelet pull it: Corral builds no images, and
// answering false would make OpenHands ask it to build one; a pull that
// then fails fails /start with the kubelet's reason. With "Never" it does
// not exist. When this identity may not list nodes (RBAC), the pull policy
// alone answers.
func kubeImageExists(client k8s.Interface, pullPolicy string) func(ctx context.Context, image string) (bool, error) {
	return func(ctx context.Context, image string) (bool, error) {
		want, err := normalImage(image)
		if err != nil {
			return false, fmt.Errorf("image %q is not a valid image reference: %w", image, err)
		}
		canPull := corev1.PullPolicy(pullPolicy) != corev1.PullNever
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if apierrors.IsForbidden(err) {
			return canPull, nil
		}
		if err != nil {
			return false, fmt.Errorf("kubernetes: list nodes to find image %s: %w", image, err)
		}
		for _, n := range nodes.Items {
			for _, img := range n.Status.Images {
				for _, name := range img.Names {
					if got, err := normalImage(name); err == nil && got == want {
						return true, nil
					}
				}
			}
		}
		return canPull, nil
	}
}

// normalImage is image's fully qualified name with its tag (or digest), as
// the kubelet reports it: "corral-sandbox:minimal" is
// "docker.io/library/corral-sandbox:minimal", "busybox" is
// "docker.io/library/busybox:latest".
func normalImage(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", err
	}
	return reference.TagNameOnly(named).String(), nil
}
