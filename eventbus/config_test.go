package eventbus

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Sync != SyncBatch || c.SyncMethod != DefaultSyncMethod() || c.SyncMaxDelay != 2*time.Millisecond || c.SubscriberBuffer != 1024 || c.MaxEventBytes != 4<<20 || c.StoreDir != "~/.corral/sessions" {
		t.Fatalf("defaults changed: %+v", c)
	}
	if runtime.GOOS == "linux" && c.SyncMethod != SyncMethodWAL {
		t.Fatalf("default sync_method on Linux is %q, want the write-ahead log", c.SyncMethod)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory")
	}
	if d, _ := c.ResolvedStoreDir(); d != filepath.Join(home, ".corral", "sessions") {
		t.Fatalf("ResolvedStoreDir = %s", d)
	}
}

func TestConfigValidateNamesTheBadKeyAndValue(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"empty store_dir", func(c *Config) { c.StoreDir = " " }, []string{"store_dir"}},
		{"unknown sync policy", func(c *Config) { c.Sync = "sometimes" }, []string{"sync", `"sometimes"`, "always"}},
		{"zero sync_max_delay", func(c *Config) { c.SyncMaxDelay = 0 }, []string{"sync_max_delay", "0s"}},
		{"huge sync_max_delay", func(c *Config) { c.SyncMaxDelay = time.Minute }, []string{"sync_max_delay", "1m0s"}},
		{"zero subscriber_buffer", func(c *Config) { c.SubscriberBuffer = 0 }, []string{"subscriber_buffer = 0"}},
		{"tiny max_event_bytes", func(c *Config) { c.MaxEventBytes = 10 }, []string{"max_event_bytes = 10"}},
		{"unknown sync_method", func(c *Config) { c.SyncMethod = "fdatasync" }, []string{"sync_method", `"fdatasync"`, `"wal"`, `"syncfs"`, `"fsync"`}},
		{"empty sync_method", func(c *Config) { c.SyncMethod = "" }, []string{`sync_method = ""`}},
		{"several errors are all reported", func(c *Config) { c.Sync = ""; c.SubscriberBuffer = -1 }, []string{"sync = \"\"", "subscriber_buffer = -1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("invalid config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigDecodesFromTOML(t *testing.T) {
	c := DefaultConfig()
	_, err := toml.Decode(`
store_dir = "/var/lib/corral/sessions"
sync = "always"
sync_method = "fsync"
sync_max_delay = "5ms"
subscriber_buffer = 64
max_event_bytes = 1048576
`, &c)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{StoreDir: "/var/lib/corral/sessions", Sync: SyncAlways, SyncMethod: SyncMethodFsync, SyncMaxDelay: 5 * time.Millisecond, SubscriberBuffer: 64, MaxEventBytes: 1 << 20}
	if c != want {
		t.Fatalf("decoded %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenStoreRejectsAnInvalidConfig(t *testing.T) {
	c := testConfig(t.TempDir())
	c.Sync = "fast"
	if _, err := OpenStore(c); err == nil || !strings.Contains(err.Error(), "sync") {
		t.Fatalf("OpenStore with sync=fast: %v", err)
	}
}
