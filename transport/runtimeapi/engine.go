package runtimeapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"

	"corral/actors"
	"corral/runtimes"
)

// EngineProvisioner serves the Runtime API from Corral's engine: an
// OpenHands session id is a Corral session id, and the runtime id is the
// same string (OpenHands treats it as opaque).
type EngineProvisioner struct {
	Engine *actors.Engine
	// ImageRuntime names the runtime that runs images other than "local"
	// (default "docker"; "kubernetes" runs each as a pod); LocalRuntime the
	// one for "local" (default "local").
	ImageRuntime, LocalRuntime string
	// ImageExists answers /image_exists for the images of ImageRuntime;
	// nil means only "local" exists.
	ImageExistsFunc func(ctx context.Context, image string) (bool, error)
	// Runtimes is the engine's registry of backends: a /start
	// resource_factor other than 1 needs to know whether the session's
	// runtime enforces limits (Capabilities.Limits). nil: such a factor is
	// refused.
	Runtimes *runtimes.Registry
	// DefaultResources are, per runtime name, the limits its sessions get
	// when they set none (docker: [runtime.docker] memory_bytes, cpus);
	// resource_factor scales their memory and CPUs. A runtime with limits
	// but without defaults here stays unlimited whatever the factor.
	DefaultResources map[string]runtimes.Resources
}

var _ Provisioner = (*EngineProvisioner)(nil)

func (p *EngineProvisioner) runtimeFor(image string) string {
	if image == "local" {
		if p.LocalRuntime != "" {
			return p.LocalRuntime
		}
		return "local"
	}
	if p.ImageRuntime != "" {
		return p.ImageRuntime
	}
	return "docker"
}

func sandboxOf(info actors.SessionInfo) Sandbox {
	sb := Sandbox{RuntimeID: info.ID, SessionID: info.ID, RestartCount: info.Restarts}
	if info.Handle != nil {
		sb.SessionAPIKey = info.Handle.Token
	}
	switch info.State {
	case actors.StateRunning:
		sb.Status, sb.PodStatus = "running", "ready"
	case actors.StateQueued, actors.StateStarting:
		sb.Status, sb.PodStatus = "running", "pending"
	case actors.StatePaused:
		sb.Status, sb.PodStatus = "paused", "paused"
	case actors.StateError:
		sb.Status, sb.PodStatus = "stopped", "failed"
		if info.Error != "" {
			sb.RestartReasons = []string{info.Error}
		}
	default:
		sb.Status, sb.PodStatus = "stopped", "not found"
	}
	return sb
}

// StartSandbox implements Provisioner: a running session with that id is
// reused (OpenHands attaches to it), a paused one resumed, otherwise a new
// session is created and waited for until READY.
func (p *EngineProvisioner) StartSandbox(ctx context.Context, req StartRequest) (Sandbox, error) {
	res, err := p.resources(p.runtimeFor(req.Image), req.ResourceFactor)
	if err != nil {
		return Sandbox{}, err
	}
	if info, err := p.Engine.Get(ctx, req.SessionID); err == nil {
		switch info.State {
		case actors.StateRunning, actors.StateStarting, actors.StateQueued:
			return p.waitReady(ctx, req.SessionID)
		case actors.StatePaused:
			info, err := p.Engine.Resume(ctx, req.SessionID)
			return sandboxOf(info), err
		case actors.StateStopped, actors.StateError:
			// OpenHands' connect() after /stop: the same session id gets a
			// new sandbox (and so a new session_api_key); its events go on.
			return p.restart(ctx, req.SessionID)
		}
	}
	_, err = p.Engine.CreateSession(ctx, actors.SessionSpec{
		ID:        req.SessionID,
		Runtime:   p.runtimeFor(req.Image),
		Image:     req.Image,
		Env:       req.Environment,
		Resources: res,
	})
	if err != nil {
		return Sandbox{}, err
	}
	return p.waitReady(ctx, req.SessionID)
}

// waitReady waits for the session's current runtime to be READY and
// returns its sandbox. WaitReady is answered by the session itself and the
// state Get reads may lag one message behind it: a session still starting
// there is ready (its handle, published before READY, is current).
func (p *EngineProvisioner) waitReady(ctx context.Context, sid string) (Sandbox, error) {
	if err := p.Engine.WaitReady(ctx, sid); err != nil {
		return Sandbox{}, err
	}
	info, err := p.Engine.Get(ctx, sid)
	if err != nil {
		return Sandbox{}, err
	}
	if info.State == actors.StateStarting || info.State == actors.StateQueued {
		info.State = actors.StateRunning
	}
	return sandboxOf(info), nil
}

