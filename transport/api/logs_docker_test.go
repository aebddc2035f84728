package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"corral/actors"
	"corral/eventbus"
	"corral/runtimes/docker"
)

var (
	staticAgentOnce sync.Once
	staticAgent     string
	staticAgentErr  error
)

// needDocker skips the test when no Docker Engine is reachable, and fails
// it instead when CORRAL_REQUIRE_DOCKER=1 (CI); it returns a client.
func needDocker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = cli.Ping(ctx)
		cancel()
		if err != nil {
			cli.Close()
		}
	}
	if err != nil {
		if os.Getenv("CORRAL_REQUIRE_DOCKER") == "1" {
			t.Fatalf("Docker Engine required (CORRAL_REQUIRE_DOCKER=1) but unreachable: %v", err)
		}
		t.Skipf("no Docker Engine reachable (%v); set CORRAL_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// buildStaticAgent builds the static corral-agent a container needs, once
// per test binary, next to the one buildAgent makes.
func buildStaticAgent(t testing.TB) string {
	t.Helper()
	dir := filepath.Dir(buildAgent(t))
	staticAgentOnce.Do(func() {
		staticAgent = filepath.Join(dir, "corral-agent-static")
		cmd := exec.Command("go", "build", "-o", staticAgent, "../../cmd/corral-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			staticAgentErr = fmt.Errorf("build the static corral-agent: %v\n%s", err, out)
		}
	})
	if staticAgentErr != nil {
		t.Fatal(staticAgentErr)
	}
	return staticAgent
}

// newDockerFixture is a server over the real engine with the Docker runtime
// (the minimal image) and an on-disk event store.
func newDockerFixture(t testing.TB) *fixture {
	t.Helper()
	cli := needDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := docker.BuildMinimalImage(ctx, cli, docker.MinimalImageOptions{}); err != nil {
		t.Fatalf("build %s: %v", docker.MinimalImage, err)
	}
	stateDir, err := os.MkdirTemp("", "cdl") // short: the agent's socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stateDir) })
	backend, err := docker.New(ctx, docker.WithAgentBinary(buildStaticAgent(t)), docker.WithStateDir(stateDir),
		docker.WithNodeID(fmt.Sprintf("corraltest-logs-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)),
		docker.WithDefaultImage(docker.MinimalImage), docker.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	return newEngineFixture(t, backend, nil).fixture
}

// readyDockerSession creates a Docker session and waits for READY.
func readyDockerSession(t testing.TB, f *fixture) string {
	t.Helper()
	var s Session
	f.mustJSON("POST", "/api/sessions", map[string]any{"runtime": "docker", "image": docker.MinimalImage}, 201, &s)
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		f.mustJSON("GET", "/api/sessions/"+s.ID, nil, 200, &s)
		if s.Status == actors.StateRunning && s.RuntimeStatus == eventbus.StatusReady {
			return s.ID
		}
		if s.Status == actors.StateError || time.Now().After(deadline) {
			t.Fatalf("docker session never became ready: %+v", s)
		}
	}
}

func TestLogsOfADockerSandboxThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real container; skipped in -short mode")
	}
	f := newDockerFixture(t)
	id := readyDockerSession(t, f)
	checkLogsSoFar(t, f, id)
	checkLogsFollowUntilStop(t, f, id)

	code, b, _ := f.do("GET", "/api/sessions/"+id+"/logs?follow=true", nil)
	wantError(t, code, b, 409, "not_running")
	code, b, _ = f.do("GET", "/api/sessions/nosuchsession/logs", nil)
	wantError(t, code, b, 404, "not_found")
}
