package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"corral/runtimes"
)

// Labels (on a forked sandbox's container, and in its Handle.Meta) naming
// what its fork made for it: removed when the sandbox is destroyed.
const (
	LabelForkImage  = "corral.fork.image"
	LabelForkVolume = "corral.fork.volume"
)

// Fork snapshots parent for a child sandbox: `docker commit` of its
// container (the root filesystem outside /workspace) into image
// corral-fork:<hex>, and a copy of its /workspace (a volume or bind mount,
// which a commit does not hold) into a new named volume. The child starts
// a new container from that image with that volume as /workspace; both are
// removed when the child's sandbox is destroyed. Processes are not carried
// over.
func (b *Backend) Fork(ctx context.Context, parent *runtimes.Handle, child runtimes.Spec) (out runtimes.Spec, err error) {
	insp, err := b.lookup(ctx, parent)
	if err != nil {
		return child, err
	}
	tag := randHex(8)
	ref := "corral-fork:" + tag
	res, err := b.cli.ContainerCommit(ctx, insp.ID, container.CommitOptions{Reference: ref, Pause: true,
		Comment: "corral fork of session " + parent.SessionID + " for " + child.SessionID})
	if err != nil {
		return child, fmt.Errorf("docker commit of container %s (check the daemon's free disk space): %w", insp.ID, mapDaemonErr(b.cli, err))
	}
	vol := "corral-fork-" + tag
	defer func() {
		if err != nil {
			b.removeForkArtifacts(context.WithoutCancel(ctx), ref, vol)
		}
	}()
	if _, err = b.cli.VolumeCreate(ctx, volume.CreateOptions{Name: vol, Labels: map[string]string{LabelForkImage: ref}}); err != nil {
		return child, fmt.Errorf("create volume %s for the fork's workspace: %w", vol, mapDaemonErr(b.cli, err))
	}
	if err = b.copyWorkspace(ctx, insp.ID, res.ID, vol); err != nil {
		return child, err
	}
	child.Image, child.Workspace = ref, "volume:"+vol
	child.Labels = maps.Clone(child.Labels)
	if child.Labels == nil {
		child.Labels = map[string]string{}
	}
	child.Labels[LabelForkImage], child.Labels[LabelForkVolume] = ref, vol
	child.Labels[runtimes.MetaOwnsWorkspace] = "true"
	return child, nil
}

// copyWorkspace copies /workspace of container from into volume vol
// through a created (never started) helper container of image img,
// keeping owners and modes (the archive's own: CopyUIDGID would chown
// everything to the container's user).
func (b *Backend) copyWorkspace(ctx context.Context, from, img, vol string) error {
	rc, _, err := b.cli.CopyFromContainer(ctx, from, WorkspaceDir)
	if err != nil {
		return fmt.Errorf("read %s of container %s: %w", WorkspaceDir, from, mapDaemonErr(b.cli, err))
	}
	defer rc.Close()
	helper, err := b.cli.ContainerCreate(ctx, &container.Config{Image: img, Labels: map[string]string{LabelForkVolume: vol}},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: WorkspaceDir}}}, nil, nil, "")
	if err != nil {
		return fmt.Errorf("create a helper container to fill volume %s: %w", vol, mapDaemonErr(b.cli, err))
	}
	defer func() {
		_ = b.cli.ContainerRemove(context.WithoutCancel(ctx), helper.ID, container.RemoveOptions{Force: true})
	}()
	// The archive's entries are "workspace/...": unpacked at / they land in
	// the volume mounted at /workspace.
	if err := b.cli.CopyToContainer(ctx, helper.ID, "/", rc, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copy the workspace into volume %s (check free disk space): %w", vol, mapDaemonErr(b.cli, err))
	}
	return nil
}

// DiscardFork removes the image and volume of a child that never started.
func (b *Backend) DiscardFork(ctx context.Context, child runtimes.Spec) error {
	return b.removeForkArtifacts(ctx, child.Labels[LabelForkImage], child.Labels[LabelForkVolume])
}

func (b *Backend) removeForkArtifacts(ctx context.Context, ref, vol string) error {
	var errs []error
	if vol != "" {
		if err := b.cli.VolumeRemove(ctx, vol, true); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove fork volume %s: %w", vol, err))
		}
	}
	if strings.HasPrefix(ref, "corral-fork:") {
		if _, err := b.cli.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove fork image %s: %w", ref, err))
		}
	}
	return errors.Join(errs...)
}

// forkMeta records on h what a forked sandbox's fork made (from spec's
// labels), so Destroy removes it.
func forkMeta(h *runtimes.Handle, spec runtimes.Spec) {
	if spec.Labels[LabelForkImage] == "" {
		return
	}
	h.Meta[LabelForkImage], h.Meta[LabelForkVolume] = spec.Labels[LabelForkImage], spec.Labels[LabelForkVolume]
	h.Meta[runtimes.MetaOwnsWorkspace] = "true"
}

// destroyFork removes a destroyed sandbox's fork image and volume, unless
// the engine keeps its workspace for a new sandbox (it then drops
// MetaOwnsWorkspace from the handle it destroys).
func (b *Backend) destroyFork(ctx context.Context, h *runtimes.Handle) error {
	if h.Meta[runtimes.MetaOwnsWorkspace] != "true" {
		return nil
	}
	return b.removeForkArtifacts(ctx, h.Meta[LabelForkImage], h.Meta[LabelForkVolume])
}
