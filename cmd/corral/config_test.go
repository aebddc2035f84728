package main

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"corral/runtimes"
	"corral/runtimes/docker"
	"corral/runtimes/kubernetes"
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
		{name: "reap_orphans defaults on for docker and kubernetes only", text: "", check: func(t *testing.T, c serveConfig) {
			if got := c.Runtime.ReapOrphans([]string{"local", "docker", "cli", "kubernetes", "remote"}); !reflect.DeepEqual(got, []string{"docker", "kubernetes"}) {
				t.Errorf("ReapOrphans = %v", got)
			}
		}},
		{name: "kubernetes keys reach kubernetes' Config", text: `
[runtime]
enabled = ["kubernetes"]
[runtime.kubernetes]
kubeconfig = "/etc/k.conf"
context = "lab"
namespace = "sandboxes"
image = "img:3"
agent_image = "agent:3"
image_pull_policy = "Never"
connect = "pod-ip"
agent_port = 8000
node_id = "n1"
cpu = "500m"
memory = "1Gi"
node_selector = { pool = "sandbox" }
tolerations = [{ key = "sandbox", operator = "Exists", effect = "NoSchedule" }]
runtime_class = "gvisor"
service_account = "runner"
run_as_user = 1000
run_as_group = 1001
fs_group = 1002
workspace_size = "10Gi"
workspace_storage_class = "fast"
labels = { team = "eval" }
start_timeout = "30s"
delete_grace_period = "1s"
reap_orphans = false
`, check: func(t *testing.T, c serveConfig) {
			k := c.Runtime.Backends["kubernetes"].(*kubernetes.Config)
			want := kubernetes.DefaultConfig()
			u, g, f := int64(1000), int64(1001), int64(1002)
			want.Kubeconfig, want.Context, want.Namespace, want.Image, want.AgentImage = "/etc/k.conf", "lab", "sandboxes", "img:3", "agent:3"
			want.ImagePullPolicy, want.Connect, want.AgentPort, want.NodeID, want.CPU, want.Memory = "Never", "pod-ip", 8000, "n1", "500m", "1Gi"
			want.NodeSelector = map[string]string{"pool": "sandbox"}
			want.Tolerations = []kubernetes.Toleration{{Key: "sandbox", Operator: "Exists", Effect: "NoSchedule"}}
			want.RuntimeClass, want.ServiceAccount, want.RunAsUser, want.RunAsGroup, want.FSGroup = "gvisor", "runner", &u, &g, &f
			want.WorkspaceSize, want.WorkspaceStorageClass, want.Labels = "10Gi", "fast", map[string]string{"team": "eval"}
			want.StartTimeout, want.DeleteGracePeriod, want.ReapOrphans = runtimes.Duration(30*time.Second), runtimes.Duration(time.Second), false
			if !reflect.DeepEqual(*k, want) {
				t.Errorf("kubernetes config\n %+v\nwant\n %+v", *k, want)
			}
			if !reapRefused(c.Runtime, c.Runtime.Enabled) {
				t.Error("reap_orphans = false in [runtime.kubernetes] does not turn reaping off")
			}
		}},
		{name: "invalid kubernetes value names the section and key", text: "[runtime.kubernetes]\nconnect = \"ssh\"\n",
			wantErr: `[runtime.kubernetes]: connect = "ssh"`},
		{name: "unknown kubernetes key names the key and its section", text: "[runtime.kubernetes]\nnamepsace = \"x\"\n",
			wantErr: "unknown key(s) runtime.kubernetes.namepsace"},
		{name: "unknown docker key names the key and its section", text: "[runtime.docker]\nmemory = \"2g\"\n",
			wantErr: "unknown key(s) runtime.docker.memory"},
		{name: "unknown nested remote key", text: "[[runtime.remote.hosts]]\nmode = \"agent\"\nadress = \"x\"\n",
			wantErr: "unknown key(s) runtime.remote.hosts.adress"},
		{name: "unknown runtime in enabled lists the known ones", text: "[runtime]\nenabled = [\"dokcer\"]\n",
			wantErr: `[runtime] enabled: unknown runtime "dokcer"; known: cli, docker, kubernetes, local, remote`},
		{name: "unknown runtime section lists the known ones", text: "[runtime.k8s]\nnamespace = \"x\"\n",
			wantErr: `[runtime.k8s]: unknown runtime "k8s"; known: cli, docker, kubernetes, local, remote`},
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
			// An optional number (a pointer) has no TOML literal for its
			// default, unset: it is shown commented out.
			if ct.Field(k).Type.Kind() == reflect.Pointer && strings.Contains(section, "\n    # "+key+" = ") {
				continue
			}
			if !strings.Contains(section, "\n    "+key+" = ") {
				t.Errorf("[runtime.%s] %s is not documented", name, key)
			}
		}
	}
}

func TestBuildBackendsUnknownRuntime(t *testing.T) {
	_, err := buildBackends(context.Background(), defaultServeConfig().Runtime, []string{"cli", "podman"}, 0, runtimes.Owner{}, nil)
	if _, ok := errors.AsType[*runtimes.UnknownRuntimeError](err); !ok || !strings.Contains(err.Error(), `unknown runtime "podman"; known: cli, docker, kubernetes, local, remote`) {
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
