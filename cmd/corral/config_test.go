package main

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"corral/runtimes"
	"corral/runtimes/docker"
	"corral/runtimes/local"
)

type testSection struct {
	Dir  string `toml:"dir"`
	Sync string `toml:"sync"`
}

type testConfig struct {
	Listen string      `toml:"listen"`
	Store  testSection `toml:"store"`
}

func TestDecodeConfig(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantErr string
		want    testConfig
	}{
		{name: "defaults survive an empty file", text: "", want: testConfig{Listen: "127.0.0.1:7070", Store: testSection{Sync: "batch"}}},
		{name: "known keys are set", text: "listen = \"127.0.0.1:9\"\n[store]\ndir = \"/d\"\n",
			want: testConfig{Listen: "127.0.0.1:9", Store: testSection{Dir: "/d", Sync: "batch"}}},
		{name: "unknown top-level key is named", text: "lisen = \"x\"\n", wantErr: "unknown key(s) lisen"},
		{name: "unknown nested key is named with its table", text: "[store]\nsyn = \"never\"\n", wantErr: "unknown key(s) store.syn"},
		{name: "syntax error names the line", text: "listen = \"x\"\nbad line\n", wantErr: "line 2"},
		{name: "wrong type is reported", text: "listen = 5\n", wantErr: "listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig{Listen: "127.0.0.1:7070", Store: testSection{Sync: "batch"}}
			err := decodeConfig("test.toml", tc.text, &cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg != tc.want {
				t.Fatalf("got %+v want %+v", cfg, tc.want)
			}
		})
	}
}

// TestExampleConfigIsTrue keeps examples/corral.toml honest: it must load
// without unknown keys and state exactly the built-in defaults.
func TestExampleConfigIsTrue(t *testing.T) {
	got := defaultServeConfig()
	if err := loadConfigFile("../../examples/corral.toml", &got); err != nil {
		t.Fatal(err)
	}
	want := defaultServeConfig()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("examples/corral.toml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
}

// TestRuntimeSections: each [runtime.<name>] section is decoded by its
// backend's factory, through the same loader as every other section.
func TestRuntimeSections(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantErr string
		check   func(t *testing.T, c serveConfig)
	}{
		{name: "docker keys reach docker's Config", text: `
[runtime]
enabled = ["docker", "cli"]
[runtime.docker]
runtime_container_image = "img:2"
memory_bytes = 1073741824
cpus = 2.0
pids_limit = 64
use_host_network = true
volumes = "/a:/data:ro"
pause_mode = "stop"
oom_policy = "ignore"
start_concurrency = 5
reap_orphans = false
[runtime.local]
warm_pool = 2
`, check: func(t *testing.T, c serveConfig) {
			if !reflect.DeepEqual(c.Runtime.Enabled, []string{"docker", "cli"}) {
				t.Errorf("enabled %v", c.Runtime.Enabled)
			}
			d := c.Runtime.Backends["docker"].(*docker.Config)
			want := docker.DefaultConfig()
			want.Image, want.MemoryBytes, want.CPUs, want.PidsLimit, want.UseHostNetwork = "img:2", 1<<30, 2, 64, true
			want.Volumes, want.PauseMode, want.OOMPolicy, want.StartConcurrency, want.ReapOrphans = docker.VolumeList{"/a:/data:ro"}, "stop", "ignore", 5, false
			if !reflect.DeepEqual(*d, want) {
				t.Errorf("docker config\n %+v\nwant\n %+v", *d, want)
			}
			if l := c.Runtime.Backends["local"].(*local.Config); l.WarmPool != 2 {
				t.Errorf("local config %+v", l)
			}
			if c.RuntimeTOML != nil {
				t.Error("RuntimeTOML not cleared")
			}
			if got := c.Runtime.ReapOrphans([]string{"docker"}); len(got) != 0 {
				t.Errorf("reap_orphans = false still reaps: %v", got)
			}
		}},
		{name: "reap_orphans defaults on for docker only", text: "", check: func(t *testing.T, c serveConfig) {
			if got := c.Runtime.ReapOrphans([]string{"local", "docker", "cli", "remote"}); !reflect.DeepEqual(got, []string{"docker"}) {
				t.Errorf("ReapOrphans = %v", got)
			}
		}},
		{name: "unknown docker key names the key and its section", text: "[runtime.docker]\nmemory = \"2g\"\n",
			wantErr: "unknown key(s) runtime.docker.memory"},
		{name: "unknown nested remote key", text: "[[runtime.remote.hosts]]\nmode = \"agent\"\nadress = \"x\"\n",
			wantErr: "unknown key(s) runtime.remote.hosts.adress"},
		{name: "unknown runtime in enabled lists the known ones", text: "[runtime]\nenabled = [\"dokcer\"]\n",
			wantErr: `[runtime] enabled: unknown runtime "dokcer"; known: cli, docker, local, remote`},
		{name: "unknown runtime section lists the known ones", text: "[runtime.k8s]\nnamespace = \"x\"\n",
			wantErr: `[runtime.k8s]: unknown runtime "k8s"; known: cli, docker, local, remote`},
		{name: "invalid docker value names the section and key", text: "[runtime.docker]\npause_mode = \"freeze\"\n",
			wantErr: `[runtime.docker]: pause_mode = "freeze"`},
		{name: "invalid local value", text: "[runtime.local]\nwarm_pool = -1\n", wantErr: "[runtime.local]: warm_pool = -1"},
		{name: "invalid remote host mode", text: "[[runtime.remote.hosts]]\nmode = \"telnet\"\n", wantErr: `mode = "telnet"`},
		{name: "other sections still reject unknown keys", text: "[runtime]\nenabled = [\"local\"]\n[engine]\nmax_sesions = 1\n",
			wantErr: "unknown key(s) engine.max_sesions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultServeConfig()
			err := decodeConfig("test.toml", tc.text, &cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg)
		})
	}
}

