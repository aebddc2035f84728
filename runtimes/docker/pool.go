package docker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"corral/runtimes"
)

// LabelPool marks a warm-pool container ("true"). Labels cannot change
// after create, so a claimed pool container keeps an empty corral.session
// label; its session is the sessionFile in its socket directory.
const LabelPool = "corral.pool"

// sessionFile, in a pool container's socket directory, holds the id of the
// session that claimed it.
const sessionFile = "session"

// maxPoolImages bounds how many images get a warm pool: the default image
// has one from New, another image gets one on its first poolable start.
const maxPoolImages = 4

// poolRefillDelay holds back the refill a claim triggers, as the local
// backend's refillDelay does: creating a container competes for the cores
// and the daemon with the session being set up on the claimed one.
const poolRefillDelay = 30 * time.Millisecond

// pool keeps started, idle containers per image (agent up) and hands them
// to starts whose spec they honour. Nothing starts once close has begun.
type pool struct {
	b     *Backend
	size  int
	owner runtimes.Owner
	ctx   context.Context
	stop  context.CancelFunc

	mu      sync.Mutex
	idle    map[string][]*pooledContainer // by image reference
	filling map[string]int
	closed  bool
	wg      sync.WaitGroup // fillers and discards
}

// pooledContainer is an idle warm container.
type pooledContainer struct {
	*started
	imageID string // the image the reference named when it was created
}

func newPool(b *Backend, size int, owner runtimes.Owner) *pool {
	p := &pool{b: b, size: size, owner: owner, idle: map[string][]*pooledContainer{}, filling: map[string]int{}}
	p.ctx, p.stop = context.WithCancel(context.Background())
	return p
}

// poolable reports whether a pooled container honours spec (defaults
// applied): the pool's containers are made from the spec of a session
// that sets nothing but its image, so only such a session may take one.
func (b *Backend) poolable(spec runtimes.Spec) bool {
	def := b.cfg.specDefaults(runtimes.Spec{Image: spec.Image})
	if spec.Workspace != "" || len(spec.Env) > 0 || spec.User != "" || spec.WorkDir != "" ||
		spec.Network != def.Network || spec.Resources != def.Resources ||
		!slices.Equal(spec.Volumes, def.Volumes) || spec.Owner != b.pool.owner {
		return false
	}
	for k, v := range spec.Labels {
		if k != LabelUser || v != b.user {
			return false
		}
	}
	return true
}

// claim hands out a healthy idle container of spec.Image recorded as
// spec's session, or nil (then the caller starts one cold). It always
// triggers a refill. An image that is gone (or now names another image)
// empties its pool: those containers run an image nobody asked for.
func (p *pool) claim(ctx context.Context, spec runtimes.Spec) (*runtimes.Handle, error) {
	img := spec.Image
	p.mu.Lock()
	_, known := p.idle[img]
	if !known && len(p.idle) < maxPoolImages && !p.closed {
		p.idle[img] = nil
		known = true
	}
	empty := len(p.idle[img]) == 0
	if empty && known {
		p.refillLocked(img, 0)
	}
	p.mu.Unlock()
	if empty {
		return nil, nil
	}
	insp, err := p.b.cli.ImageInspect(ctx, img)
	switch {
	case cerrdefs.IsNotFound(err):
		p.drain(img, "")
		return nil, nil // the cold start explains the missing image
	case err != nil:
		return nil, fmt.Errorf("inspect image %s: %w", img, mapDaemonErr(p.b.cli, err))
	}
	p.drain(img, insp.ID)
	for {
		p.mu.Lock()
		list := p.idle[img]
		if len(list) == 0 {
			p.refillLocked(img, 0)
			p.mu.Unlock()
			return nil, nil
		}
		c := list[0]
		p.idle[img] = list[1:]
		p.refillLocked(img, poolRefillDelay)
		p.mu.Unlock()
		if err := p.hand(ctx, c, spec.SessionID); err != nil {
			p.b.cfg.logger.Warn("warm container failed its health check; discarding it", "container", c.name, "err", err)
			p.discard(c)
			continue
		}
		return c.handle(spec, p.b.cfg.nodeID), nil
	}
}

// hand checks c's agent and records sessionID as its session.
func (p *pool) hand(ctx context.Context, c *pooledContainer, sessionID string) error {
	if err := aliveAt(ctx, filepath.Join(c.runDir, socketName)); err != nil {
		return err
	}
	tmp := filepath.Join(c.runDir, sessionFile+".tmp")
	if err := os.WriteFile(tmp, []byte(sessionID), 0o600); err != nil {
		return fmt.Errorf("record the session: %w", err)
	}
	return os.Rename(tmp, filepath.Join(c.runDir, sessionFile))
}

// drain discards the idle containers of img not made from imageID (all of
// them when imageID is "").
func (p *pool) drain(img, imageID string) {
	p.mu.Lock()
	var stale []*pooledContainer
	kept := p.idle[img][:0:0]
	for _, c := range p.idle[img] {
		if imageID == "" || c.imageID != imageID {
			stale = append(stale, c)
		} else {
			kept = append(kept, c)
		}
	}
	if _, ok := p.idle[img]; ok {
		p.idle[img] = kept
	}
	p.mu.Unlock()
	for _, c := range stale {
		p.b.cfg.logger.Warn("discarding a warm container: its image was removed or re-tagged", "container", c.name, "image", img)
		p.discard(c)
	}
}

