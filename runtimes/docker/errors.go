package docker

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
)

// daemonWhere says which daemon address the client uses and where that
// address came from, for error messages.
func daemonWhere(cli client.APIClient) string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return fmt.Sprintf("%s (from DOCKER_HOST)", h)
	}
	return fmt.Sprintf("%s (the default socket; set DOCKER_HOST to use another)", cli.DaemonHost())
}

// mapDaemonErr turns transport-level failures into a message that says
// where the daemon was looked for and what to do. Other errors pass through.
func mapDaemonErr(cli client.APIClient, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case client.IsErrConnectionFailed(err) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("cannot reach the Docker daemon at %s: is dockerd running? %w", daemonWhere(cli), err)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("permission denied talking to the Docker daemon at %s: run as root or as a member of the docker group: %w", daemonWhere(cli), err)
	}
	return err
}

// mapCreateErr explains container create/start failures, naming the image and how
// to build it when the image is missing (nothing can be pulled here).
func mapCreateErr(cli client.APIClient, img string, err error) error {
	if err == nil {
		return nil
	}
	if cerrdefs.IsNotFound(err) && strings.Contains(strings.ToLower(err.Error()), "image") {
		return fmt.Errorf("docker image %q is not present on the Docker host and is not pulled automatically: build it with `corral image build --minimal` (tag %s) or `corral image build` (tag %s), or pass an image that exists (`docker images`): %w",
			img, MinimalImage, DefaultImage, err)
	}
	if cerrdefs.IsNotFound(err) && strings.Contains(strings.ToLower(err.Error()), "network") {
		return fmt.Errorf("docker network not found: create it with `docker network create NAME` or choose none/bridge/host: %w", err)
	}
	return mapDaemonErr(cli, err)
}

// checkStaticELF rejects binaries that need a dynamic loader: they cannot
// be bind-mounted into an arbitrary image.
func checkStaticELF(r io.ReaderAt, name string) error {
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("%s is not an ELF executable: %w", name, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (it has an ELF interpreter), so it cannot run inside an arbitrary image: build it statically (for the agent: CGO_ENABLED=0 go build ./cmd/corral-agent)", name)
		}
	}
	return nil
}
