package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/docker/docker/api/types/network"

	"corral/runtimes"
)

// decodeDocker decodes text (a whole configuration file) the way corral
// does: [runtime] into primitives, the factory's section decoded by
// Factories.Decode, then undecoded keys are an error naming them.
func decodeDocker(t *testing.T, text string) (Config, error) {
	t.Helper()
	fs := runtimes.NewFactories(Factory())
	rc := fs.DefaultConfig("docker")
	var file struct {
		Runtime map[string]toml.Primitive `toml:"runtime"`
	}
	md, err := toml.Decode(text, &file)
	if err != nil {
		return Config{}, err
	}
	if err := fs.Decode(md, "runtime", file.Runtime, &rc); err != nil {
		return Config{}, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		keys := make([]string, len(u))
		for i, k := range u {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("unknown key(s) %s", strings.Join(keys, ", "))
	}
	return *rc.Backends["docker"].(*Config), nil
}

// everyKey sets every [runtime.docker] key to a value other than its
// default (TestConfigDecodeEveryKey checks that it really names them all).
const everyKey = `
[runtime.docker]
  runtime_container_image = "img:1"
  agent_binary = "/opt/corral-agent"
  agent_user = "0:0"
  state_dir = "/tmp/cs"
  node_id = "node-7"
  start_concurrency = 3
  start_timeout = "45s"
  stop_timeout = "3s"
  readiness = "logs"
  ready_poll_interval = "5ms"
  pause_mode = "stop"
  network = "net-a"
  use_host_network = false
  additional_networks = ["net-b"]
  volumes = ["/srv/data:/data:ro", "cache:/cache"]
  memory_bytes = 536870912
  cpus = 1.5
  pids_limit = 256
  oom_policy = "ignore"
  reap_orphans = false
  warm_pool = 2
`

func TestConfigDecodeEveryKey(t *testing.T) {
	got, err := decodeDocker(t, everyKey)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Image: "img:1", AgentBinary: "/opt/corral-agent", AgentUser: "0:0", StateDir: "/tmp/cs", NodeID: "node-7",
		StartConcurrency: 3, StartTimeout: runtimes.Duration(45 * time.Second), StopTimeout: runtimes.Duration(3 * time.Second),
		Readiness: "logs", ReadyPollInterval: runtimes.Duration(5 * time.Millisecond), PauseMode: "stop",
		Network: "net-a", AdditionalNetworks: []string{"net-b"}, Volumes: VolumeList{"/srv/data:/data:ro", "cache:/cache"},
		MemoryBytes: 512 << 20, CPUs: 1.5, PidsLimit: 256, OOMPolicy: "ignore", ReapOrphans: false,
		WarmPool: 2,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n %+v\nwant\n %+v", got, want)
	}
	// Every toml key of Config appears in everyKey, so a new key cannot
	// go untested.
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		key := ct.Field(i).Tag.Get("toml")
		if !strings.Contains(everyKey, "\n  "+key+" = ") {
			t.Errorf("key %s is missing from everyKey", key)
		}
	}
}

