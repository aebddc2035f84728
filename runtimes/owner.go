package runtimes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"syscall"
)

// Keys under which backends record a sandbox's Owner: Docker label names,
// local state-file and Handle.Meta keys alike.
const (
	MetaOwnerID      = "corral.owner"         // Owner.ID
	MetaOwnerInst    = "corral.instance"      // Owner.Instance
	MetaOwnerHost    = "corral.host"          // Owner.Host
	MetaOwnerLock    = "corral.owner_lock"    // Owner.LockPath
	MetaOwnerDurable = "corral.owner_durable" // "true" or "false"
)

// Meta returns o as Handle.Meta (or label) entries; none when o has no ID.
func (o Owner) Meta() map[string]string {
	if o.ID == "" {
		return map[string]string{}
	}
	return map[string]string{
		MetaOwnerID:      o.ID,
		MetaOwnerInst:    o.Instance,
		MetaOwnerHost:    o.Host,
		MetaOwnerLock:    o.LockPath,
		MetaOwnerDurable: strconv.FormatBool(o.Durable),
	}
}

// OwnerFromMeta reads back what Owner.Meta wrote; ok is false when no owner
// is recorded (a sandbox made by an older Corral).
func OwnerFromMeta(m map[string]string) (o Owner, ok bool) {
	if m[MetaOwnerID] == "" {
		return Owner{}, false
	}
	return Owner{
		ID:       m[MetaOwnerID],
		Instance: m[MetaOwnerInst],
		Host:     m[MetaOwnerHost],
		LockPath: m[MetaOwnerLock],
		Durable:  m[MetaOwnerDurable] == "true",
	}, true
}

// Hostname is the host name Owner.Host is compared with ("" when the
// kernel will not say).
func Hostname() string {
	h, _ := os.Hostname()
	return h
}

// ErrOwnerLocked is returned by AcquireOwnerLock when another open file
// (usually another process) holds the lock.
var ErrOwnerLocked = errors.New("owner lock is held by another process")

// AcquireOwnerLock creates path (mode 0600) if needed and takes an exclusive
// flock on it without waiting. The owner keeps the returned file open for
// its whole life; the kernel releases the lock when the process dies, so
// OwnerAlive sees it dead however it died. Closing the file releases it.
func AcquireOwnerLock(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("owner lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("owner lock %s: %w; is another Corral using the same store?", path, ErrOwnerLocked)
		}
		return nil, fmt.Errorf("owner lock %s: flock: %w", path, err)
	}
	return f, nil
}

// OwnerAlive reports whether o may still be running, erring on "alive"
// whenever it cannot be proved dead:
//   - an owner on another host is alive (its lock cannot be checked here);
//   - an owner with no LockPath recorded is alive (nothing to check);
//   - LockPath no longer exists: dead;
//   - an exclusive flock on a fresh open of LockPath succeeds: dead (the
//     lock is released at once); it would block: alive;
//   - any other error (permissions, ...): alive.
func OwnerAlive(o Owner) bool {
	if o.Host != Hostname() {
		return true
	}
	if o.LockPath == "" {
		return true
	}
	f, err := os.Open(o.LockPath)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// Lister is implemented by backends that can enumerate the sandboxes they
// manage on this host (docker by label, local by its state directory), so
// that Reap can find leftovers. Handles carry the owner in Meta (see
// OwnerFromMeta).
type Lister interface {
	List(ctx context.Context) ([]*Handle, error)
}

// reapVerdict is why Reap destroys a sandbox, or "" to keep it.
func reapVerdict(h *Handle, self Owner, wanted func(*Handle) bool) string {
	o, ok := OwnerFromMeta(h.Meta)
	switch {
	case !ok:
		return ""
	case o.Host != self.Host:
		return "" // never touch another host's owners
	case self.ID != "" && o.ID == self.ID:
		if wanted != nil && wanted(h) {
			return ""
		}
		if self.Instance != "" && o.Instance == self.Instance {
			return "" // this process's own start in flight, not a leftover
		}
		return "left over by this owner and not recovered"
	case o.Durable:
		if o.LockPath == "" {
			return ""
		}
		if _, err := os.Stat(o.LockPath); errors.Is(err, os.ErrNotExist) {
			return "its durable owner's lock file is gone"
		}
		return ""
	case !OwnerAlive(o):
		return "its ephemeral owner is dead (lock free)"
	}
	return ""
}

// Reap destroys the sandboxes of b that nobody will use again, and returns
// them. It is the engine's to call (a backend never reaps by itself):
//   - sandboxes owned by self.ID for which wanted returns false (this
//     owner's own leftovers it will not recover; wanted nil = none wanted);
//   - sandboxes of another owner on this host only once that owner is dead:
//     a durable owner once its LockPath no longer exists (the next process
//     on its store would recover them), an ephemeral one once its lock is
//     free;
//   - never sandboxes of owners on other hosts, and never sandboxes with no
//     owner recorded (older Corral versions): those are logged once.
//
// b must implement Lister; other backends are not reaped (nil, nil).
// Destroy errors do not stop the sweep; they are returned joined.
func Reap(ctx context.Context, b Backend, self Owner, wanted func(h *Handle) bool, logger *slog.Logger) ([]*Handle, error) {
	l, ok := b.(Lister)
	if !ok {
		return nil, nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	list, err := l.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("reap %s sandboxes: list: %w", b.Name(), err)
	}
	var reaped []*Handle
	var errs []error
	unowned := 0
	for _, h := range list {
		if _, ok := OwnerFromMeta(h.Meta); !ok {
			unowned++
			continue
		}
		why := reapVerdict(h, self, wanted)
		if why == "" {
			continue
		}
		if err := b.Destroy(ctx, h); err != nil {
			errs = append(errs, fmt.Errorf("destroy %s sandbox %s (session %s): %w", b.Name(), h.ID, h.SessionID, err))
			continue
		}
		logger.Info("reaped sandbox", "backend", b.Name(), "sandbox", h.ID, "session", h.SessionID,
			"owner", h.Meta[MetaOwnerID], "owner_instance", h.Meta[MetaOwnerInst], "reason", why)
		reaped = append(reaped, h)
	}
	if unowned > 0 {
		logger.Info("left sandboxes with no owner recorded alone (made by an older Corral; destroy them by hand if unused)",
			"backend", b.Name(), "count", unowned)
	}
	return reaped, errors.Join(errs...)
}