// discard removes c in the background (owned by p.wg), or at once once
// close has begun (close may already be waiting on p.wg).
func (p *pool) discard(c *pooledContainer) {
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if closed {
		p.b.destroyStarted(c.started)
		return
	}
	go func() {
		defer p.wg.Done()
		p.b.destroyStarted(c.started)
	}()
}

// refillLocked starts containers of img, after delay, until its pool (with
// starts in flight) is full. p.mu must be held.
func (p *pool) refillLocked(img string, delay time.Duration) {
	for !p.closed && len(p.idle[img])+p.filling[img] < p.size {
		p.filling[img]++
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-p.ctx.Done():
				}
				t.Stop()
			}
			var c *pooledContainer
			var err error
			// Close may have begun while this waited: then start nothing.
			if p.ctx.Err() == nil {
				c, err = p.fill(img)
			}
			p.mu.Lock()
			p.filling[img]--
			if c != nil && !p.closed {
				p.idle[img] = append(p.idle[img], c)
				c = nil
			}
			if err != nil && img != p.b.cfg.image && len(p.idle[img]) == 0 && p.filling[img] == 0 {
				delete(p.idle, img) // e.g. a misspelt image must not hold one of maxPoolImages
			}
			p.mu.Unlock()
			if err != nil && p.ctx.Err() == nil {
				p.b.cfg.logger.Warn("starting a warm container", "image", img, "err", err)
			}
			if c != nil {
				p.b.destroyStarted(c.started)
			}
		}()
	}
}

// fill starts one idle container of img.
func (p *pool) fill(img string) (*pooledContainer, error) {
	insp, err := p.b.cli.ImageInspect(p.ctx, img)
	if err != nil {
		return nil, fmt.Errorf("inspect image %s: %w", img, mapCreateErr(p.b.cli, img, err))
	}
	spec := p.b.cfg.specDefaults(runtimes.Spec{Image: img, Owner: p.owner})
	c, _, err := p.b.launch(p.ctx, spec, "start a warm-pool container", true)
	if err != nil {
		return nil, err
	}
	return &pooledContainer{started: c, imageID: insp.ID}, nil
}

// ready returns how many idle containers of img wait to be claimed.
func (p *pool) ready(img string) int {
	idle, _ := p.counts(img)
	return idle
}

// counts returns how many containers of img are idle and being started.
func (p *pool) counts(img string) (idle, filling int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle[img]), p.filling[img]
}

// close stops refills, waits for fillers and removes every idle container.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.stop()
	p.wg.Wait()
	p.mu.Lock()
	idle := p.idle
	p.idle = map[string][]*pooledContainer{}
	p.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			p.b.destroyStarted(c.started)
		}
	}
}

// WarmReady returns how many warm-pool containers of image ("": the
// default image) wait to be claimed; 0 without a pool.
func (b *Backend) WarmReady(image string) int {
	if b.pool == nil {
		return 0
	}
	if image == "" {
		image = b.cfg.image
	}
	return b.pool.ready(image)
}

// destroyStarted force-removes a container this backend started and its
// socket directory.
func (b *Backend) destroyStarted(c *started) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := &runtimes.Handle{ID: c.id, Meta: map[string]string{"run_dir": c.runDir}}
	if err := b.Destroy(ctx, h); err != nil {
		b.cfg.logger.Warn("removing a warm container", "container", c.name, "err", err)
	}
}

// sessionOf is the session a container serves: its corral.session label,
// or for a claimed pool container the session recorded in its socket
// directory ("" while it waits in the pool).
func sessionOf(labels map[string]string) string {
	if s := labels[LabelSession]; s != "" || labels[LabelPool] != "true" || labels[LabelRunDir] == "" {
		return s
	}
	data, err := os.ReadFile(filepath.Join(labels[LabelRunDir], sessionFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// aliveAt is the health check of a warm container: one GET /alive on its
// agent's socket.
func aliveAt(ctx context.Context, sock string) error {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := probeAlive(ctx, &http.Client{Transport: tr}); err != nil {
		return fmt.Errorf("agent at unix://%s: %w", sock, err)
	}
	return nil
}

// claimedPoolContainers lists the pool containers claimed by sessionID
// (their session label is empty: see LabelPool).
func (b *Backend) claimedPoolContainers(ctx context.Context, sessionID string) ([]container.Summary, error) {
	list, err := b.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelPool+"=true"),
	)})
	if err != nil {
		return nil, fmt.Errorf("docker backend: list warm-pool containers of session %s: %w", sessionID, mapDaemonErr(b.cli, err))
	}
	var out []container.Summary
	for _, c := range list {
		if sessionOf(c.Labels) == sessionID {
			out = append(out, c)
		}
	}
	return out, nil
}
