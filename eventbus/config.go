package eventbus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// SyncPolicy says when an append is acknowledged relative to fsync.
type SyncPolicy string

// Sync policies.
const (
	// SyncAlways syncs every commit group before acknowledging it.
	SyncAlways SyncPolicy = "always"
	// SyncBatch is leader/follower group commit: the committer syncs at once
	// when no sync is in flight, and the appends that arrive while one is
	// share the next sync; acknowledgements wait for the sync that covers
	// them. A lone writer never waits for a timer (one fdatasync per
	// append), so "batch" is never slower than "always"; today the two run
	// the same protocol, and "batch" names the intent.
	SyncBatch SyncPolicy = "batch"
	// SyncNever never fsyncs; an append is acknowledged once written to the
	// OS (it survives a process crash, not a machine crash).
	SyncNever SyncPolicy = "never"
)

// SyncMethod says how "always" and "batch" make appended events durable.
type SyncMethod string

// Sync methods.
const (
	// SyncMethodSyncfs makes the writes of all sessions durable together with
	// one syncfs(2) on the store directory's filesystem per batch, so the
	// sync rate does not grow with the number of sessions (Linux >= 5.8
	// only; see storeSyncer for why it is safe). Best when store_dir is on
	// a filesystem of its own: syncfs also flushes unrelated dirty files.
	SyncMethodSyncfs SyncMethod = "syncfs"
	// SyncMethodFsync fsyncs each session's file on its own: one sync per
	// session per batch, independent of other writers on the filesystem.
	SyncMethodFsync SyncMethod = "fsync"
	// SyncMethodWAL appends every session's commit groups to one
	// store-wide write-ahead log and makes a batch of them durable with
	// one fdatasync of that log; session files are written without sync
	// and checkpointed (syncfs) when a log segment fills up. Linux >= 5.8
	// only (see wal.go).
	SyncMethodWAL SyncMethod = "wal"
)

// DefaultSyncMethod is "wal" on Linux and "fsync" elsewhere.
func DefaultSyncMethod() SyncMethod {
	if runtime.GOOS == "linux" {
		return SyncMethodWAL
	}
	return SyncMethodFsync
}

// Config is the event bus section of corral's TOML configuration.
type Config struct {
	// StoreDir is the directory holding one event log per session. A leading
	// "~/" means the user's home directory. Default "~/.corral/sessions".
	StoreDir string `toml:"store_dir"`
	// Sync is the fsync policy: "always", "batch" (default) or "never".
	Sync SyncPolicy `toml:"sync"`
	// SyncMethod is how "always" and "batch" sync: "wal" (one store-wide
	// write-ahead log, one fdatasync per batch; default on Linux),
	// "syncfs" (one syncfs(2) covers every session written since the last
	// one) or "fsync" (each session file synced on its own).
	SyncMethod SyncMethod `toml:"sync_method"`
	// SyncMaxDelay is accepted (a duration string such as "2ms", > 0 and
	// <= 1s) so existing configurations load, but no longer delays anything:
	// group commit batches what arrives during a sync instead of waiting a
	// timer, which made a lone writer wait sync_max_delay on every append.
	SyncMaxDelay time.Duration `toml:"sync_max_delay"`
	// SubscriberBuffer is how many events a live subscriber may fall behind
	// before its subscription ends with an overflow error (default 1024).
	SubscriberBuffer int `toml:"subscriber_buffer"`
	// MaxEventBytes is the largest encoded event accepted (default 4 MiB).
	MaxEventBytes int `toml:"max_event_bytes"`
}

// Defaults.
const (
	DefaultStoreDir         = "~/.corral/sessions"
	DefaultSyncMaxDelay     = 2 * time.Millisecond
	DefaultSubscriberBuffer = 1024
	DefaultMaxEventBytes    = 4 << 20
)

// DefaultConfig returns the configuration used when the file says nothing.
func DefaultConfig() Config {
	return Config{
		StoreDir:         DefaultStoreDir,
		Sync:             SyncBatch,
		SyncMethod:       DefaultSyncMethod(),
		SyncMaxDelay:     DefaultSyncMaxDelay,
		SubscriberBuffer: DefaultSubscriberBuffer,
		MaxEventBytes:    DefaultMaxEventBytes,
	}
}

// Validate reports every invalid key, naming it and its value.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.StoreDir) == "" {
		errs = append(errs, errors.New(`eventbus config: store_dir is empty; set it to a directory such as "~/.corral/sessions"`))
	}
	switch c.Sync {
	case SyncAlways, SyncBatch, SyncNever:
	default:
		errs = append(errs, fmt.Errorf(`eventbus config: sync = %q is not one of "always", "batch", "never"`, string(c.Sync)))
	}
	switch c.SyncMethod {
	case SyncMethodFsync:
	case SyncMethodSyncfs, SyncMethodWAL:
		if runtime.GOOS != "linux" {
			errs = append(errs, fmt.Errorf(`eventbus config: sync_method = %q needs Linux (this is %s); set sync_method = "fsync"`, string(c.SyncMethod), runtime.GOOS))
		}
	default:
		errs = append(errs, fmt.Errorf(`eventbus config: sync_method = %q is not one of "wal", "syncfs", "fsync"`, string(c.SyncMethod)))
	}
	if c.SyncMaxDelay <= 0 || c.SyncMaxDelay > time.Second {
		errs = append(errs, fmt.Errorf(`eventbus config: sync_max_delay = %q must be > 0 and <= 1s (e.g. "2ms")`, c.SyncMaxDelay))
	}
	if c.SubscriberBuffer < 1 || c.SubscriberBuffer > 1<<20 {
		errs = append(errs, fmt.Errorf("eventbus config: subscriber_buffer = %d must be between 1 and %d", c.SubscriberBuffer, 1<<20))
	}
	if c.MaxEventBytes < 1024 || c.MaxEventBytes > maxRecordBytes {
		errs = append(errs, fmt.Errorf("eventbus config: max_event_bytes = %d must be between 1024 and %d", c.MaxEventBytes, maxRecordBytes))
	}
	return errors.Join(errs...)
}

// ResolvedStoreDir returns StoreDir with a leading "~/" expanded.
func (c Config) ResolvedStoreDir() (string, error) {
	d := c.StoreDir
	if d == "~" || strings.HasPrefix(d, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("eventbus config: store_dir = %q needs the home directory: %w; set an absolute path", c.StoreDir, err)
		}
		d = filepath.Join(home, strings.TrimPrefix(d, "~"))
	}
	return filepath.Clean(d), nil
}
