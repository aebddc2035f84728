package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

// Default image tags built by `corral image build`.
const (
	DefaultImage = "corral-sandbox:latest"
	MinimalImage = "corral-sandbox:minimal"
	// AgentImage holds only the static corral-agent (`corral image build
	// --agent`, BuildAgentImage): the Kubernetes backend's agent_image.
	AgentImage = "corral-agent:latest"
)

// Image labels Corral puts on the images it builds.
const (
	LabelImageKind = "corral.image.kind" // "minimal", "full" or "agent"
	LabelImageHash = "corral.image.hash" // sha256 of the build input (minimal and agent only)
)

// MinimalImageOptions configures BuildMinimalImage.
type MinimalImageOptions struct {
	Tag      string    // image tag; default MinimalImage
	Bash     string    // static bash binary; default /bin/bash-static (Debian bash-static)
	Busybox  string    // static busybox binary; default /bin/busybox (Debian busybox-static)
	Progress io.Writer // build output goes here; nil discards it
	// Force rebuilds even when an image with the same tag and input hash
	// already exists.
	Force bool
}

// BuildMinimalImage builds a FROM-scratch image holding only a static bash
// and a static busybox (with its applets linked into /bin, /usr/bin, ...)
// through the Engine's ImageBuild API with a build context made here, so no
// docker CLI and no registry are needed. The image is labelled with a hash of
// its input: when an image with the same tag and hash exists it is reused
// (unless opts.Force), which makes repeated builds take milliseconds.
// It returns the image id.
func BuildMinimalImage(ctx context.Context, cli client.APIClient, opts MinimalImageOptions) (string, error) {
	if opts.Tag == "" {
		opts.Tag = MinimalImage
	}
	if opts.Bash == "" {
		opts.Bash = "/bin/bash-static"
	}
	if opts.Busybox == "" {
		opts.Busybox = "/bin/busybox"
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	buildCtx, err := minimalContext(ctx, opts.Bash, opts.Busybox)
	if err != nil {
		return "", err
	}
	return buildFromContext(ctx, cli, buildCtx, scratchBuild{
		tag: opts.Tag, kind: "minimal", force: opts.Force, progress: progress,
		what: fmt.Sprintf("bash %s, busybox %s", opts.Bash, opts.Busybox),
	})
}

// scratchBuild says what buildFromContext builds.
type scratchBuild struct {
	tag, kind string // image tag; LabelImageKind value
	what      string // the inputs, for the progress line
	force     bool   // build even when an image with the same input hash exists
	progress  io.Writer
}

// buildFromContext builds the tar build context buildCtx as sb.tag through
// the Engine's ImageBuild, labelled with its kind and input hash, and
// reuses an existing image with the same hash unless sb.force. It returns
// the image id.
func buildFromContext(ctx context.Context, cli client.APIClient, buildCtx []byte, sb scratchBuild) (string, error) {
	sum := sha256.Sum256(buildCtx)
	hash := hex.EncodeToString(sum[:])
	if !sb.force {
		if insp, err := cli.ImageInspect(ctx, sb.tag); err == nil && insp.Config != nil && insp.Config.Labels[LabelImageHash] == hash {
			fmt.Fprintf(sb.progress, "image %s is up to date (input %s)\n", sb.tag, hash[:12])
			return insp.ID, nil
		}
	}
	fmt.Fprintf(sb.progress, "building %s from scratch (%s)\n", sb.tag, sb.what)
	resp, err := cli.ImageBuild(ctx, bytes.NewReader(buildCtx), build.ImageBuildOptions{
		Tags:        []string{sb.tag},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{LabelImageKind: sb.kind, LabelImageHash: hash},
		Version:     build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", sb.tag, mapDaemonErr(cli, err))
	}
	defer resp.Body.Close()
	if err := copyBuildStream(sb.progress, resp.Body); err != nil {
		return "", fmt.Errorf("build image %s: %w", sb.tag, err)
	}
	insp, err := cli.ImageInspect(ctx, sb.tag)
	if err != nil {
		return "", fmt.Errorf("build image %s: the build reported success but the image cannot be inspected: %w", sb.tag, err)
	}
	return insp.ID, nil
}

// copyBuildStream decodes the Engine's JSON progress stream, writes its text
// to w and returns the first error the build reported.
func copyBuildStream(w io.Writer, r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read build output: %w", err)
		}
		if msg.Error != "" {
			if msg.ErrorDetail.Message != "" {
				return errors.New(msg.ErrorDetail.Message)
			}
			return errors.New(msg.Error)
		}
		if msg.Stream != "" {
			io.WriteString(w, msg.Stream)
		} else if msg.Status != "" {
			fmt.Fprintln(w, msg.Status)
		}
	}
}

