package kubernetes

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"corral/runtimes"
)

// TestConfigValidateNamesTheBadKey: the defaults are valid, and every bad
// value is refused with an error naming its key (and what would work).
func TestConfigValidateNamesTheBadKey(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // substrings of the error; nil: valid
	}{
		{"defaults are valid", func(c *Config) {}, nil},
		{"every option set well is valid", func(c *Config) {
			u := int64(1000)
			c.Connect, c.ImagePullPolicy, c.CPU, c.Memory, c.WorkspaceSize = ConnectPodIP, "Never", "1500m", "2Gi", "10Gi"
			c.Tolerations = []Toleration{{Key: "k", Operator: "Exists", Effect: "NoExecute"}, {Key: "k2", Value: "v"}}
			c.RunAsUser, c.Labels = &u, map[string]string{"team": "eval"}
		}, nil},
		{"in-cluster alone is valid", func(c *Config) { c.InCluster = true }, nil},
		{"empty namespace", func(c *Config) { c.Namespace = "" }, []string{`namespace = ""`}},
		{"empty image", func(c *Config) { c.Image = "" }, []string{`image = ""`, DefaultImage}},
		{"empty agent image", func(c *Config) { c.AgentImage = "" }, []string{`agent_image = ""`, DefaultAgentImage}},
		{"unknown pull policy", func(c *Config) { c.ImagePullPolicy = "Sometimes" }, []string{`image_pull_policy = "Sometimes"`, "IfNotPresent"}},
		{"pull policy in the wrong case", func(c *Config) { c.ImagePullPolicy = "never" }, []string{`image_pull_policy = "never"`}},
		{"unknown connect mode", func(c *Config) { c.Connect = "ssh" }, []string{`connect = "ssh"`, ConnectPortForward, ConnectPodIP}},
		{"zero agent port", func(c *Config) { c.AgentPort = 0 }, []string{"agent_port = 0", "1..65535"}},
		{"agent port too large", func(c *Config) { c.AgentPort = 70000 }, []string{"agent_port = 70000"}},
		{"cpu not a quantity", func(c *Config) { c.CPU = "two" }, []string{`cpu = "two"`, "quantity"}},
		{"memory not a quantity", func(c *Config) { c.Memory = "1 GB" }, []string{`memory = "1 GB"`}},
		{"workspace size not a quantity", func(c *Config) { c.WorkspaceSize = "big" }, []string{`workspace_size = "big"`}},
		{"toleration operator", func(c *Config) { c.Tolerations = []Toleration{{Key: "k", Operator: "In"}} }, []string{"tolerations[0]", `operator = "In"`}},
		{"toleration effect", func(c *Config) {
			c.Tolerations = []Toleration{{Key: "ok"}, {Key: "k", Effect: "NoRun"}}
		}, []string{"tolerations[1]", `effect = "NoRun"`}},
		{"zero start timeout", func(c *Config) { c.StartTimeout = 0 }, []string{"start_timeout", "positive duration"}},
		{"negative delete grace period", func(c *Config) { c.DeleteGracePeriod = runtimes.Duration(-time.Second) }, []string{"delete_grace_period"}},
		{"in-cluster with a kubeconfig", func(c *Config) { c.InCluster, c.Kubeconfig = true, "/k" }, []string{"in_cluster", "kubeconfig"}},
		{"in-cluster with a context", func(c *Config) { c.InCluster, c.Context = true, "lab" }, []string{"in_cluster", "context"}},
		{"reserved label prefix", func(c *Config) { c.Labels = map[string]string{"corral.session": "x"} }, []string{"labels", `"corral.session"`, "reserved"}},
		{"several bad keys are all named", func(c *Config) { c.Namespace, c.AgentPort, c.Connect = "", -1, "tcp" }, []string{`namespace = ""`, "agent_port = -1", `connect = "tcp"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.change(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestFactoryRefusesBadConfigBeforeConnecting: the factory and New check
// the configuration first (the error names the section and key) and a
// kubeconfig that does not exist says how to get one; neither needs a
// cluster.
func TestFactoryRefusesBadConfigBeforeConnecting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := DefaultConfig()
	bad.Connect = "telnet"
	if _, err := Factory().New(ctx, &bad, runtimes.Env{}); err == nil || !strings.Contains(err.Error(), `[runtime.kubernetes]: connect = "telnet"`) {
		t.Errorf("factory with connect = telnet: err = %v", err)
	}
	missing := DefaultConfig()
	missing.Kubeconfig = filepath.Join(t.TempDir(), "no-such-kubeconfig")
	_, err := New(ctx, missing)
	if err == nil || !strings.Contains(err.Error(), missing.Kubeconfig) || !strings.Contains(err.Error(), "make k8s-up") {
		t.Errorf("New with a missing kubeconfig: err = %v; want it to name the file and say how to get a cluster", err)
	}
}
