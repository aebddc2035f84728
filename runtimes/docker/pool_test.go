package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"corral/runtimes"
)

// poolSettled waits until the pool of img holds size idle containers and
// starts none: the state every refill ends in.
func poolSettled(t testing.TB, b *Backend, img string, size int) {
	t.Helper()
	ctx := testCtx(t, 2*time.Minute)
	for {
		if idle, filling := b.pool.counts(img); idle == size && filling == 0 {
			return
		}
		select {
		case <-ctx.Done():
			idle, filling := b.pool.counts(img)
			t.Fatalf("pool of %s never settled at %d idle: %d idle, %d starting", img, size, idle, filling)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// poolContainers lists the pool containers of a node, claimed or not.
func poolContainers(t *testing.T, b *Backend, node string) []container.Summary {
	t.Helper()
	list, err := b.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelPool+"=true"), filters.Arg("label", LabelNode+"="+node))})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// liveOwner is a durable owner whose lock the test holds, so no Corral on
// this host (other tests run serve and exec, which reap) takes its
// containers for leftovers.
func liveOwner(t *testing.T, id, instance string) runtimes.Owner {
	t.Helper()
	o := runtimes.Owner{ID: id, Instance: instance, Host: runtimes.Hostname(), LockPath: filepath.Join(t.TempDir(), "LOCK"), Durable: true}
	lock, err := runtimes.AcquireOwnerLock(o.LockPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	return o
}

func isPooled(t *testing.T, b *Backend, h *runtimes.Handle) bool {
	t.Helper()
	return inspect(t, b, h.ID).Config.Labels[LabelPool] == "true"
}

func TestWarmPoolHandsOutAWorkingContainerFoundBySession(t *testing.T) {
	o := liveOwner(t, t.Name(), "run-1")
	b := newBackend(t, WithWarmPool(1), WithOwner(o))
	poolSettled(t, b, env.image, 1)
	h := start(t, b, runtimes.Spec{SessionID: sessionID(t), Owner: o})
	if !isPooled(t, b, h) || !strings.HasPrefix(h.Meta["container_name"], "corral-pool-") {
		t.Fatalf("Start with a poolable spec made %s, want a pool container", h.Meta["container_name"])
	}
	if got, ok := runtimes.OwnerFromMeta(h.Meta); !ok || got != o {
		t.Errorf("Handle.Meta owner = %+v, want %+v", got, o)
	}
	if out, code := run(t, dial(t, h), "echo warm"); out != "warm" || code != 0 {
		t.Errorf("echo warm = %q, %d", out, code)
	}
	ctx := testCtx(t, time.Minute)
	// The session label cannot change after create: the session is found
	// through the socket directory by List, Inspect and Recover.
	st, err := b.Inspect(ctx, &runtimes.Handle{SessionID: h.SessionID})
	if err != nil || !st.Running {
		t.Fatalf("Inspect by session = %+v, %v", st, err)
	}
	rh, err := b.Recover(ctx, &runtimes.Handle{SessionID: h.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	if rh.ID != h.ID || rh.SessionID != h.SessionID || rh.Token != h.Token {
		t.Errorf("Recover = %s/%s, want %s/%s with the same token", rh.ID, rh.SessionID, h.ID, h.SessionID)
	}
	list, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, lh := range list {
		if lh.ID == h.ID {
			found = lh.SessionID == h.SessionID
		}
	}
	if !found {
		t.Errorf("List does not name session %s for container %s", h.SessionID, h.ID)
	}
	poolSettled(t, b, env.image, 1) // refilled
}

func TestWarmPoolServesOnlySpecsItCanHonour(t *testing.T) {
	o := liveOwner(t, t.Name(), "")
	other := liveOwner(t, t.Name()+"-other", "")
	b := newBackend(t, WithWarmPool(1), WithOwner(o))
	tests := []struct {
		name string
		spec runtimes.Spec
	}{
		{"env", runtimes.Spec{Env: map[string]string{"A": "1"}}},
		{"workspace", runtimes.Spec{Workspace: t.TempDir()}},
		{"memory limit", runtimes.Spec{Resources: runtimes.Resources{MemoryBytes: 64 << 20}}},
		{"network", runtimes.Spec{Network: "none"}},
		{"user", runtimes.Spec{User: "corral"}},
		{"work dir", runtimes.Spec{WorkDir: "/tmp"}},
		{"volume", runtimes.Spec{Volumes: []string{t.TempDir() + ":/data"}}},
		{"label", runtimes.Spec{Labels: map[string]string{"x": "y"}}},
		{"another user label", runtimes.Spec{Labels: map[string]string{LabelUser: "someone-else"}}},
		{"another owner", runtimes.Spec{Owner: other}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			poolSettled(t, b, env.image, 1)
			if tc.spec.Owner.ID == "" {
				tc.spec.Owner = o
			}
			h := start(t, b, tc.spec)
			if isPooled(t, b, h) {
				t.Errorf("a spec with its own %s got a pool container", tc.name)
			}
		})
	}
	t.Run("own user label", func(t *testing.T) {
		poolSettled(t, b, env.image, 1)
		h := start(t, b, runtimes.Spec{Owner: o, Labels: map[string]string{LabelUser: b.user}})
		if !isPooled(t, b, h) {
			t.Error("a spec whose only label is the default corral.user started cold")
		}
	})
}

// TestWarmPoolLeaksNothing claims 200 times (8 at once, so claims also find
// the pool empty and start cold) and counts the node's containers.
func TestWarmPoolLeaksNothing(t *testing.T) {
	node := env.node + "-pool200"
	b := newBackend(t, WithNodeID(node), WithWarmPool(2))
	ctx := testCtx(t, 10*time.Minute)
	poolSettled(t, b, env.image, 2) // so the first claims are served warm
	const claims, workers = 200, 8
	var wg sync.WaitGroup
	errs := make(chan error, claims)
	var pooled sync.Map
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < claims; i += workers {
				h, err := b.Start(ctx, runtimes.Spec{SessionID: fmt.Sprintf("claim-%d", i)})
				if err != nil {
					errs <- err
					continue
				}
				if strings.HasPrefix(h.Meta["container_name"], "corral-pool-") {
					pooled.Store(i, true)
				}
				if err := probeSocket(ctx, h); err != nil {
					errs <- fmt.Errorf("claim %d: %w", i, err)
				}
				if err := b.Destroy(ctx, h); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := 0
	pooled.Range(func(any, any) bool { n++; return true })
	if n == 0 {
		t.Error("no claim was served by the pool")
	}
	poolSettled(t, b, env.image, 2)
	if left := listTestContainers(ctx, b.cli, node); len(left) != 2 {
		t.Errorf("after %d claims: %d containers, want the 2 idle ones", claims, len(left))
	}
	b.Close()
	if left := listTestContainers(ctx, b.cli, node); len(left) != 0 {
		t.Errorf("after Close: %d containers left, want 0", len(left))
	}
	dirs, _ := filepath.Glob(filepath.Join(env.stateDir, "[0-9a-f]*"))
	for _, d := range dirs {
		if s := sessionOf(map[string]string{LabelPool: "true", LabelRunDir: d}); strings.HasPrefix(s, "claim-") {
			t.Errorf("socket dir %s of %s leaked", d, s)
		}
	}
}

func TestWarmPoolCloseWhileFillingLeavesNothing(t *testing.T) {
	node := env.node + "-poolclose"
	b := newBackend(t, WithNodeID(node), WithWarmPool(3))
	// Close once a filler has created its container (a start is in
	// flight): none may leave a container behind.
	ctx := testCtx(t, time.Minute)
	for len(listTestContainers(ctx, b.cli, node)) == 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
	b.Close()
	if left := listTestContainers(ctx, b.cli, node); len(left) != 0 {
		t.Errorf("after Close: %d containers left, want 0", len(left))
	}
}

func TestWarmPoolDiscardsADeadContainer(t *testing.T) {
	node := env.node + "-pooldead"
	b := newBackend(t, WithNodeID(node), WithWarmPool(1))
	poolSettled(t, b, env.image, 1)
	dead := poolContainers(t, b, node)
	if len(dead) != 1 {
		t.Fatalf("%d pool containers, want 1", len(dead))
	}
	ctx := testCtx(t, time.Minute)
	died := b.watch.arm(dead[0].ID)
	if err := b.cli.ContainerKill(ctx, dead[0].ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	<-died
	h := start(t, b, runtimes.Spec{})
	if h.ID == dead[0].ID {
		t.Fatal("a dead warm container was handed out")
	}
	if out, _ := run(t, dial(t, h), "echo alive"); out != "alive" {
		t.Errorf("echo alive = %q", out)
	}
}

// TestWarmPoolImageRemoved untags the pool's image while containers wait:
// the next start reports the missing image as a cold start does, and the
// waiting containers are removed.
func TestWarmPoolImageRemoved(t *testing.T) {
	needDocker(t)
	node := env.node + "-poolimg"
	tag := fmt.Sprintf("corral-pooltest:%d", time.Now().UnixNano())
	ctx := testCtx(t, 2*time.Minute)
	b := newBackend(t, WithNodeID(node), WithDefaultImage(env.image))
	if err := b.cli.ImageTag(ctx, env.image, tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.cli.ImageRemove(context.Background(), tag, image.RemoveOptions{}) })
	pb := newBackend(t, WithNodeID(node), WithDefaultImage(tag), WithWarmPool(2))
	poolSettled(t, pb, tag, 2)
	if _, err := pb.cli.ImageRemove(ctx, tag, image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := pb.Start(ctx, runtimes.Spec{SessionID: sessionID(t)})
	if err == nil || !strings.Contains(err.Error(), "is not present on the Docker host") {
		t.Fatalf("Start after the pool's image was removed = %v, want the missing-image error", err)
	}
	pb.pool.wg.Wait() // the discards
	if left := poolContainers(t, pb, node); len(left) != 0 {
		t.Errorf("%d pool containers survived their image's removal", len(left))
	}
	// A new image under the same tag: the pool serves it again.
	if err := b.cli.ImageTag(ctx, env.image, tag); err != nil {
		t.Fatal(err)
	}
	h := start(t, pb, runtimes.Spec{})
	if isPooled(t, pb, h) {
		t.Error("the first start after the image came back found a filled pool")
	}
	poolSettled(t, pb, tag, 2)
}

// TestWarmPoolContainersAreReaped: idle pool containers of a dead owner
// are reaped like any others, a claimed one its owner still wants is not.
func TestWarmPoolContainersAreReaped(t *testing.T) {
	node := env.node + "-poolreap"
	o := liveOwner(t, t.Name(), "run-1")
	b1 := newBackend(t, WithNodeID(node), WithWarmPool(2), WithOwner(o))
	poolSettled(t, b1, env.image, 2)
	kept := start(t, b1, runtimes.Spec{Owner: o})
	if !isPooled(t, b1, kept) {
		t.Fatal("the claim started cold")
	}
	poolSettled(t, b1, env.image, 2)
	idle := poolContainers(t, b1, node)

	// The same owner, restarted (another instance), wants only kept's
	// session: the idle ones are its leftovers.
	self := o
	self.Instance = "run-2"
	b2 := newBackend(t, WithNodeID(node))
	ctx := testCtx(t, time.Minute)
	wanted := func(h *runtimes.Handle) bool { return h.SessionID == kept.SessionID }
	if _, err := runtimes.Reap(ctx, b2, self, wanted, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for _, c := range idle {
		if c.ID == kept.ID {
			if _, err := b2.Inspect(ctx, kept); err != nil {
				t.Errorf("the claimed pool container was reaped: %v", err)
			}
			continue
		}
		if _, err := b2.Inspect(ctx, &runtimes.Handle{ID: c.ID}); !errors.Is(err, runtimes.ErrNotFound) {
			t.Errorf("idle pool container %s survived the reap: %v", c.Names, err)
		}
	}
}

func TestWarmPoolForgetsAnImageThatDoesNotExist(t *testing.T) {
	b := newBackend(t, WithWarmPool(1))
	const img = "corral-no-such-image:pool"
	_, err := b.Start(testCtx(t, time.Minute), runtimes.Spec{SessionID: sessionID(t), Image: img})
	if err == nil || !strings.Contains(err.Error(), "is not present on the Docker host") {
		t.Fatalf("Start with a missing image = %v, want the missing-image error", err)
	}
	ctx := testCtx(t, time.Minute)
	for {
		b.pool.mu.Lock()
		_, kept := b.pool.idle[img]
		b.pool.mu.Unlock()
		if !kept {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("the pool kept a slot for an image that does not exist")
		case <-time.After(5 * time.Millisecond):
		}
	}
}