func TestConfigDecode(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "no section keeps the defaults", text: "", check: func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c, DefaultConfig()) {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "OpenHands comma-separated volumes", text: "[runtime.docker]\nvolumes = \"/a:/workspace:rw, /b:/b:ro\"\n", check: func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c.Volumes, VolumeList{"/a:/workspace:rw", "/b:/b:ro"}) {
				t.Errorf("volumes %q", c.Volumes)
			}
		}},
		{name: "use_host_network with the default network", text: "[runtime.docker]\nuse_host_network = true\n", check: func(t *testing.T, c Config) {
			if n, err := c.network(); err != nil || n != "host" {
				t.Errorf("network %q, %v", n, err)
			}
		}},
		{name: "unknown key names the key and its section", text: "[runtime.docker]\nmemory = 5\n", wantErr: "unknown key(s) runtime.docker.memory"},
		{name: "the old image key is unknown", text: "[runtime.docker]\nimage = \"x\"\n", wantErr: "runtime.docker.image"},
		{name: "bad pause mode", text: "[runtime.docker]\npause_mode = \"freeze\"\n", wantErr: `[runtime.docker]: pause_mode = "freeze"`},
		{name: "bad oom policy", text: "[runtime.docker]\noom_policy = \"panic\"\n", wantErr: `oom_policy = "panic"`},
		{name: "bad readiness", text: "[runtime.docker]\nreadiness = \"ping\"\n", wantErr: `readiness = "ping"`},
		{name: "bad duration", text: "[runtime.docker]\nstart_timeout = \"soon\"\n", wantErr: `invalid duration "soon"`},
		{name: "zero duration", text: "[runtime.docker]\nstop_timeout = \"0s\"\n", wantErr: "stop_timeout"},
		{name: "host network conflict", text: "[runtime.docker]\nuse_host_network = true\nnetwork = \"none\"\n", wantErr: "conflicts"},
		{name: "negative cpus", text: "[runtime.docker]\ncpus = -1.0\n", wantErr: "cpus = -1"},
		{name: "negative pids", text: "[runtime.docker]\npids_limit = -1\n", wantErr: "pids_limit = -1"},
		{name: "tiny memory", text: "[runtime.docker]\nmemory_bytes = 1024\n", wantErr: "6 MiB"},
		{name: "negative warm pool", text: "[runtime.docker]\nwarm_pool = -1\n", wantErr: "warm_pool = -1"},
		{name: "negative concurrency", text: "[runtime.docker]\nstart_concurrency = -2\n", wantErr: "start_concurrency = -2"},
		{name: "bad volume", text: "[runtime.docker]\nvolumes = [\"/a\"]\n", wantErr: `volumes: volume "/a"`},
		{name: "volume on the agent's path", text: "[runtime.docker]\nvolumes = [\"/a:/.corral/x\"]\n", wantErr: "reserved"},
		{name: "two volumes on one path", text: "[runtime.docker]\nvolumes = [\"/a:/d\", \"/b:/d\"]\n", wantErr: "both mount /d"},
		{name: "volumes of the wrong type", text: "[runtime.docker]\nvolumes = 3\n", wantErr: "volumes"},
		{name: "empty image", text: "[runtime.docker]\nruntime_container_image = \"\"\n", wantErr: "runtime_container_image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := decodeDocker(t, tc.text)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestConfigOptions(t *testing.T) {
	d := defaultConfig()
	tests := []struct {
		name  string
		edit  func(c *Config)
		check func(t *testing.T, c config)
	}{
		{name: "defaults change nothing", edit: func(*Config) {}, check: func(t *testing.T, c config) {
			if c.network != d.network || c.pauseMode != d.pauseMode || c.concurrency != d.concurrency || c.resources != d.resources ||
				c.reap || c.startTimeout != d.startTimeout || c.stopTimeout != d.stopTimeout || c.image != d.image ||
				c.oomPolicy != d.oomPolicy || c.readiness != d.readiness || c.readyPoll != d.readyPoll || c.agentUser != d.agentUser ||
				c.nodeID != d.nodeID || c.stateDir != d.stateDir || c.warmPool != 0 || c.agentBinary != "" || len(c.volumes) != 0 || len(c.extraNetworks) != 0 {
				t.Errorf("changed: %+v", c)
			}
		}},
		{name: "host network", edit: func(c *Config) { c.UseHostNetwork, c.AdditionalNetworks = true, []string{"n1"} }, check: func(t *testing.T, c config) {
			if c.network != "host" || !slices.Equal(c.extraNetworks, []string{"n1"}) {
				t.Errorf("network %q extra %v", c.network, c.extraNetworks)
			}
		}},
		{name: "limits", edit: func(c *Config) { c.MemoryBytes, c.CPUs, c.PidsLimit = 1<<30, 0.1, 100 }, check: func(t *testing.T, c config) {
			if c.resources != (runtimes.Resources{MemoryBytes: 1 << 30, NanoCPUs: 100_000_000, PidsLimit: 100}) {
				t.Errorf("resources %+v", c.resources)
			}
		}},
		{name: "warm pool", edit: func(c *Config) { c.WarmPool = 3 }, check: func(t *testing.T, c config) {
			if c.warmPool != 3 {
				t.Errorf("warmPool %d", c.warmPool)
			}
		}},
		{name: "reap_orphans is not the backend's business", edit: func(c *Config) { c.ReapOrphans = true }, check: func(t *testing.T, c config) {
			if c.reap {
				t.Error("reap set by the config")
			}
		}},
		{name: "every other key", edit: func(c *Config) {
			*c = Config{Image: "i", AgentBinary: "/a", AgentUser: "1:1", StateDir: "/s", NodeID: "n", StartConcurrency: 4,
				StartTimeout: runtimes.Duration(time.Second), StopTimeout: runtimes.Duration(2 * time.Second), Readiness: "logs",
				ReadyPollInterval: runtimes.Duration(time.Millisecond), PauseMode: "stop", Network: "none", Volumes: VolumeList{"/x:/y"}, OOMPolicy: "ignore"}
		}, check: func(t *testing.T, c config) {
			want := []any{"i", "/a", "1:1", "/s", "n", 4, time.Second, 2 * time.Second, ReadyLogs, time.Millisecond, PauseStop, "none", []string{"/x:/y"}, OOMIgnore}
			got := []any{c.image, c.agentBinary, c.agentUser, c.stateDir, c.nodeID, c.concurrency, c.startTimeout, c.stopTimeout, c.readiness, c.readyPoll, c.pauseMode, c.network, c.volumes, c.oomPolicy}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v\nwant %v", got, want)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			opts, err := cfg.Options()
			if err != nil {
				t.Fatal(err)
			}
			got := defaultConfig()
			for _, o := range opts {
				o(&got)
			}
			tc.check(t, got)
		})
	}
	if _, err := (Config{}).Options(); err == nil || !strings.Contains(err.Error(), "docker config: ") {
		t.Errorf("a zero Config must be refused: %v", err)
	}
}

