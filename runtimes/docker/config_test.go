package docker

import (
	"strings"
	"testing"
	"time"

	"corral/runtimes"
)

func TestConfigOptions(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		check   func(t *testing.T, c config)
		wantErr string
	}{
		{name: "empty keeps defaults", check: func(t *testing.T, c config) {
			d := defaultConfig()
			if c.network != d.network || c.pauseMode != d.pauseMode || c.concurrency != d.concurrency || c.resources != d.resources || c.reap || c.startTimeout != d.startTimeout {
				t.Errorf("changed: %+v", c)
			}
		}},
		{name: "host network", cfg: Config{UseHostNetwork: true, AdditionalNetworks: []string{"n1"}}, check: func(t *testing.T, c config) {
			if c.network != "host" || len(c.extraNetworks) != 1 {
				t.Errorf("network %q extra %v", c.network, c.extraNetworks)
			}
		}},
		{name: "limits", cfg: Config{MemoryBytes: 1 << 30, CPUs: 1.5, PidsLimit: 100, StartTimeout: "30s", PauseMode: "stop"}, check: func(t *testing.T, c config) {
			if c.resources != (runtimes.Resources{MemoryBytes: 1 << 30, NanoCPUs: 1_500_000_000, PidsLimit: 100}) || c.startTimeout != 30*time.Second || c.pauseMode != PauseStop {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "host network conflict", cfg: Config{UseHostNetwork: true, Network: "none"}, wantErr: "conflicts"},
		{name: "bad pause mode", cfg: Config{PauseMode: "freeze"}, wantErr: `pause_mode = "freeze"`},
		{name: "bad oom policy", cfg: Config{OOMPolicy: "panic"}, wantErr: `oom_policy = "panic"`},
		{name: "bad timeout", cfg: Config{StartTimeout: "soon"}, wantErr: `start_timeout = "soon"`},
		{name: "negative", cfg: Config{CPUs: -1}, wantErr: "must not be negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts, err := c.cfg.Options()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := defaultConfig()
			for _, o := range opts {
				o(&got)
			}
			c.check(t, got)
		})
	}
}
