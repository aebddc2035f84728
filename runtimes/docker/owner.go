package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"corral/runtimes"
)

var _ runtimes.Lister = (*Backend)(nil)

// ownerLabels are the labels that record a container's owner.
var ownerLabels = []string{LabelOwner, LabelOwnerInst, LabelOwnerHost, LabelOwnerLock, LabelOwnerDurable}

// labelsFor is the label set of a new container: the spec's extra labels,
// then the backend's own (which a spec cannot override). Owner labels come
// only from spec.Owner, never from spec.Labels, so a caller cannot make a
// container look like someone else's (or like an abandoned one).
func (b *Backend) labelsFor(spec runtimes.Spec, runDir string) map[string]string {
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	for _, k := range ownerLabels {
		delete(labels, k)
	}
	delete(labels, LabelPool) // only the pool marks its own containers
	if labels[LabelUser] == "" {
		labels[LabelUser] = b.user
	}
	for k, v := range spec.Owner.Meta() {
		labels[k] = v
	}
	labels[LabelManaged] = "true"
	labels[LabelSession] = spec.SessionID
	labels[LabelNode] = b.cfg.nodeID
	labels[LabelRunDir] = runDir
	return labels
}

// handleMeta is Handle.Meta of a container read back from the engine: its
// name, image, socket directory, node and owner labels.
func handleMeta(name, image string, labels map[string]string) map[string]string {
	m := map[string]string{
		"container_name": name,
		"run_dir":        labels[LabelRunDir],
		"image":          image,
		"node":           labels[LabelNode],
	}
	for _, k := range ownerLabels {
		if v, ok := labels[k]; ok {
			m[k] = v
		}
	}
	// A forked sandbox's image and volume go with it, also when it is
	// destroyed through a listed or recovered handle (Reap, Recover).
	for _, k := range []string{LabelForkImage, LabelForkVolume, runtimes.MetaOwnsWorkspace} {
		if v, ok := labels[k]; ok {
			m[k] = v
		}
	}
	return m
}

// List returns a handle for every container labelled corral.managed=true on
// this Docker engine, whatever its state, owner or node: enough for
// runtimes.Reap to judge its owner and for Destroy to remove it. Recover a
// handle before connecting to it (List does not read the agent token).
func (b *Backend) List(ctx context.Context) ([]*runtimes.Handle, error) {
	list, err := b.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
	)})
	if err != nil {
		return nil, fmt.Errorf("docker backend: list managed containers: %w", mapDaemonErr(b.cli, err))
	}
	out := make([]*runtimes.Handle, 0, len(list))
	for _, c := range list {
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, &runtimes.Handle{
			Backend:   "docker",
			ID:        c.ID,
			SessionID: sessionOf(c.Labels),
			Meta:      handleMeta(name, c.Image, c.Labels),
		})
	}
	return out, nil
}