// TestExampleDocumentsEveryRuntimeKey: every key of every backend's
// Config is written out in its section of examples/corral.toml.
func TestExampleDocumentsEveryRuntimeKey(t *testing.T) {
	data, err := os.ReadFile("../../examples/corral.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for name, cfg := range defaultServeConfig().Runtime.Backends {
		if name == "remote" {
			continue // a list of hosts, shown commented out
		}
		i := strings.Index(text, "[runtime."+name+"]")
		if i < 0 {
			t.Errorf("no [runtime.%s] section", name)
			continue
		}
		section := text[i:]
		if j := strings.Index(section[1:], "[runtime."); j >= 0 {
			section = section[:j+1]
		}
		ct := reflect.TypeOf(cfg).Elem()
		for k := range ct.NumField() {
			key := ct.Field(k).Tag.Get("toml")
			if !strings.Contains(section, "\n    "+key+" = ") {
				t.Errorf("[runtime.%s] %s is not documented", name, key)
			}
		}
	}
}

func TestBuildBackendsUnknownRuntime(t *testing.T) {
	_, err := buildBackends(context.Background(), defaultServeConfig().Runtime, []string{"cli", "podman"}, 0, runtimes.Owner{}, nil)
	if _, ok := errors.AsType[*runtimes.UnknownRuntimeError](err); !ok || !strings.Contains(err.Error(), `unknown runtime "podman"; known: cli, docker, local, remote`) {
		t.Fatalf("err = %v", err)
	}
	bs, err := buildBackends(context.Background(), defaultServeConfig().Runtime, []string{"cli"}, 0, runtimes.Owner{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.close()
	if b, err := bs.reg.Get("cli"); err != nil || b.Capabilities().Limits {
		t.Fatalf("cli backend %v, %v (must not claim limits)", b, err)
	}
	if bs.reapOrphans {
		t.Error("cli alone asks for reaping")
	}
}
