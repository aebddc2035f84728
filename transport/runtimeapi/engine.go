package runtimeapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"corral/actors"
	"corral/runtimes"
)

// EngineProvisioner serves the Runtime API from Corral's engine: an
// OpenHands session id is a Corral session id, and the runtime id is the
// same string (OpenHands treats it as opaque).
type EngineProvisioner struct {
	Engine *actors.Engine
	// DockerRuntime names the runtime used for images other than "local"
	// (default "docker"); LocalRuntime the one for "local" (default "local").
	DockerRuntime, LocalRuntime string
	// ImageExists answers /image_exists for Docker images; nil means only
	// "local" exists.
	ImageExistsFunc func(ctx context.Context, image string) (bool, error)
	// Dial reaches an agent whose address is not a plain unix socket or
	// TCP port (TLS, SSH tunnels); nil dials AgentAddr directly.
	Dial func(ctx context.Context, h *runtimes.Handle) (net.Conn, error)
}

var _ Provisioner = (*EngineProvisioner)(nil)

func (p *EngineProvisioner) runtimeFor(image string) string {
	if image == "local" {
		if p.LocalRuntime != "" {
			return p.LocalRuntime
		}
		return "local"
	}
	if p.DockerRuntime != "" {
		return p.DockerRuntime
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
	if info, err := p.Engine.Get(ctx, req.SessionID); err == nil {
		switch info.State {
		case actors.StateRunning, actors.StateStarting, actors.StateQueued:
			if err := p.Engine.WaitReady(ctx, req.SessionID); err != nil {
				return Sandbox{}, err
			}
			info, err = p.Engine.Get(ctx, req.SessionID)
			return sandboxOf(info), err
		case actors.StatePaused:
			info, err := p.Engine.Resume(ctx, req.SessionID)
			return sandboxOf(info), err
		case actors.StateStopped, actors.StateError:
			// OpenHands' connect() after /stop: the same session id gets a
			// new sandbox (and so a new session_api_key); its events go on.
			return p.restart(ctx, req.SessionID)
		}
	}
	_, err := p.Engine.CreateSession(ctx, actors.SessionSpec{
		ID:      req.SessionID,
		Runtime: p.runtimeFor(req.Image),
		Image:   req.Image,
		Env:     req.Environment,
	})
	if err != nil {
		return Sandbox{}, err
	}
	if err := p.Engine.WaitReady(ctx, req.SessionID); err != nil {
		return Sandbox{}, err
	}
	info, err := p.Engine.Get(ctx, req.SessionID)
	if err != nil {
		return Sandbox{}, err
	}
	return sandboxOf(info), nil
}

func (p *EngineProvisioner) restart(ctx context.Context, sid string) (Sandbox, error) {
	if _, err := p.Engine.Start(ctx, sid); err != nil {
		return Sandbox{}, err
	}
	if err := p.Engine.WaitReady(ctx, sid); err != nil {
		return Sandbox{}, err
	}
	info, err := p.Engine.Get(ctx, sid)
	return sandboxOf(info), err
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

// PauseSandbox implements Provisioner.
func (p *EngineProvisioner) PauseSandbox(ctx context.Context, rid string) error {
	_, err := p.Engine.Pause(ctx, rid)
	return err
}

// ResumeSandbox implements Provisioner.
func (p *EngineProvisioner) ResumeSandbox(ctx context.Context, rid string) error {
	_, err := p.Engine.Resume(ctx, rid)
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

// AgentTransport implements Provisioner: requests go to the agent of the
// session's current sandbox (after a runtime restart, the new one).
func (p *EngineProvisioner) AgentTransport(ctx context.Context, rid string) (http.RoundTripper, error) {
	info, err := p.Engine.Get(ctx, rid)
	if err != nil {
		return nil, err
	}
	if info.State != actors.StateRunning || info.Handle == nil {
		return nil, fmt.Errorf("session %s is %s", rid, strings.ToLower(info.State))
	}
	h := *info.Handle
	dial := p.Dial
	if dial == nil {
		dial = func(ctx context.Context, h *runtimes.Handle) (net.Conn, error) {
			var d net.Dialer
			if path, ok := strings.CutPrefix(h.AgentAddr, "unix://"); ok {
				return d.DialContext(ctx, "unix", path)
			}
			if h.AgentAddr == "" {
				return nil, errors.New("the sandbox has no agent address")
			}
			return d.DialContext(ctx, "tcp", h.AgentAddr)
		}
	}
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, &h) },
		// A transport per request: no idle connections to leak, and the
		// next request reaches whatever sandbox the session has by then.
		DisableKeepAlives: true,
		IdleConnTimeout:   10 * time.Second,
	}, nil
}
