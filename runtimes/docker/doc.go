// Package docker is the Docker Engine backend of runtimes.Backend: each
// sandbox is one container, from any local image, whose entrypoint is the
// static corral-agent binary bind-mounted read-only at /.corral/corral-agent
// behind Docker's --init (HostConfig.Init) as zombie reaper. The agent
// listens on a unix socket in a short per-sandbox host directory
// (<state dir>/<12 hex>/agent.sock, mounted at /.corral/run), so no host port
// is ever published; Handle.AgentAddr is unix://<that path> and the token
// travels in env CORRAL_AGENT_TOKEN.
//
// It also builds the sandbox images locally (nothing can be pulled):
// BuildMinimalImage (FROM scratch, static bash + busybox, via ImageBuild) and
// BuildFullImage (debootstrap minbase + bash, coreutils, git, python3, via
// ImageImport); `corral image build [--minimal]` drives them.
//
// One goroutine per Backend follows the Engine's event stream so a
// container that dies or is OOM-killed fires its Wait channel at once.
// Containers carry the labels corral.managed, corral.session, corral.node,
// corral.user (the OS user), corral.rundir and their owning engine's
// corral.owner, corral.instance, corral.host, corral.owner_lock and
// corral.owner_durable (runtimes.Owner): Recover finds a sandbox again after
// a restart of Corral, Connect reaches its agent over the bind-mounted
// socket, and List lets the engine's runtimes.Reap remove the containers of
// dead owners.
//
// WithWarmPool keeps started, idle containers per image (pool.go), handed
// out to sessions whose spec they honour (nothing set but the image, same
// owner); labels cannot change after create, so a pool container carries
// corral.pool=true and an empty corral.session label, and the session that
// claims it is recorded in its socket directory.
//
// This package must never: reap on its own (the engine calls
// runtimes.Reap), publish host ports, pull images, touch containers without
// corral.managed=true, shell out to the docker CLI, or import packages above
// runtimes (actors, transport/api, cmd).
package docker
