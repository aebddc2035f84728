package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"corral/runtimes"
)

// watcher follows the Engine's event stream for this node's containers (one
// goroutine per Backend) and turns `die` and `oom` events into Exit values
// for Wait channels, at once rather than by polling.
type watcher struct {
	b      *Backend
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	boxes  map[string]*box
	closed bool
}

// box is what the watcher knows about one container.
type box struct {
	died    chan struct{} // closed at the next die event; re-made by arm
	expect  bool          // we asked it to stop (Stop, Pause in stop mode): a die is not a failure
	oom     bool          // an oom event was seen since the last arm
	exit    *runtimes.Exit
	waiters map[*runtimes.ExitWaiter]struct{}
}

func newWatcher(b *Backend) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{b: b, cancel: cancel, done: make(chan struct{}), boxes: map[string]*box{}}
	// Subscribe from "now" (whole seconds, so nothing between New and the
	// subscription reaching the daemon is missed; older events are for
	// containers nobody tracks yet and are ignored).
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	go w.run(ctx, since)
	return w
}

func (w *watcher) close() {
	w.cancel()
	<-w.done
	w.mu.Lock()
	w.closed = true
	boxes := w.boxes
	w.boxes = map[string]*box{}
	w.mu.Unlock()
	for _, bx := range boxes {
		for wt := range bx.waiters {
			wt.Finish(nil)
		}
	}
}

func (w *watcher) run(ctx context.Context, since string) {
	defer close(w.done)
	backoff := 50 * time.Millisecond
	for {
		f := filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			// Not filtered by node: Recover may adopt another node's sandbox.
			// Events of containers nobody tracks are dropped in handle.
			filters.Arg("label", LabelManaged+"=true"),
			filters.Arg("event", string(events.ActionDie)),
			filters.Arg("event", string(events.ActionOOM)),
		)
		sub, cancel := context.WithCancel(ctx)
		msgs, errs := w.b.cli.Events(sub, events.ListOptions{Since: since, Filters: f})
	loop:
		for {
			select {
			case m := <-msgs:
				backoff = 50 * time.Millisecond
				if m.TimeNano > 0 {
					since = fmt.Sprintf("%d.%09d", m.TimeNano/1e9, m.TimeNano%1e9)
				}
				w.handle(ctx, m)
			case err := <-errs:
				if ctx.Err() != nil {
					cancel()
					return
				}
				w.b.cfg.logger.Warn("docker event stream broke; resubscribing", "err", mapDaemonErr(w.b.cli, err), "retry_in", backoff)
				break loop
			case <-ctx.Done():
				cancel()
				return
			}
		}
		cancel()
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, 5*time.Second)
		// Events missed while disconnected: the containers we track may have
		// died meanwhile; since= replays them.
	}
}

