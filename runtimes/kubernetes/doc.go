// Package kubernetes is the Kubernetes backend of runtimes.Backend, on
// k8s.io/client-go: each sandbox is one Pod in a configured namespace,
// from any image. Nothing is built into the sandbox image: an init
// container from the small agent image (FROM scratch, holding only the
// static corral-agent) copies the agent into an emptyDir mounted at
// /.corral, and the sandbox container runs it from there, as the Docker
// backend's bind mount does. Each pod gets a fresh agentwire token.
//
// The agent is reached through the API server's port-forward by default
// (works from outside the cluster; the agent then listens on the pod's
// loopback only), or at the pod IP (connect = "pod-ip"). agentwire's resume
// carries a running action across a dropped port-forward.
//
// Pods carry the labels corral.managed, corral.session, corral.node and
// corral.owner, and the owner's lease (runtimes.Owner) in annotations:
// Recover finds a pod again by label after a restart of Corral, and List
// lets the engine's runtimes.Reap remove the pods of dead owners. One
// watch per Backend follows its pods, so an OOM kill, an eviction, an image
// that cannot be pulled or a pod that cannot be scheduled fails the
// runtime at once, with the kubelet's or scheduler's reason.
//
// This package must never: reap on its own (the engine calls
// runtimes.Reap), poll where a watch serves, touch pods without
// corral.managed=true, shell out to kubectl, build or push images, or
// import packages above runtimes (actors, transport/api, cmd).
package kubernetes
