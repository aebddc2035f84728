package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func clusterCfg(mod func(*clusterConfig)) clusterConfig {
	c := defaultClusterConfig()
	c.Listen = "127.0.0.1:7100"
	c.Join = []string{"127.0.0.1:7100", "127.0.0.1:7200"}
	c.Data = "/tmp/x"
	if mod != nil {
		mod(&c)
	}
	return c
}

func TestClusterConfigValidateRefusesBadInputNamingIt(t *testing.T) {
	tests := []struct {
		name    string
		cfg     clusterConfig
		api     string
		wantErr string // "" = valid
	}{
		{"no join is a single node", defaultClusterConfig(), "127.0.0.1:7070", ""},
		{"a valid member", clusterCfg(nil), "127.0.0.1:7070", ""},
		{"cluster-listen without join", clusterCfg(func(c *clusterConfig) { c.Join = nil }), "127.0.0.1:7070", "need --join"},
		{"join without cluster-listen", clusterCfg(func(c *clusterConfig) { c.Listen = "" }), "127.0.0.1:7070", "--join needs --cluster-listen"},
		{"listen that is not HOST:P", clusterCfg(func(c *clusterConfig) { c.Listen = "7100" }), "", `--cluster-listen "7100" is not HOST:PORT`},
		{"listen port out of range", clusterCfg(func(c *clusterConfig) { c.Listen = "127.0.0.1:70000" }), "", "not a number from 1 to 65535"},
		{"derived ports beyond 65535", clusterCfg(func(c *clusterConfig) { c.Listen = "127.0.0.1:65534" }), "", "nats_port: port 65536 is outside 1-65535"},
		{"wildcard listen host", clusterCfg(func(c *clusterConfig) { c.Listen = "0.0.0.0:7100" }), "", "not a wildcard"},
		{"bad join entry", clusterCfg(func(c *clusterConfig) { c.Join = []string{"host-without-port"} }), "", `--join entry "host-without-port" is not HOST:PORT`},
		{"no data dir", clusterCfg(func(c *clusterConfig) { c.Data = "" }), "", "--join needs --data DIR"},
		{"API port inside the cluster ports", clusterCfg(nil), "127.0.0.1:7102", "port 7102 is both nats_port and the API's --listen"},
		{"override colliding with a derived port", clusterCfg(func(c *clusterConfig) { c.NATSPort = 7101 }), "", "port 7101 is both health_port and nats_port"},
		{"node id with a space", clusterCfg(func(c *clusterConfig) { c.NodeID = "node one" }), "", `--node-id "node one"`},
		{"empty cluster name", clusterCfg(func(c *clusterConfig) { c.Name = "" }), "", `[cluster] name ""`},
		{"unknown provider", clusterCfg(func(c *clusterConfig) { c.Provider = "consul" }), "", `provider "consul"`},
		{"etcd without endpoints", clusterCfg(func(c *clusterConfig) { c.Provider = "etcd" }), "", "needs etcd ="},
		{"too many replicas", clusterCfg(func(c *clusterConfig) { c.Replicas = 7 }), "", "replicas = 7"},
		{"zero failure timeout", clusterCfg(func(c *clusterConfig) { c.FailureTimeout = 0 }), "", "failure_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.validate(tc.api)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestClusterPortsDeriveFromListenAndOverrides(t *testing.T) {
	np, err := clusterCfg(func(c *clusterConfig) { c.NATSRoutePort = 9000 }).ports()
	if err != nil {
		t.Fatal(err)
	}
	want := nodePorts{Host: "127.0.0.1", Remote: 7100, Health: 7101, NATS: 7102, NATSRoute: 9000}
	if np != want {
		t.Fatalf("ports = %+v, want %+v", np, want)
	}
}

func TestClusterMembersRoutesAndReplicas(t *testing.T) {
	c := clusterCfg(func(c *clusterConfig) {
		c.Join = []string{"localhost:7100", "127.0.0.1:7200", "127.0.0.1:7300", "127.0.0.1:7200", "127.0.0.1:7400"}
	})
	if got, want := c.otherMembers(3), []string{"127.0.0.1:7203", "127.0.0.1:7303", "127.0.0.1:7403"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("routes = %v, want %v (self and duplicates left out)", got, want)
	}
	if c.replicas() != 3 {
		t.Fatalf("replicas = %d, want min(3, 4 members)", c.replicas())
	}
	two := clusterCfg(nil)
	if two.replicas() != 2 {
		t.Fatalf("replicas of 2 members = %d", two.replicas())
	}
	two.Replicas = 1
	if two.replicas() != 1 {
		t.Fatal("[cluster] replicas is not used")
	}
	if got := shiftPorts(two.members(), 1); !reflect.DeepEqual(got, []string{"127.0.0.1:7101", "127.0.0.1:7201"}) {
		t.Fatalf("health addresses = %v", got)
	}
}

func TestNodeIDFileIsWrittenOnceAndGuardsTheDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	c := clusterCfg(func(c *clusterConfig) { c.Data = dir })
	id, err := c.prepareDataDir(7100)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(id, "-7100") || !idPattern.MatchString(id) {
		t.Fatalf("default id = %q, want <hostname>-7100", id)
	}
	for _, sub := range []string{"events", "jetstream", nodeIDFile} {
		if _, err := os.Stat(filepath.Join(dir, sub)); err != nil {
			t.Fatalf("data dir lacks %s: %v", sub, err)
		}
	}
	again, err := c.prepareDataDir(7999)
	if err != nil || again != id {
		t.Fatalf("second start: id %q, %v; want the file's %q", again, err, id)
	}
	c.NodeID = "other"
	if _, err := c.prepareDataDir(7100); err == nil || !strings.Contains(err.Error(), "belongs to node") {
		t.Fatalf("another --node-id on the same data: %v", err)
	}
	fresh := clusterCfg(func(c *clusterConfig) { c.Data = filepath.Join(t.TempDir(), "n2"); c.NodeID = "n2" })
	if id, err := fresh.prepareDataDir(7100); err != nil || id != "n2" {
		t.Fatalf("--node-id on a fresh dir: %q, %v", id, err)
	}
}

func TestUnusableDataDirIsRefused(t *testing.T) {
	// A path under a regular file cannot be created, not even by root (CI
	// runs as root, where a read-only directory would not stop it).
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := clusterCfg(func(c *clusterConfig) { c.Data = filepath.Join(file, "node") })
	if _, err := c.prepareDataDir(7100); err == nil || !strings.Contains(err.Error(), "--data") {
		t.Fatalf("err = %v, want one naming --data", err)
	}
}

func TestClusterSectionDecodesAndUnknownKeysAreNamed(t *testing.T) {
	cfg := defaultServeConfig()
	err := decodeConfig("c.toml", "[cluster]\nlisten = \"127.0.0.1:7100\"\njoin = [\"127.0.0.1:7100\"]\nfailure_timeout = \"2s\"\n", &cfg)
	if err != nil || cfg.Cluster.Listen != "127.0.0.1:7100" || cfg.Cluster.FailureTimeout.D().Seconds() != 2 || !cfg.Cluster.enabled() {
		t.Fatalf("decode: %v %+v", err, cfg.Cluster)
	}
	cfg = defaultServeConfig()
	err = decodeConfig("c.toml", "[cluster]\nfailur_timeout = \"2s\"\n", &cfg)
	if err == nil || !strings.Contains(err.Error(), "cluster.failur_timeout") {
		t.Fatalf("unknown key: %v", err)
	}
	env := map[string]string{"CORRAL_CLUSTER_JOIN": "a:1, b:2", "CORRAL_CLUSTER_NODE_ID": "n1", "CORRAL_CLUSTER_DATA": "/d", "CORRAL_CLUSTER_LISTEN": "a:1", "CORRAL_CLUSTER_NAME": "x"}
	cfg = defaultServeConfig()
	applyServeEnv(&cfg, func(k string) string { return env[k] })
	if c := cfg.Cluster; !reflect.DeepEqual(c.Join, []string{"a:1", "b:2"}) || c.NodeID != "n1" || c.Data != "/d" || c.Listen != "a:1" || c.Name != "x" {
		t.Fatalf("env overrides: %+v", c)
	}
}

func TestServeRefusesBadClusterFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"join without cluster-listen", []string{"--join", "127.0.0.1:7100"}, "--join needs --cluster-listen"},
		{"bad join address", []string{"--cluster-listen", "127.0.0.1:7100", "--join", "nohost", "--data", "/tmp/x"}, `--join entry "nohost"`},
		{"port+3 beyond 65535", []string{"--cluster-listen", "127.0.0.1:65533", "--join", "127.0.0.1:65533", "--data", "/tmp/x"}, "nats_route_port: port 65536"},
		{"data missing", []string{"--cluster-listen", "127.0.0.1:7100", "--join", "127.0.0.1:7100"}, "--join needs --data"},
		{"API port among the cluster ports", []string{"--listen", "127.0.0.1:7101", "--cluster-listen", "127.0.0.1:7100", "--join", "127.0.0.1:7100", "--data", "/tmp/x"}, "port 7101 is both health_port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"serve"}, tc.args...), strings.NewReader(""), &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errb.String(), tc.wantErr)
			}
		})
	}
}
