// Package runtimes defines the Backend contract every sandbox provider
// implements (local processes, Docker, remote hosts) and the Registry that
// maps a runtime name from configuration to a Backend.
//
// It must never import a concrete backend, the actor engine or any
// transport: backends depend on it, not the other way round. It holds no
// package-level mutable state; a Registry is a value its caller builds.
package runtimes
