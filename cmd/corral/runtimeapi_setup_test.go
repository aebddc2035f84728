package main

import (
	"strings"
	"testing"

	"corral/runtimes"
	"corral/runtimes/kubernetes"
)

// TestImageRuntimeChoosesTheBackendOfStart: /start's images go to
// [runtime_api] image_runtime, else docker, else kubernetes; a choice that
// cannot work is an error naming the key.
func TestImageRuntimeChoosesTheBackendOfStart(t *testing.T) {
	tests := []struct {
		name    string
		set     string
		enabled []string
		want    string
		wantErr string
	}{
		{"docker when enabled", "", []string{"local", "docker", "kubernetes"}, "docker", ""},
		{"kubernetes when docker is not enabled", "", []string{"local", "kubernetes"}, "kubernetes", ""},
		{"docker when neither is (its /start then says so)", "", []string{"local"}, "docker", ""},
		{"explicit kubernetes beside docker", "kubernetes", []string{"docker", "kubernetes"}, "kubernetes", ""},
		{"explicit choice not enabled", "kubernetes", []string{"docker"}, "", `image_runtime = "kubernetes" is not in [runtime] enabled`},
		{"a runtime that runs no images", "local", []string{"local"}, "", `image_runtime = "local": want docker or kubernetes`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := imageRuntime(runtimeAPIConfig{ImageRuntime: tc.set}, tc.enabled)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("imageRuntime = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestKubeDefaultResourcesAreTheConfiguredQuantities: cpu and memory become
// the limits resource_factor scales.
func TestKubeDefaultResourcesAreTheConfiguredQuantities(t *testing.T) {
	tests := []struct {
		name     string
		cpu, mem string
		want     runtimes.Resources
	}{
		{"none: unlimited", "", "", runtimes.Resources{}},
		{"millicores and binary units", "500m", "512Mi", runtimes.Resources{NanoCPUs: 5e8, MemoryBytes: 512 << 20}},
		{"whole CPUs and decimal units", "2", "1G", runtimes.Resources{NanoCPUs: 2e9, MemoryBytes: 1e9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kc := kubernetes.DefaultConfig()
			kc.CPU, kc.Memory = tc.cpu, tc.mem
			got, err := kubeDefaultResources(kc)
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestNormalImageMatchesTheKubeletsNames: the names a session gives and the
// fully qualified ones a node reports compare equal.
func TestNormalImageMatchesTheKubeletsNames(t *testing.T) {
	for given, reported := range map[string]string{
		"corral-sandbox:minimal":    "docker.io/library/corral-sandbox:minimal",
		"busybox":                   "docker.io/library/busybox:latest",
		"registry.local:5000/a/b:1": "registry.local:5000/a/b:1",
	} {
		a, err1 := normalImage(given)
		b, err2 := normalImage(reported)
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("normalImage(%q) = %q, %v; normalImage(%q) = %q, %v; want equal", given, a, err1, reported, b, err2)
		}
	}
	if _, err := normalImage("not an image!"); err == nil {
		t.Error("an invalid reference is accepted")
	}
}
