package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"corral/runtimes"
)

// Fork copies parent's workspace into a new directory next to it (a
// reflink copy where the filesystem can, `cp --reflink=auto -a`) and
// returns child set to start in it; the child's sandbox owns the copy and
// removes it when destroyed. Processes are not carried over.
func (b *Backend) Fork(ctx context.Context, parent *runtimes.Handle, child runtimes.Spec) (runtimes.Spec, error) {
	return forkWorkspace(ctx, parent, child)
}

// DiscardFork removes the workspace copy of a child that never started.
func (b *Backend) DiscardFork(_ context.Context, child runtimes.Spec) error {
	return discardWorkspace(child)
}

func forkWorkspace(ctx context.Context, parent *runtimes.Handle, child runtimes.Spec) (runtimes.Spec, error) {
	if parent == nil || parent.Workspace == "" {
		return child, errors.New("the parent sandbox has no host workspace to copy")
	}
	src := parent.Workspace
	dst, err := os.MkdirTemp(filepath.Dir(filepath.Clean(src)), "corral-ws-"+safe(child.SessionID)+"-fork-")
	if err != nil {
		return child, fmt.Errorf("create the fork's workspace next to %s: %w", src, err)
	}
	out, err := exec.CommandContext(ctx, "cp", "--reflink=auto", "-a", "--", src+"/.", dst).CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(dst)
		return child, fmt.Errorf("copy workspace %s to %s (check free disk space): %w: %s", src, dst, err, strings.TrimSpace(string(out)))
	}
	child.Workspace = dst
	child.Labels = maps.Clone(child.Labels)
	if child.Labels == nil {
		child.Labels = map[string]string{}
	}
	child.Labels[runtimes.MetaOwnsWorkspace] = "true"
	return child, nil
}

func discardWorkspace(child runtimes.Spec) error {
	if child.Labels[runtimes.MetaOwnsWorkspace] != "true" || child.Workspace == "" {
		return nil
	}
	return os.RemoveAll(child.Workspace)
}
