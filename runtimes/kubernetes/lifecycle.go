package kubernetes

// Placeholder while the lifecycle is written: every call refuses.

import (
	"context"
	"time"

	"corral/runtimes"
)

func (b *Backend) Name() string                        { return "kubernetes" }
func (b *Backend) Capabilities() runtimes.Capabilities { return runtimes.Capabilities{} }
func (b *Backend) Start(ctx context.Context, spec runtimes.Spec) (*runtimes.Handle, error) {
	return nil, runtimes.ErrNotSupported
}
func (b *Backend) Recover(ctx context.Context, h *runtimes.Handle) (*runtimes.Handle, error) {
	return nil, runtimes.ErrNotSupported
}
func (b *Backend) Stop(ctx context.Context, h *runtimes.Handle, timeout time.Duration) error {
	return runtimes.ErrNotSupported
}
func (b *Backend) Destroy(ctx context.Context, h *runtimes.Handle) error {
	return runtimes.ErrNotSupported
}
func (b *Backend) Pause(ctx context.Context, h *runtimes.Handle) error {
	return runtimes.ErrNotSupported
}
func (b *Backend) Resume(ctx context.Context, h *runtimes.Handle) error {
	return runtimes.ErrNotSupported
}
func (b *Backend) Inspect(ctx context.Context, h *runtimes.Handle) (runtimes.State, error) {
	return runtimes.State{}, runtimes.ErrNotSupported
}
func (b *Backend) Wait(ctx context.Context, h *runtimes.Handle) (<-chan runtimes.Exit, error) {
	return nil, runtimes.ErrNotSupported
}
