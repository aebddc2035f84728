// Package metrics is Corral's Prometheus instrumentation: one Registry per
// process (never the global prometheus.DefaultRegisterer), with typed methods
// the engine, the event bus and the API server call at the points they
// measure, an HTTP handler for /metrics, and a small windowed Summary
// (actions per second, recent latency percentiles) for the web UI.
//
// Every method is safe for concurrent use and a nil *Registry is a valid
// no-op, so instrumented code never needs "if metrics != nil".
//
// This package must never import another Corral package (it is a leaf
// everyone may use), keep package-level mutable state, or block its callers:
// each method is a few atomic operations or a short critical section.
package metrics
