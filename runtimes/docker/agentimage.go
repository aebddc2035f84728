package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/docker/docker/client"
)

// AgentImageOptions configures BuildAgentImage.
type AgentImageOptions struct {
	Tag string // image tag; default AgentImage
	// Agent is the static corral-agent binary; "": corral-agent next to
	// this executable, then in $PATH.
	Agent    string
	Progress io.Writer // build output goes here; nil discards it
	// Force rebuilds even when an image with the same tag and input hash
	// already exists.
	Force bool
}

// agentDockerfile: the image holds only the agent, run as the entrypoint.
// The Kubernetes backend's init container runs `/corral-agent --copy-to
// PATH` from it (there is no shell or cp in the image) to install the agent
// into a pod of any image.
const agentDockerfile = `FROM scratch
COPY corral-agent /corral-agent
ENTRYPOINT ["/corral-agent"]
`

// BuildAgentImage builds a FROM-scratch image holding only the static
// corral-agent at /corral-agent (the agent image of the Kubernetes
// backend, [runtime.kubernetes] agent_image) through the Engine's
// ImageBuild API, as BuildMinimalImage does: no docker CLI, no registry. An
// image with the same tag and input hash is reused unless opts.Force. It
// returns the image id.
func BuildAgentImage(ctx context.Context, cli client.APIClient, opts AgentImageOptions) (string, error) {
	if opts.Tag == "" {
		opts.Tag = AgentImage
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	agentPath, agentBin, err := readAgentForImage(opts.Agent)
	if err != nil {
		return "", err
	}
	buildCtx, err := agentContext(agentBin)
	if err != nil {
		return "", err
	}
	return buildFromContext(ctx, cli, buildCtx, scratchBuild{
		tag: opts.Tag, kind: "agent", force: opts.Force, progress: progress, what: "agent " + agentPath,
	})
}

const buildAgentHint = "build it with `CGO_ENABLED=0 go build -o corral-agent ./cmd/corral-agent`"

// readAgentForImage finds the agent binary (p, or next to this executable,
// or in $PATH), reads it and checks it is static: the image has no dynamic
// loader, and neither may the sandbox image it is copied into.
func readAgentForImage(p string) (string, []byte, error) {
	if p == "" {
		if exe, err := os.Executable(); err == nil {
			if cand := filepath.Join(filepath.Dir(exe), "corral-agent"); fileExists(cand) {
				p = cand
			}
		}
	}
	if p == "" {
		lp, err := exec.LookPath("corral-agent")
		if err != nil {
			return "", nil, errors.New("agent image: no corral-agent next to this executable or in $PATH: " + buildAgentHint + " and name it (corral image build --agent --agent-binary PATH)")
		}
		p = lp
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", nil, fmt.Errorf("agent image: reading the agent binary: %w (%s)", err, buildAgentHint)
	}
	if err := checkStaticELF(bytes.NewReader(b), p); err != nil {
		return "", nil, fmt.Errorf("agent image: %w", err)
	}
	return p, b, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// agentContext returns the build context (a tar) of the agent image,
// deterministic (fixed times and owners) so its hash changes only with the
// agent binary or this code.
func agentContext(agent []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	files := []struct {
		name string
		mode int64
		body []byte
	}{
		{"Dockerfile", 0o644, []byte(agentDockerfile)},
		{"corral-agent", 0o755, agent},
	}
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.body)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("make agent image context: %w", err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, fmt.Errorf("make agent image context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("make agent image context: %w", err)
	}
	return buf.Bytes(), nil
}
