package docker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// TestAgentImageInstallsTheAgent builds the agent image under a test tag,
// checks it holds only /corral-agent as its entrypoint, runs its
// `--copy-to` (what the Kubernetes init container does) into a bind mount
// and compares the copy with the binary; a second build reuses the image.
func TestAgentImageInstallsTheAgent(t *testing.T) {
	needDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() }) // after the image is removed (cleanups run last first)
	tag := fmt.Sprintf("corral-agent-test:%d", time.Now().UnixNano())
	t.Cleanup(func() { cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true}) })

	id, err := BuildAgentImage(ctx, cli, AgentImageOptions{Tag: tag, Agent: env.agent})
	if err != nil {
		t.Fatal(err)
	}
	insp, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if got := insp.Config.Entrypoint; len(got) != 1 || got[0] != "/corral-agent" {
		t.Errorf("entrypoint %q, want [/corral-agent]", got)
	}
	if insp.Config.Labels[LabelImageKind] != "agent" {
		t.Errorf("labels %v, want %s=agent", insp.Config.Labels, LabelImageKind)
	}
	var progress bytes.Buffer
	again, err := BuildAgentImage(ctx, cli, AgentImageOptions{Tag: tag, Agent: env.agent, Progress: &progress})
	if err != nil || again != id || !strings.Contains(progress.String(), "up to date") {
		t.Errorf("second build: id %s (first %s), err %v, output %q; want the same image reused", again, id, err, progress.String())
	}

	out := t.TempDir()
	code, logs := runOnce(ctx, t, cli, tag, []string{"--copy-to", "/out/bin/corral-agent"}, out+":/out")
	if code != 0 {
		t.Fatalf("--copy-to in the image: exit %d, output %q", code, logs)
	}
	want, _ := os.ReadFile(env.agent)
	got, err := os.ReadFile(filepath.Join(out, "bin", "corral-agent"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("copied agent: %d bytes, err %v; want the %d bytes of %s", len(got), err, len(want), env.agent)
	}
}

// runOnce runs image with args (and one bind mount) to its exit and
// returns the exit code and output; the container is removed.
func runOnce(ctx context.Context, t *testing.T, cli client.APIClient, img string, args []string, bind string) (int64, string) {
	t.Helper()
	labels := map[string]string{LabelManaged: "true", LabelNode: env.node + "-agentimage"}
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Cmd: args, Labels: labels},
		&container.HostConfig{Binds: []string{bind}}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNextExit)
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	var code int64
	select {
	case r := <-waitC:
		code = r.StatusCode
	case err := <-errC:
		t.Fatal(err)
	}
	rc, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var logs bytes.Buffer
	logs.ReadFrom(rc)
	return code, logs.String()
}

// TestAgentImageRefusesUnusableBinaries: a missing or dynamically linked
// agent is refused before anything is built, saying how to build one.
func TestAgentImageRefusesUnusableBinaries(t *testing.T) {
	text := filepath.Join(t.TempDir(), "corral-agent")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		agent string
		want  string
	}{
		{"missing file", filepath.Join(t.TempDir(), "nope"), "CGO_ENABLED=0 go build"},
		{"not an executable", text, "is not an ELF executable"},
		{"dynamically linked", "/bin/sh", "dynamically linked"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// No engine is needed: nothing reaches it.
			_, err := BuildAgentImage(context.Background(), nil, AgentImageOptions{Agent: tc.agent})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.agent) {
				t.Fatalf("err = %v; want it to name %s and contain %q", err, tc.agent, tc.want)
			}
		})
	}
}
