package docker

import (
	"context"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"corral/runtimes"
)

// TestForkedSandboxDestroyedThroughAListedHandleLeavesNothing: a forked
// sandbox destroyed through the handle List gives (as Reap does after a
// restart, without the handle Start returned) takes its fork image and
// workspace volume with it.
func TestForkedSandboxDestroyedThroughAListedHandleLeavesNothing(t *testing.T) {
	be := newBackend(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	parent := start(t, be, runtimes.Spec{SessionID: "fork-list-parent"})
	spec, err := be.Fork(ctx, parent, runtimes.Spec{SessionID: "fork-list-child"})
	if err != nil {
		t.Fatal(err)
	}
	ref, vol := spec.Labels[LabelForkImage], spec.Labels[LabelForkVolume]
	if ref == "" || vol == "" {
		t.Fatalf("fork labels %v, want an image and a volume", spec.Labels)
	}
	child, err := be.Start(ctx, spec)
	if err != nil {
		_ = be.DiscardFork(ctx, spec)
		t.Fatal(err)
	}
	handles, err := be.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed *runtimes.Handle
	for _, h := range handles {
		if h.ID == child.ID {
			listed = h
		}
	}
	if listed == nil {
		t.Fatalf("List does not name the forked sandbox %s", child.ID)
	}
	if err := be.Destroy(ctx, listed); err != nil {
		t.Fatal(err)
	}
	if _, err := be.cli.ImageInspect(ctx, ref); !cerrdefs.IsNotFound(err) {
		t.Errorf("fork image %s after Destroy: %v, want not found", ref, err)
	}
	if _, err := be.cli.VolumeInspect(ctx, vol); !cerrdefs.IsNotFound(err) {
		t.Errorf("fork volume %s after Destroy: %v, want not found", vol, err)
	}
}
