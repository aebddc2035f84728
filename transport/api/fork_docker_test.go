package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"corral/eventbus"
	"corral/runtimes/docker"
)

// TestForkADockerSessionThroughTheAPI: a fork of a Docker session starts
// from `docker commit` of the parent's container plus a copy of its
// /workspace: the child sees files written in both, its writes do not
// reach the parent, and deleting it removes its image and volume.
func TestForkADockerSessionThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real containers; skipped in -short mode")
	}
	cli := needDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := docker.BuildMinimalImage(ctx, cli, docker.MinimalImageOptions{}); err != nil {
		t.Fatalf("build %s: %v", docker.MinimalImage, err)
	}
	stateDir, err := os.MkdirTemp("", "cdf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stateDir) })
	backend, err := docker.New(ctx, docker.WithAgentBinary(buildStaticAgent(t)), docker.WithStateDir(stateDir),
		docker.WithNodeID(fmt.Sprintf("corraltest-fork-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)),
		docker.WithDefaultImage(docker.MinimalImage), docker.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	f := newEngineFixture(t, backend, nil)
	parent := readyDockerSession(t, f.fixture)
	run := func(sid, command string) string {
		t.Helper()
		code, b, _ := f.do("POST", "/api/sessions/"+sid+"/actions?wait=true", map[string]any{"action": "run", "args": map[string]any{"command": command}})
		ev, err := eventbus.Unmarshal(b)
		if code != 200 || err != nil {
			t.Fatalf("run %q in %s: %d %s", command, sid, code, b)
		}
		return ev.Content
	}
	run(parent, "echo in-workspace > /workspace/ws.txt && chown 1234:1234 /workspace/ws.txt && echo in-rootfs > /tmp/root.txt")

	var fs Session
	f.mustJSON("POST", "/api/sessions/"+parent+"/fork", nil, 201, &fs)
	if fs.ForkedFrom == nil || fs.ForkedFrom.Session != parent || !strings.HasPrefix(fs.Image, "corral-fork:") {
		t.Fatalf("fork answer %+v, want a child of %s on a corral-fork image", fs, parent)
	}
	if err := f.eng.WaitReady(ctx, fs.ID); err != nil {
		t.Fatalf("child WaitReady: %v", err)
	}
	if out := run(fs.ID, "cat /workspace/ws.txt /tmp/root.txt"); !strings.Contains(out, "in-workspace") || !strings.Contains(out, "in-rootfs") {
		t.Fatalf("the child reads %q, want the parent's workspace and root filesystem files", out)
	}
	if out := strings.Fields(run(fs.ID, "ls -n /workspace/ws.txt")); len(out) < 4 || out[2] != "1234" || out[3] != "1234" {
		t.Fatalf("the copied file lost its owner: %q, want uid and gid 1234", out)
	}
	run(fs.ID, "echo child > /workspace/child.txt")
	if out := run(parent, "ls /workspace"); strings.Contains(out, "child.txt") {
		t.Fatalf("the child's write reached the parent: %q", out)
	}
	info, err := f.eng.Get(ctx, fs.ID)
	if err != nil {
		t.Fatal(err)
	}
	vol := info.Handle.Meta[docker.LabelForkVolume]
	if vol == "" {
		t.Fatalf("the child's handle names no fork volume: %+v", info.Handle.Meta)
	}
	f.mustJSON("DELETE", "/api/sessions/"+fs.ID, nil, 200, nil)
	if _, err := cli.ImageInspect(ctx, fs.Image); !cerrdefs.IsNotFound(err) {
		t.Errorf("fork image %s after the child was deleted: %v, want not found", fs.Image, err)
	}
	if _, err := cli.VolumeInspect(ctx, vol); !cerrdefs.IsNotFound(err) {
		t.Errorf("fork volume %s after the child was deleted: %v, want not found", vol, err)
	}
}
