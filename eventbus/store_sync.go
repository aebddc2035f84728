package eventbus

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// storeSyncer makes the writes of every session log of a Store durable
// together (sync_method = "syncfs"). A session log's writer writes its group
// with write(2) and then calls wait instead of fsyncing its own file; one
// syncfs(2) on the store directory then covers every file written since the
// previous one, so the number of syncs no longer grows with the number of
// sessions.
//
// Why syncfs is safe here: syncfs writes back and waits on every dirty page
// and inode of the filesystem holding the store directory and (ext4, xfs,
// btrfs) commits the journal and flushes the device cache, which is a
// superset of what fdatasync on each written file guarantees. A waiter is
// only released after a syncfs that started after its write(2) returned, so
// nothing is acknowledged before it is on stable storage. Since Linux 5.8
// syncfs also reports writeback errors of the filesystem (errseq, per open
// file description), so a failed writeback fails the whole batch; OpenStore
// refuses "syncfs" on older kernels, where such errors were swallowed. The
// cost of syncfs grows with unrelated dirty data on the same filesystem:
// put store_dir on its own filesystem for the best latency.
//
// Like the per-file group commit there is no goroutine: the first waiter
// that finds no sync running becomes the leader, and when its round is done
// it promotes one waiter of the next round, if any, to lead that one.
type storeSyncer struct {
	dir *os.File // the store directory; syncfs target

	// syncFn performs one sync; the real syncfs unless a test replaced it.
	syncFn func() error
	// syncs counts completed syncfs calls (tests, benchmarks); a round's
	// own fdatasync is counted by its log.
	syncs atomic.Int64
	// onRound, if set (tests), is called by each round's leader with the
	// number of writers the round covers, before it syncs.
	onRound func(waiters int)

	mu      sync.Mutex
	cur     *syncRound // round collecting waiters, nil if none
	leading bool       // a waiter is acting as leader
}

// syncRound is the set of waiters covered by one sync call.
type syncRound struct {
	done    chan struct{} // closed when the sync returned; err is then set
	promote chan struct{} // one receive hands this round's leadership over
	err     error
	waiters int // writers covered by this round
	// own is the last joining writer's own sync; used when waiters == 1.
	own func() error
}

// minSyncfsKernel is the first Linux release whose syncfs reports writeback
// errors.
const minSyncfsKernel = "5.8"

func newStoreSyncer(dir string) (*storeSyncer, error) {
	if err := checkSyncfsKernel(); err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("eventbus: open store_dir %s for syncfs: %w", dir, err)
	}
	s := &storeSyncer{dir: f}
	s.syncFn = func() error {
		if err := unix.Syncfs(int(f.Fd())); err != nil {
			return fmt.Errorf("eventbus: syncfs on the filesystem of %s: %w", dir, err)
		}
		return nil
	}
	return s, nil
}

// checkSyncfsKernel refuses kernels whose syncfs hides writeback errors.
func checkSyncfsKernel() error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("eventbus config: sync_method = \"syncfs\" needs the kernel version: uname: %w; set sync_method = \"fsync\"", err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	var major, minor int
	if _, err := fmt.Sscanf(rel, "%d.%d", &major, &minor); err != nil {
		return fmt.Errorf("eventbus config: sync_method = \"syncfs\": cannot parse kernel release %q; set sync_method = \"fsync\"", rel)
	}
	if major < 5 || major == 5 && minor < 8 {
		return fmt.Errorf("eventbus config: sync_method = \"syncfs\" needs Linux >= %s (older syncfs does not report write errors) but this kernel is %s; set sync_method = \"fsync\"", minSyncfsKernel, rel)
	}
	return nil
}

// wait returns once a sync that started after the call has completed, with
// that sync's error. The caller must have finished its write(2) first.
// own syncs just the caller's file (fdatasync): a round with a single
// writer uses it instead of syncfs, which costs more because it covers the
// whole filesystem; syncfs pays off only when it replaces several syncs.
func (s *storeSyncer) wait(own func() error) error {
	s.mu.Lock()
	r := s.cur
	if r == nil {
		r = &syncRound{done: make(chan struct{}), promote: make(chan struct{}, 1)}
		s.cur = r
	}
	r.waiters++
	r.own = own
	lead := !s.leading
	if lead {
		s.leading = true
	}
	s.mu.Unlock()
	if !lead {
		select {
		case <-r.done:
			return r.err
		case <-r.promote:
		}
	}
	s.lead()
	<-r.done
	return r.err
}

// lead runs one round at once: it closes the round to newcomers, syncs and
// releases its waiters. Writers that arrive during the sync form the next
// round, whose leader is promoted as soon as this sync returns, so a lone
// writer never waits for a timer and concurrent writers share exactly what
// piles up during one sync ("always" and "batch" alike). It hands
// leadership to a waiter of the next round, or gives it up.
func (s *storeSyncer) lead() {
	s.mu.Lock()
	r := s.cur
	s.cur = nil
	// Closed to newcomers now, so waiters and own are final.
	sync, shared := s.syncFn, true
	if r.waiters == 1 && r.own != nil {
		sync, shared = r.own, false
	}
	hook := s.onRound
	s.mu.Unlock()
	if hook != nil {
		hook(r.waiters)
	}
	err := sync()
	if shared {
		s.syncs.Add(1)
	}
	s.mu.Lock()
	r.err = err
	close(r.done)
	if next := s.cur; next != nil {
		next.promote <- struct{}{} // buffered 1, and only one promotion per round
	} else {
		s.leading = false
	}
	s.mu.Unlock()
}

// queued returns how many writers wait for the next round (tests).
func (s *storeSyncer) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return 0
	}
	return s.cur.waiters
}

func (s *storeSyncer) close() error {
	if err := s.dir.Close(); err != nil {
		return fmt.Errorf("eventbus: close store_dir handle: %w", err)
	}
	return nil
}