func (w *watcher) handle(ctx context.Context, m events.Message) {
	id := m.Actor.ID
	w.mu.Lock()
	bx := w.boxes[id]
	if bx == nil {
		w.mu.Unlock()
		return
	}
	switch m.Action {
	case events.ActionOOM:
		bx.oom = true
		kill := !bx.expect && w.b.cfg.oomPolicy == OOMKillSandbox
		w.mu.Unlock()
		if kill {
			w.b.cfg.logger.Warn("OOM kill inside sandbox; killing the sandbox", "container", id)
			kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := w.b.cli.ContainerKill(kctx, id, "KILL"); err != nil && !cerrdefs.IsNotFound(err) && !isConflict(err) {
				w.b.cfg.logger.Warn("kill OOM-hit sandbox", "container", id, "err", err)
			}
			cancel()
		}
		return
	case events.ActionDie:
	default:
		w.mu.Unlock()
		return
	}
	if bx.exit != nil || isClosed(bx.died) {
		w.mu.Unlock() // a replayed event after resubscribing
		return
	}
	expected := bx.expect
	w.mu.Unlock()

	var e runtimes.Exit
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	insp, err := w.b.cli.ContainerInspect(ictx, id)
	cancel()
	if err == nil && insp.State != nil && staleDie(m, insp.State) {
		return // the death of an earlier run; the container runs again
	}
	if err == nil && insp.State != nil && !insp.State.Running {
		e = exitFromState(insp.State)
	} else {
		code, _ := strconv.Atoi(m.Actor.Attributes["exitCode"])
		e = exitFromState(&container.State{ExitCode: code})
	}

	w.mu.Lock()
	if w.boxes[id] != bx || isClosed(bx.died) {
		w.mu.Unlock()
		return
	}
	if bx.oom && !e.OOMKilled {
		e = exitFromState(&container.State{ExitCode: e.Code, OOMKilled: true})
	}
	close(bx.died)
	var fire []*runtimes.ExitWaiter
	if !expected {
		bx.exit = &e
		for wt := range bx.waiters {
			fire = append(fire, wt)
		}
		bx.waiters = map[*runtimes.ExitWaiter]struct{}{}
	}
	w.mu.Unlock()
	for _, wt := range fire {
		wt.Finish(&e)
	}
	if !expected {
		w.b.cfg.logger.Info("sandbox died", "container", id, "reason", e.Reason)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (w *watcher) boxLocked(id string) *box {
	bx := w.boxes[id]
	if bx == nil {
		bx = &box{died: make(chan struct{}), waiters: map[*runtimes.ExitWaiter]struct{}{}}
		w.boxes[id] = bx
	}
	return bx
}

// arm starts watching a container that is about to (re)start and returns a
// channel closed when it dies.
func (w *watcher) arm(id string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	bx := w.boxLocked(id)
	bx.died, bx.expect, bx.oom, bx.exit = make(chan struct{}), false, false, nil
	return bx.died
}

// expectStop marks the next die of id as requested by us and returns the
// channel closed when the watcher has seen it.
func (w *watcher) expectStop(id string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	bx := w.boxLocked(id)
	bx.expect = true
	return bx.died
}

// release closes id's pending Wait channels without a value.
func (w *watcher) release(id string) {
	w.mu.Lock()
	bx := w.boxes[id]
	var fire []*runtimes.ExitWaiter
	if bx != nil {
		for wt := range bx.waiters {
			fire = append(fire, wt)
		}
		bx.waiters = map[*runtimes.ExitWaiter]struct{}{}
	}
	w.mu.Unlock()
	for _, wt := range fire {
		wt.Finish(nil)
	}
}

// forget stops tracking id and closes its Wait channels without a value.
func (w *watcher) forget(id string) {
	w.release(id)
	w.mu.Lock()
	delete(w.boxes, id)
	w.mu.Unlock()
}

func (w *watcher) wait(ctx context.Context, id string) (<-chan runtimes.Exit, error) {
	wt := runtimes.NewExitWaiter()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, fmt.Errorf("docker backend: wait: backend closed")
	}
	bx, known := w.boxes[id]
	if known && bx.exit != nil {
		e := *bx.exit
		w.mu.Unlock()
		wt.Finish(&e)
		return wt.C(), nil
	}
	bx = w.boxLocked(id)
	bx.waiters[wt] = struct{}{}
	expected := bx.expect
	// stop is set under mu: the callback and die events read it under mu.
	wt.Stop = context.AfterFunc(ctx, func() {
		w.mu.Lock()
		if cur := w.boxes[id]; cur != nil {
			delete(cur.waiters, wt)
		}
		w.mu.Unlock()
		wt.Finish(nil)
	})
	w.mu.Unlock()

	// A container this Backend value never started (e.g. after a restart
	// of Corral, without Recover) may be dead already: the event is gone.
	if !known {
		insp, err := w.b.cli.ContainerInspect(ctx, id)
		if err != nil {
			w.forgetWaiter(id, wt)
			if cerrdefs.IsNotFound(err) {
				return nil, fmt.Errorf("docker backend: wait: container %s: %w", id, runtimes.ErrNotFound)
			}
			return nil, fmt.Errorf("docker backend: wait: inspect container %s: %w", id, mapDaemonErr(w.b.cli, err))
		}
		if insp.State != nil && !insp.State.Running && insp.State.Status != "created" && !expected && !stopPaused(insp) {
			e := exitFromState(insp.State)
			w.mu.Lock()
			if cur := w.boxes[id]; cur != nil {
				delete(cur.waiters, wt)
				if cur.exit == nil {
					cur.exit = &e
				}
			}
			w.mu.Unlock()
			wt.Finish(&e)
		}
	}
	return wt.C(), nil
}

func (w *watcher) forgetWaiter(id string, wt *runtimes.ExitWaiter) {
	w.mu.Lock()
	if cur := w.boxes[id]; cur != nil {
		delete(cur.waiters, wt)
	}
	w.mu.Unlock()
	wt.Finish(nil)
}

// stopPaused reports whether a stopped container was stopped by Pause in
// PauseStop mode (its run dir holds the marker file).
func stopPaused(insp container.InspectResponse) bool {
	if insp.Config == nil || insp.Config.Labels[LabelRunDir] == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(insp.Config.Labels[LabelRunDir], pausedMarker))
	return err == nil
}

// staleDie reports whether a die event predates the container's current
// run (both times come from the daemon's clock).
func staleDie(m events.Message, st *container.State) bool {
	if !st.Running || m.TimeNano == 0 {
		return false
	}
	started, err := time.Parse(time.RFC3339Nano, st.StartedAt)
	return err == nil && m.TimeNano < started.UnixNano()
}
