package kubernetes

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"corral/runtimes"
)

// watcher is the Backend's one informer (list, then watch) on the pods of
// its namespace labelled corral.managed=true. It keeps a box per pod some
// call follows (Start waiting for Running, Wait, Stop and Destroy waiting
// for the pod to go) and tells them what happened, so nothing polls.
type watcher struct {
	b       *Backend
	factory informers.SharedInformerFactory
	store   cache.Store
	stop    chan struct{}

	mu     sync.Mutex
	closed bool
	boxes  map[string]*box // by pod name
}

// box is what the watcher knows about one followed pod.
type box struct {
	name    string
	uid     types.UID     // "" until known; events of another pod with the name are ignored
	pod     *corev1.Pod   // the latest state seen
	changed chan struct{} // cap 1: signalled on every event (Start reads pod)
	died    chan struct{} // closed once the sandbox is dead (exit set)
	gone    chan struct{} // closed once the pod object is deleted
	expect  bool          // Corral itself stops or deletes it: no Exit to Wait
	exit    *runtimes.Exit
	waiters map[*runtimes.ExitWaiter]struct{}
}

// newWatcher starts the informer and waits (within ctx) until its first
// list is in.
func newWatcher(ctx context.Context, b *Backend) (*watcher, error) {
	f := informers.NewSharedInformerFactoryWithOptions(b.client, 0,
		informers.WithNamespace(b.cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelManaged + "=true" }))
	inf := f.Core().V1().Pods().Informer()
	w := &watcher{b: b, factory: f, store: inf.GetStore(), stop: make(chan struct{}), boxes: map[string]*box{}}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.onPod(obj, false) },
		UpdateFunc: func(_, obj any) { w.onPod(obj, false) },
		DeleteFunc: func(obj any) { w.onPod(obj, true) },
	})
	if err != nil {
		return nil, fmt.Errorf("watch pods: %w", err)
	}
	f.Start(w.stop)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), inf.HasSynced) {
		w.close()
		return nil, fmt.Errorf("watch pods labelled %s=true in namespace %q: the first list did not arrive: %w", LabelManaged, b.cfg.Namespace, sctx.Err())
	}
	return w, nil
}

// close stops the informer (waiting for its goroutines) and closes every
// pending Wait channel without a value.
func (w *watcher) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.stop)
	boxes := w.boxes
	w.boxes = map[string]*box{}
	w.mu.Unlock()
	w.factory.Shutdown()
	for _, bx := range boxes {
		for wt := range bx.waiters {
			wt.Finish(nil)
		}
	}
}

// onPod records an event of a followed pod and, when it shows the
// sandbox dead, fires its Wait channels.
func (w *watcher) onPod(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	w.mu.Lock()
	bx := w.boxes[pod.Name]
	if bx == nil || (bx.uid != "" && bx.uid != pod.UID) {
		w.mu.Unlock()
		return
	}
	bx.uid, bx.pod = pod.UID, pod
	select {
	case bx.changed <- struct{}{}:
	default:
	}
	fire := w.noteLocked(bx, exitOfPod(pod, deleted))
	if deleted && !chanClosed(bx.gone) {
		close(bx.gone)
	}
	w.mu.Unlock()
	for _, wt := range fire {
		wt.Finish(bx.exit)
	}
	if len(fire) > 0 {
		w.b.logger.Info("sandbox died", "pod", pod.Name, "reason", bx.exit.Reason)
	}
}

// noteLocked records a sandbox's death (e non-nil) once and returns the
// waiters to tell; none when Corral caused it.
func (w *watcher) noteLocked(bx *box, e *runtimes.Exit) []*runtimes.ExitWaiter {
	if e == nil || chanClosed(bx.died) {
		return nil
	}
	close(bx.died)
	if bx.expect {
		return nil
	}
	bx.exit = e
	var fire []*runtimes.ExitWaiter
	for wt := range bx.waiters {
		fire = append(fire, wt)
	}
	bx.waiters = map[*runtimes.ExitWaiter]struct{}{}
	return fire
}

func chanClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (w *watcher) boxLocked(name string) *box {
	bx := w.boxes[name]
	if bx == nil {
		bx = &box{name: name, changed: make(chan struct{}, 1), died: make(chan struct{}), gone: make(chan struct{}), waiters: map[*runtimes.ExitWaiter]struct{}{}}
		w.boxes[name] = bx
	}
	return bx
}

