package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"corral/runtimes/docker"
)

// TestBenchStartMeasuresTheDockerWarmPoolInTheSameRun runs the built
// `corral bench start` on Docker (the agent next to it, as installed) and
// checks it reports the warm-pool start next to the cold start, each with
// the same run's `docker run` baseline.
func TestBenchStartMeasuresTheDockerWarmPoolInTheSameRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Docker containers; skipped in -short mode")
	}
	needDocker(t)
	corral, _ := buildCorral(t, t.TempDir())
	cmd := exec.Command(corral, "bench", "start", "--json", "--backends", "docker", "--image", docker.MinimalImage, "-n", "10")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("corral bench start: %v\n%s", err, errb.String())
	}
	want := map[string]string{
		"docker sandbox start p50":   "docker run --rm IMAGE true (API) p50",
		"docker warm-pool start p50": "docker run --rm IMAGE true (API) p50",
		"docker warm-pool start p99": "docker run --rm IMAGE true (API) p99",
	}
	base := map[string]float64{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var f figure
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if b, ok := want[f.Name]; ok {
			if f.Value <= 0 || f.Baseline != b || f.BaselineValue <= 0 || f.Ratio != f.Value/f.BaselineValue {
				t.Errorf("figure %+v: want a value and the baseline %q", f, b)
			}
			base[f.Name] = f.BaselineValue
			delete(want, f.Name)
		}
	}
	for name := range want {
		t.Errorf("figure %q missing from:\n%s", name, out.String())
	}
	if p50 := "docker warm-pool start p50"; base[p50] != base["docker sandbox start p50"] {
		t.Errorf("the warm-pool and cold rows have different docker run baselines (%v, %v): not the same run's", base[p50], base["docker sandbox start p50"])
	}
	if strings.Contains(errb.String(), "panic") {
		t.Errorf("stderr:\n%s", errb.String())
	}
}