const minimalDockerfile = `FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
WORKDIR /workspace
CMD ["/bin/bash"]
`

// minimalContext returns the build context (a tar) of the minimal image. It
// is deterministic (sorted entries, fixed times and owners) so its hash only
// changes when the binaries or this code change.
func minimalContext(ctx context.Context, bashPath, busyboxPath string) ([]byte, error) {
	bashBin, err := readStatic(bashPath, "bash-static")
	if err != nil {
		return nil, err
	}
	bbBin, err := readStatic(busyboxPath, "busybox-static")
	if err != nil {
		return nil, err
	}
	// The applet list comes from the binary itself (same as `busybox
	// --install -s` would use), run on the host: it is static, so it runs
	// anywhere.
	out, err := exec.CommandContext(ctx, busyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets with %s --list-full: %w", busyboxPath, err)
	}
	var applets []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || p == "bin/bash" || p == "bin/busybox" || strings.Contains(p, "..") {
			continue
		}
		applets = append(applets, p)
	}
	sort.Strings(applets)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	add := func(h *tar.Header, body []byte) error {
		h.ModTime, h.Format = epoch, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if body != nil {
			_, err := tw.Write(body)
			return err
		}
		return nil
	}
	dir := func(name string, mode int64, uid int) error {
		return add(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid}, nil)
	}
	file := func(name string, mode int64, body []byte) error {
		return add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body)
	}
	steps := []func() error{
		func() error { return file("Dockerfile", 0o644, []byte(minimalDockerfile)) },
		func() error { return dir("rootfs", 0o755, 0) },
		func() error { return dir("rootfs/bin", 0o755, 0) },
		func() error { return dir("rootfs/sbin", 0o755, 0) },
		func() error { return dir("rootfs/usr", 0o755, 0) },
		func() error { return dir("rootfs/usr/bin", 0o755, 0) },
		func() error { return dir("rootfs/usr/sbin", 0o755, 0) },
		func() error { return dir("rootfs/etc", 0o755, 0) },
		func() error { return dir("rootfs/root", 0o700, 0) },
		func() error { return dir("rootfs/home", 0o755, 0) },
		func() error { return dir("rootfs/home/corral", 0o755, 1000) },
		func() error { return dir("rootfs/tmp", 0o1777, 0) },
		func() error { return dir("rootfs/workspace", 0o777, 0) },
		func() error { return file("rootfs/bin/bash", 0o755, bashBin) },
		func() error { return file("rootfs/bin/busybox", 0o755, bbBin) },
		func() error {
			return file("rootfs/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/bash\ncorral:x:1000:1000:corral:/home/corral:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"))
		},
		func() error {
			return file("rootfs/etc/group", 0o644, []byte("root:x:0:\ncorral:x:1000:\nnogroup:x:65534:\n"))
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, fmt.Errorf("make minimal image context: %w", err)
		}
	}
	for _, a := range applets {
		d := path.Dir(a)
		if d != "bin" && d != "sbin" && d != "usr/bin" && d != "usr/sbin" {
			continue
		}
		if err := add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "rootfs/" + a, Linkname: "/bin/busybox", Mode: 0o777}, nil); err != nil {
			return nil, fmt.Errorf("make minimal image context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("make minimal image context: %w", err)
	}
	return buf.Bytes(), nil
}

func readStatic(p, pkg string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (install it with: apt-get update && apt-get install -y %s)", p, err, pkg)
	}
	if err := checkStaticELF(bytes.NewReader(b), p); err != nil {
		return nil, err
	}
	return b, nil
}