// follow starts following pod name (before it is created, so no event is
// missed) and returns its box. The informer's cache may already hold it
// (Recover, Wait on a handle from another process).
func (w *watcher) follow(name string) (*box, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, fmt.Errorf("kubernetes backend: closed")
	}
	bx := w.boxLocked(name)
	if bx.pod == nil {
		if obj, ok, _ := w.store.GetByKey(w.b.cfg.Namespace + "/" + name); ok {
			pod := obj.(*corev1.Pod)
			bx.uid, bx.pod = pod.UID, pod
			w.noteLocked(bx, exitOfPod(pod, false))
		}
	}
	return bx, nil
}

// latest is the newest state of a followed pod (nil: none seen yet).
func (w *watcher) latest(bx *box) *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bx.pod
}

// exitOf is how a followed pod's sandbox died on its own (nil: alive, or
// ended by Corral).
func (w *watcher) exitOf(bx *box) *runtimes.Exit {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bx.exit
}

// endedByCorral: Corral stopped or deleted the pod (no Exit recorded).
func (w *watcher) endedByCorral(bx *box) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bx.expect && chanClosed(bx.died)
}

// expectEnd marks pod name as ended by Corral: its Wait channels close
// without a value, and its death is not reported.
func (w *watcher) expectEnd(name string) (*box, error) {
	bx, err := w.follow(name)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	bx.expect = true
	fire := bx.waiters
	bx.waiters = map[*runtimes.ExitWaiter]struct{}{}
	w.mu.Unlock()
	for wt := range fire {
		wt.Finish(nil)
	}
	return bx, nil
}

// forget stops following pod name and closes its Wait channels.
func (w *watcher) forget(name string) {
	w.mu.Lock()
	bx := w.boxes[name]
	delete(w.boxes, name)
	w.mu.Unlock()
	if bx == nil {
		return
	}
	for wt := range bx.waiters {
		wt.Finish(nil)
	}
}

// wait implements Backend.Wait for pod name (uid: "" or the pod's uid).
func (w *watcher) wait(ctx context.Context, name string, uid types.UID) (<-chan runtimes.Exit, error) {
	bx, err := w.follow(name)
	if err != nil {
		return nil, err
	}
	wt := runtimes.NewExitWaiter()
	w.mu.Lock()
	known := bx.pod != nil
	if known && uid != "" && bx.uid != uid {
		w.mu.Unlock()
		return nil, fmt.Errorf("kubernetes backend: wait: pod %s is another pod now (uid %s, want %s): %w", name, bx.uid, uid, runtimes.ErrNotFound)
	}
	if bx.exit != nil {
		e := *bx.exit
		w.mu.Unlock()
		wt.Finish(&e)
		return wt.C(), nil
	}
	if chanClosed(bx.died) { // ended by Corral
		w.mu.Unlock()
		wt.Finish(nil)
		return wt.C(), nil
	}
	bx.waiters[wt] = struct{}{}
	wt.Stop = context.AfterFunc(ctx, func() {
		w.mu.Lock()
		delete(bx.waiters, wt)
		w.mu.Unlock()
		wt.Finish(nil)
	})
	w.mu.Unlock()
	if known {
		return wt.C(), nil
	}
	// Not in the informer's cache, which has been in sync since New: the
	// pod does not exist (or is not ours). Ask once to tell which.
	_, err = w.b.client.CoreV1().Pods(w.b.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return wt.C(), nil // created after the cache looked: events follow
	}
	w.mu.Lock()
	delete(bx.waiters, wt)
	if bx.pod == nil && len(bx.waiters) == 0 && w.boxes[name] == bx && !bx.expect {
		delete(w.boxes, name) // nothing to follow: do not keep a box per bad handle
	}
	w.mu.Unlock()
	wt.Finish(nil)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("kubernetes backend: wait: pod %s in namespace %q: %w", name, w.b.cfg.Namespace, runtimes.ErrNotFound)
	}
	return nil, fmt.Errorf("kubernetes backend: wait: %w", w.b.apiErr("get", "pods", err))
}

// ended is how a pod this Backend followed ended, once it is dead: its own
// exit, or a stop by Corral. nil while alive or unknown.
func (w *watcher) ended(name string) *runtimes.Exit {
	w.mu.Lock()
	defer w.mu.Unlock()
	bx := w.boxes[name]
	switch {
	case bx == nil || !chanClosed(bx.died):
		return nil
	case bx.exit != nil:
		e := *bx.exit
		return &e
	}
	return &runtimes.Exit{Reason: "stopped by Corral (the pod was deleted)"}
}
