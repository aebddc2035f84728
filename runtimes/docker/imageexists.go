package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
)

// ImageExists reports whether image is present in the local engine (no
// registry is asked: Corral never pulls).
func (b *Backend) ImageExists(ctx context.Context, image string) (bool, error) {
	if _, err := b.cli.ImageInspect(ctx, image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("docker: inspect image %s: %w", image, err)
	}
	return true, nil
}
