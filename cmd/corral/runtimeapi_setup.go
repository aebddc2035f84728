package main

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/resource"

	"corral/runtimes"
	"corral/runtimes/docker"
	"corral/runtimes/kubernetes"
	"corral/transport/runtimeapi"
)

// imageRuntimes are the backends that run a /start request's image.
var imageRuntimes = []string{"docker", "kubernetes"}

// imageRuntime is the backend the Runtime API's /start runs images on
// (every image but "local"): [runtime_api] image_runtime, else docker when
// it is enabled, else kubernetes when it is. An explicit choice that is
// not enabled, or that runs no images, is a configuration error.
func imageRuntime(api runtimeAPIConfig, enabled []string) (string, error) {
	if rt := api.ImageRuntime; rt != "" {
		if !slices.Contains(imageRuntimes, rt) {
			return "", fmt.Errorf("[runtime_api] image_runtime = %q: want docker or kubernetes (the backends that run images; \"local\" images go to the local runtime)", rt)
		}
		if !slices.Contains(enabled, rt) {
			return "", fmt.Errorf("[runtime_api] image_runtime = %q is not in [runtime] enabled = %q: enable it (or --runtimes %s)", rt, enabled, rt)
		}
		return rt, nil
	}
	for _, rt := range imageRuntimes {
		if slices.Contains(enabled, rt) {
			return rt, nil
		}
	}
	return "docker", nil // /start of an image then says docker is not enabled
}

// newProvisioner builds the Runtime API's provisioner on the server's
// engine and backends: which runtime runs images, their default resources
// (which resource_factor scales) and how /image_exists is answered.
func newProvisioner(cfg serveConfig, st *serveStack) (*runtimeapi.EngineProvisioner, error) {
	rt, err := imageRuntime(cfg.RuntimeAPI, cfg.Runtime.Enabled)
	if err != nil {
		return nil, err
	}
	prov := &runtimeapi.EngineProvisioner{Engine: st.eng, Runtimes: st.backends.reg, ImageRuntime: rt, DefaultResources: map[string]runtimes.Resources{}}
	if dc, ok := cfg.Runtime.Backends["docker"].(*docker.Config); ok {
		prov.DefaultResources["docker"] = runtimes.Resources{MemoryBytes: dc.MemoryBytes, NanoCPUs: int64(dc.CPUs * 1e9), PidsLimit: dc.PidsLimit}
	}
	if kc, ok := cfg.Runtime.Backends["kubernetes"].(*kubernetes.Config); ok {
		res, err := kubeDefaultResources(*kc)
		if err != nil {
			return nil, err
		}
		prov.DefaultResources["kubernetes"] = res
	}
	switch {
	case rt == "docker" && st.backends.docker != nil:
		prov.ImageExistsFunc = st.backends.docker.ImageExists
	case rt == "kubernetes" && st.backends.kube != nil:
		prov.ImageExistsFunc = kubeImageExists(st.backends.kube.Client(), cfg.Runtime.Backends["kubernetes"].(*kubernetes.Config).ImagePullPolicy)
	}
	return prov, nil
}

// kubeDefaultResources are [runtime.kubernetes] cpu and memory as the
// limits resource_factor scales ("": unlimited).
func kubeDefaultResources(kc kubernetes.Config) (runtimes.Resources, error) {
	var res runtimes.Resources
	if kc.CPU != "" {
		q, err := resource.ParseQuantity(kc.CPU)
		if err != nil {
			return res, fmt.Errorf("[runtime.kubernetes] cpu = %q: %w", kc.CPU, err)
		}
		res.NanoCPUs = q.MilliValue() * 1e6
	}
	if kc.Memory != "" {
		q, err := resource.ParseQuantity(kc.Memory)
		if err != nil {
			return res, fmt.Errorf("[runtime.kubernetes] memory = %q: %w", kc.Memory, err)
		}
		res.MemoryBytes = q.Value()
	}
	return res, nil
}