// resources maps OpenHands' resource_factor (0 when absent, which OpenHands
// never sends; its default is 1) onto the limits of a new session of rt: 1
// means the runtime's defaults (no per-session limits), any other factor
// scales them and needs a runtime that enforces limits. The factor counts
// when the session is created; a restarted session keeps its limits.
func (p *EngineProvisioner) resources(rt string, factor float64) (runtimes.Resources, error) {
	if factor == 0 || factor == 1 {
		return runtimes.Resources{}, nil
	}
	if math.IsNaN(factor) || math.IsInf(factor, 0) || factor < 0 {
		return runtimes.Resources{}, &StatusError{Status: http.StatusBadRequest,
			Message: fmt.Sprintf("resource_factor = %g: want a positive number (1: the runtime's default resources)", factor)}
	}
	var caps runtimes.Capabilities
	if p.Runtimes != nil {
		b, err := p.Runtimes.Get(rt)
		if err != nil {
			return runtimes.Resources{}, err
		}
		caps = b.Capabilities()
	}
	if !caps.Limits {
		return runtimes.Resources{}, &StatusError{Status: http.StatusBadRequest,
			Message: fmt.Sprintf("resource_factor = %g: runtime %q cannot enforce resource limits; send resource_factor 1 (OpenHands' default) or use an image on a runtime that can (docker, kubernetes)", factor, rt)}
	}
	base := p.DefaultResources[rt]
	scale := func(v int64) int64 {
		if v == 0 {
			return 0 // unlimited stays unlimited
		}
		return max(1, int64(float64(v)*factor)) // never 0, which would mean unlimited
	}
	return runtimes.Resources{MemoryBytes: scale(base.MemoryBytes), NanoCPUs: scale(base.NanoCPUs)}, nil
}

func (p *EngineProvisioner) restart(ctx context.Context, sid string) (Sandbox, error) {
	if _, err := p.Engine.Start(ctx, sid); err != nil {
		return Sandbox{}, err
	}
	return p.waitReady(ctx, sid)
}

// SandboxBySession implements Provisioner.
func (p *EngineProvisioner) SandboxBySession(ctx context.Context, sid string) (Sandbox, bool) {
	info, err := p.Engine.Get(ctx, sid)
	if err != nil {
		return Sandbox{}, false
	}
	return sandboxOf(info), true
}

// SandboxByRuntime implements Provisioner.
func (p *EngineProvisioner) SandboxByRuntime(ctx context.Context, rid string) (Sandbox, bool) {
	return p.SandboxBySession(ctx, rid)
}

// StopSandbox implements Provisioner.
func (p *EngineProvisioner) StopSandbox(ctx context.Context, rid string) error {
	_, err := p.Engine.Stop(ctx, rid)
	return err
}

// PauseSandbox implements Provisioner. A runtime that cannot pause
// (kubernetes: a pod cannot be frozen) answers 501 and keeps running.
func (p *EngineProvisioner) PauseSandbox(ctx context.Context, rid string) error {
	_, err := p.Engine.Pause(ctx, rid)
	return notImplemented(err)
}

// ResumeSandbox implements Provisioner.
func (p *EngineProvisioner) ResumeSandbox(ctx context.Context, rid string) error {
	_, err := p.Engine.Resume(ctx, rid)
	return notImplemented(err)
}

// notImplemented makes the engine's ErrNotSupported a 501.
func notImplemented(err error) error {
	if errors.Is(err, actors.ErrNotSupported) {
		return &StatusError{Status: http.StatusNotImplemented, Message: err.Error()}
	}
	return err
}

// ImageExists implements Provisioner.
func (p *EngineProvisioner) ImageExists(ctx context.Context, image string) (bool, error) {
	if image == "local" {
		return true, nil
	}
	if p.ImageExistsFunc == nil {
		return false, nil
	}
	return p.ImageExistsFunc(ctx, image)
}

// AgentHTTP implements Provisioner: do runs on the connection the engine
// holds to the session's current sandbox (after a runtime restart, the new
// one), through Engine.AgentHTTP; Corral dials no agent here. It returns
// only once do has returned, and do never starts after it returned (the
// caller's ResponseWriter is safe to use in do).
func (p *EngineProvisioner) AgentHTTP(ctx context.Context, rid string, do func(ctx context.Context, rt http.RoundTripper) error) error {
	info, err := p.Engine.Get(ctx, rid)
	if err != nil {
		return err
	}
	if info.State != actors.StateRunning {
		// A paused sandbox's agent is frozen: never send it a request.
		return fmt.Errorf("session %s is %s", rid, strings.ToLower(info.State))
	}
	var (
		mu                 sync.Mutex
		started, abandoned bool
		finished           = make(chan struct{})
	)
	// The engine is asked without the caller's cancellation (a client that
	// goes away as its response completes must not race the engine's
	// reply); do's requests end with the caller or with the runtime.
	err = p.Engine.AgentHTTP(context.WithoutCancel(ctx), rid, func(rctx context.Context, rt http.RoundTripper) error {
		mu.Lock()
		if abandoned {
			mu.Unlock()
			return context.Canceled
		}
		started = true
		mu.Unlock()
		defer close(finished)
		dctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(rctx, cancel)()
		return do(dctx, rt)
	})
	// The engine answers early when ctx ends: wait for a do under way, and
	// make sure one not started yet never does.
	mu.Lock()
	abandoned = !started
	wait := started
	mu.Unlock()
	if wait {
		<-finished
	}
	return notImplemented(err)
}