func TestSpecDefaults(t *testing.T) {
	c := defaultConfig()
	c.image, c.network = "img", "none"
	c.resources = runtimes.Resources{MemoryBytes: 1 << 30, NanoCPUs: 2e9, PidsLimit: 10}
	c.volumes = []string{"/h/ws:/workspace", "/h/data:/data:ro", "/h/cache:/cache"}
	tests := []struct {
		name string
		in   runtimes.Spec
		want runtimes.Spec
	}{
		{name: "empty spec takes every default", in: runtimes.Spec{},
			want: runtimes.Spec{Image: "img", Network: "none", Resources: c.resources, Volumes: c.volumes}},
		{name: "the spec's own values win", in: runtimes.Spec{Image: "mine", Network: "bridge", Workspace: "/w",
			Resources: runtimes.Resources{MemoryBytes: 1 << 20}, Volumes: []string{"/mine:/data"}},
			want: runtimes.Spec{Image: "mine", Network: "bridge", Workspace: "/w",
				Resources: runtimes.Resources{MemoryBytes: 1 << 20, NanoCPUs: 2e9, PidsLimit: 10},
				Volumes:   []string{"/h/cache:/cache", "/mine:/data"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.specDefaults(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestConfigReachesContainer decodes a file setting every key the
// container shows and checks the container's HostConfig.
func TestConfigReachesContainer(t *testing.T) {
	needDocker(t)
	ctx := testCtx(t, 3*time.Minute)
	probe := newBackend(t)
	netA, netB := "corraltest-cfg-a-"+randHex(3), "corraltest-cfg-b-"+randHex(3)
	for _, n := range []string{netA, netB} {
		if _, err := probe.cli.NetworkCreate(ctx, n, network.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { probe.cli.NetworkRemove(context.Background(), n) })
	}
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	node := env.node + "-cfg"
	text := fmt.Sprintf(`
[runtime.docker]
  runtime_container_image = %q
  agent_binary = %q
  state_dir = %q
  node_id = %q
  agent_user = "0:0"
  start_concurrency = 3
  start_timeout = "90s"
  stop_timeout = "1s"
  readiness = "logs"
  ready_poll_interval = "1ms"
  pause_mode = "stop"
  network = %q
  additional_networks = [%q]
  volumes = ["%s:/data:ro"]
  memory_bytes = 268435456
  cpus = 0.5
  pids_limit = 128
  oom_policy = "ignore"
  reap_orphans = false
`, env.image, env.agent, env.stateDir, node, netA, netB, data)
	cfg, err := decodeDocker(t, text)
	if err != nil {
		t.Fatal(err)
	}
	fs := runtimes.NewFactories(Factory())
	rc := fs.DefaultConfig("docker")
	rc.Backends["docker"] = &cfg
	rb, err := fs.New(ctx, "docker", rc, runtimes.Env{})
	if err != nil {
		t.Fatal(err)
	}
	b := rb.(*Backend)
	t.Cleanup(func() { b.Close() })
	if cap(b.sem) != 3 || b.cfg.oomPolicy != OOMIgnore || b.cfg.startTimeout != 90*time.Second || b.cfg.stopTimeout != time.Second ||
		b.cfg.readiness != ReadyLogs || b.cfg.readyPoll != time.Millisecond || b.cfg.reap {
		t.Errorf("backend settings: concurrency %d, %+v", cap(b.sem), b.cfg)
	}

	h := start(t, b, runtimes.Spec{})
	insp := inspect(t, b, h.ID)
	hc := insp.HostConfig
	if hc.Memory != 256<<20 || hc.MemorySwap != 256<<20 || hc.NanoCPUs != 500_000_000 || hc.PidsLimit == nil || *hc.PidsLimit != 128 {
		t.Errorf("limits: memory %d swap %d nanocpus %d pids %v", hc.Memory, hc.MemorySwap, hc.NanoCPUs, hc.PidsLimit)
	}
	if string(hc.NetworkMode) != netA {
		t.Errorf("network mode %q, want %q", hc.NetworkMode, netA)
	}
	if _, ok := insp.NetworkSettings.Networks[netB]; !ok {
		t.Errorf("not connected to %s: %v", netB, insp.NetworkSettings.Networks)
	}
	if !slices.Contains(hc.Binds, data+":/data:ro") {
		t.Errorf("binds %q lack the configured volume %s:/data:ro (Start must apply config.specDefaults)", hc.Binds, data)
	}
	if insp.Config.Image != env.image || insp.Config.User != "0:0" || insp.Config.Labels[LabelNode] != node ||
		!strings.HasPrefix(insp.Config.Labels[LabelRunDir], env.stateDir) {
		t.Errorf("image %q user %q labels %v", insp.Config.Image, insp.Config.User, insp.Config.Labels)
	}
	// pause_mode = "stop": Pause stops the container instead of freezing it.
	if err := b.Pause(ctx, h); err != nil {
		t.Fatal(err)
	}
	if st := inspect(t, b, h.ID).State; st.Running || st.Paused {
		t.Errorf("after Pause in stop mode: running %v paused %v", st.Running, st.Paused)
	}
}
