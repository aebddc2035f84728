package eventbus

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A store directory belongs to one Store at a time. OpenStore takes an
// exclusive flock(2) on <store_dir>/LOCK (non-blocking) before it touches
// anything else in the directory and holds it until Close. The kernel
// releases it when the process dies, however it dies, so a crash never
// leaves a stale lock behind; a second OpenStore of the same directory, in
// this process or another, fails at once with a *StoreLockedError naming the
// holder. The descriptor is close-on-exec, so child processes (sandboxes,
// agents) never inherit the lock.
//
// After taking the lock the holder writes a LockHolder as JSON into LOCK; it
// is only ever read to explain a refusal (a holder that has just taken the
// lock may not have written itself yet, and the file keeps a dead holder's
// record until the next owner overwrites it).

const (
	lockFile    = "LOCK"
	storeIDFile = "STORE_ID"
	// maxCommandLen bounds the command line recorded in LOCK.
	maxCommandLen = 1024
)

// ErrStoreLocked is matched (errors.Is) by the error of OpenStore when
// another Store, in this process or another, holds the directory.
var ErrStoreLocked = errors.New("eventbus: event store is in use")

// LockHolder describes the process holding a store directory, as recorded
// in <store_dir>/LOCK.
type LockHolder struct {
	PID      int       `json:"pid"`
	Host     string    `json:"host"`
	Command  string    `json:"command"`  // the holder's command line (truncated)
	Since    time.Time `json:"since"`    // when it took the lock
	Instance string    `json:"instance"` // the holding Store's instance id (see WithInstanceID)
}

// StoreLockedError is OpenStore's error when the directory is held by
// another Store. Holder is nil when the holder's record could not be read
// (it may have just taken the lock).
type StoreLockedError struct {
	Dir      string
	Holder   *LockHolder
	ReadErr  error // why Holder is nil, if it is
	SameProc bool  // the holder is this very process
}

func (e *StoreLockedError) Error() string {
	const fix = "stop that process or use another [events] store_dir"
	h := e.Holder
	if h == nil {
		why := "it has not recorded itself yet"
		if e.ReadErr != nil {
			why = e.ReadErr.Error()
		}
		return fmt.Sprintf("eventbus: event store %s is in use by another process (holder unknown: %s); %s", e.Dir, why, fix)
	}
	who := fmt.Sprintf("%q (pid %d on host %s since %s)", h.Command, h.PID, h.Host, h.Since.UTC().Format(time.RFC3339))
	if e.SameProc {
		return fmt.Sprintf("eventbus: event store %s is already open in this process %s; Close that *Store first or share it", e.Dir, who)
	}
	return fmt.Sprintf("eventbus: event store %s is in use by %s; %s", e.Dir, who, fix)
}

// Is makes errors.Is(err, ErrStoreLocked) true.
func (e *StoreLockedError) Is(target error) bool { return target == ErrStoreLocked }

// WithInstanceID sets the instance id recorded in LOCK (default: a random id
// per OpenStore). Pass the process's own instance id when it has one, so
// that what it records elsewhere (e.g. in session metadata) can be matched
// with the lock holder.
func WithInstanceID(id string) StoreOption {
	return func(s *Store) {
		if id != "" {
			s.instance = id
		}
	}
}

// randomID returns 16 random bytes in hex.
func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("eventbus: random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// lockStore takes the directory's lock and records holder in it. On
// success the returned file holds the lock until it is closed.
func lockStore(dir string, holder LockHolder) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if errors.Is(err, unix.EROFS) {
			return nil, fmt.Errorf("eventbus: open the store lock %s: %w; the event store needs a writable store_dir (remount the filesystem read-write or set [events] store_dir elsewhere)", path, err)
		}
		return nil, fmt.Errorf("eventbus: open the store lock %s: %w; check the directory's owner and permissions", path, err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("eventbus: lock %s: %w", path, err)
		}
		le := &StoreLockedError{Dir: dir}
		le.Holder, le.ReadErr = readHolder(f)
		f.Close()
		if le.Holder != nil {
			host, _ := os.Hostname()
			le.SameProc = le.Holder.PID == os.Getpid() && le.Holder.Host == host
		}
		return nil, le
	}
	js, err := json.Marshal(holder)
	if err == nil {
		js = append(js, '\n')
		if err = f.Truncate(0); err == nil {
			_, err = f.WriteAt(js, 0)
		}
	}
	if err != nil {
		f.Close() // releases the lock
		return nil, fmt.Errorf("eventbus: record the lock holder in %s: %w", path, err)
	}
	return f, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// readHolder reads the holder's record from the lock file. Only the first
// JSON value counts: a holder writing its record over a longer old one may
// briefly leave the old tail behind.
func readHolder(f *os.File) (*LockHolder, error) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 64<<10))
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("its LOCK file is empty (it has just taken the lock)")
	}
	var h LockHolder
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&h); err != nil {
		return nil, fmt.Errorf("its LOCK file does not hold a holder record: %w", err)
	}
	return &h, nil
}

// unlockStore clears the holder record and releases the lock.
func unlockStore(f *os.File) error {
	_ = f.Truncate(0) // a human looking at LOCK should not see a past holder
	err := flock(f, unix.LOCK_UN)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("eventbus: release the store lock: %w", err)
	}
	return nil
}

// currentHolder describes this process.
func currentHolder(instance string, now time.Time) LockHolder {
	host, _ := os.Hostname()
	cmd := strings.Join(os.Args, " ")
	if len(cmd) > maxCommandLen {
		cmd = cmd[:maxCommandLen] + "..."
	}
	return LockHolder{PID: os.Getpid(), Host: host, Command: cmd, Since: now.UTC(), Instance: instance}
}

// loadStoreID reads <dir>/STORE_ID, creating it (durably) on first use.
// The caller holds the store lock, so nobody else creates it concurrently.
func loadStoreID(dir string) (string, error) {
	path := filepath.Join(dir, storeIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if !validStoreID(id) {
			return "", fmt.Errorf("eventbus: %s holds %q, not a store id (1-64 characters from [0-9a-z-]); restore the file, or remove it to give the store a new id", path, clip(id, 80))
		}
		return id, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("eventbus: read the store id: %w", err)
	}
	id, err := randomID()
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(dir, storeIDFile, []byte(id+"\n"), 0o644, true); err != nil {
		return "", fmt.Errorf("eventbus: create the store id %s: %w", path, err)
	}
	return id, nil
}

func validStoreID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// tmpPrefix starts the names of the temporary files writeFileAtomic
// writes. They start with '.', so no session id can name them, and
// OpenStore removes those left by a crash.
const tmpPrefix = ".tmp-"

// writeFileAtomic replaces dir/name with data: it writes a temporary file
// in dir, fsyncs it, renames it over name and fsyncs dir. After a crash
// name holds either the old or the new content, never a mix.
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode, durable bool) (err error) {
	f, err := os.CreateTemp(dir, tmpPrefix+name+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	if !durable {
		return nil // atomic against a crash of the process, not of the machine
	}
	return syncDir(dir)
}

// removeTempFiles removes temporary files a crash left in dir (the caller
// holds the store lock, so none of them is being written).
func removeTempFiles(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("eventbus: list %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("eventbus: remove a temporary file left by a crash: %w", err)
			}
		}
	}
	return nil
}
