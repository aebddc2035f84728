package docker

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// FullImageOptions configures BuildFullImage.
type FullImageOptions struct {
	Tag      string   // image tag; default DefaultImage
	Mirror   string   // Debian mirror; default: the first one in this machine's apt sources
	Suite    string   // Debian suite (bookworm, ...); default: from the apt sources
	Include  []string // packages; default DefaultFullImagePackages()
	TempDir  string   // where the root filesystem is assembled; default os.TempDir()
	Progress io.Writer
}

// DefaultFullImagePackages are the Debian packages of the full image:
// bash, coreutils, git, python3 and ca-certificates for the shell and
// IPython tools, chromium and a font for the browser tool (without a font
// Chromium renders every glyph as a box in screenshots). dbus-x11 is there
// because debootstrap does not resolve virtual packages: chromium pulls in
// dconf-service, which needs "default-dbus-session-bus | dbus-session-bus",
// and without a provider named here the bootstrap fails configuring it.
// poppler-utils gives the agent skills' parse_pdf its pdftotext.
func DefaultFullImagePackages() []string {
	return []string{"bash", "coreutils", "git", "python3", "ca-certificates", "chromium", "fonts-liberation", "dbus-x11", "poppler-utils"}
}

// BuildFullImage bootstraps a Debian root filesystem with `debootstrap
// --variant=minbase` from the apt mirror this machine uses, then imports it
// with the Engine's ImageImport API from a tar stream. It needs root and the
// debootstrap package. It returns the image id.
func BuildFullImage(ctx context.Context, cli client.APIClient, opts FullImageOptions) (string, error) {
	if opts.Tag == "" {
		opts.Tag = DefaultImage
	}
	if len(opts.Include) == 0 {
		opts.Include = DefaultFullImagePackages()
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	// debootstrap first: without it the apt-source lookup below fails too
	// (it reads debootstrap's suite scripts) and would blame --mirror/--suite.
	deboot, err := exec.LookPath("debootstrap")
	if err != nil {
		return "", fmt.Errorf("the Debian package debootstrap is not installed (no debootstrap in PATH): install it with `apt-get update && apt-get install -y debootstrap`, or build the minimal image instead with `corral image build --minimal`")
	}
	if opts.Mirror == "" || opts.Suite == "" {
		src, err := FindAptSource("/etc/apt", "/usr/share/debootstrap/scripts")
		if err != nil {
			return "", err
		}
		if opts.Mirror == "" {
			opts.Mirror = src.URI
		}
		if opts.Suite == "" {
			opts.Suite = src.Suite
		}
	}
	root, err := os.MkdirTemp(opts.TempDir, "corral-rootfs-")
	if err != nil {
		return "", fmt.Errorf("make a directory for the root filesystem: %w", err)
	}
	defer os.RemoveAll(root)

	fmt.Fprintf(progress, "debootstrap --variant=minbase --include=%s %s %s %s\n", strings.Join(opts.Include, ","), opts.Suite, root, opts.Mirror)
	cmd := exec.CommandContext(ctx, deboot, "--variant=minbase", "--include="+strings.Join(opts.Include, ","), opts.Suite, root, opts.Mirror)
	cmd.Stdout, cmd.Stderr = progress, progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("debootstrap %s from %s failed: %w (see the output above; it needs root and network access to the mirror)", opts.Suite, opts.Mirror, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "workspace"), 0o777); err != nil {
		return "", fmt.Errorf("make /workspace in the root filesystem: %w", err)
	}

	fmt.Fprintf(progress, "importing %s into the Docker Engine as %s\n", root, opts.Tag)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarDir(ctx, pw, root)) }()
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: pr, SourceName: "-"}, opts.Tag, image.ImportOptions{
		Message: "corral sandbox image: debootstrap minbase " + opts.Suite,
		Changes: []string{
			"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"ENV LANG=C.UTF-8",
			"WORKDIR /workspace",
			`CMD ["/bin/bash"]`,
			"LABEL " + LabelImageKind + "=full",
		},
	})
	if err != nil {
		pr.CloseWithError(err)
		return "", fmt.Errorf("import image %s: %w", opts.Tag, mapDaemonErr(cli, err))
	}
	defer rc.Close()
	if err := copyBuildStream(progress, rc); err != nil {
		return "", fmt.Errorf("import image %s: %w", opts.Tag, err)
	}
	insp, err := cli.ImageInspect(ctx, opts.Tag)
	if err != nil {
		return "", fmt.Errorf("import image %s: the import reported success but the image cannot be inspected: %w", opts.Tag, err)
	}
	return insp.ID, nil
}

// tarDir writes the tree under root to w as a tar stream, keeping owners,
// modes, symlinks and hard links. /proc, /sys and /dev contents are left out:
// the container runtime provides them.
func tarDir(ctx context.Context, w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		for _, skip := range []string{"proc/", "sys/", "dev/"} {
			if strings.HasPrefix(rel, skip) {
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if info.Mode()&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0 {
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			if info.Mode().IsRegular() && st.Nlink > 1 {
				key := [2]uint64{st.Dev, st.Ino}
				if first, seen := links[key]; seen {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				} else {
					links[key] = rel
				}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tar %s: %w", root, err)
	}
	return tw.Close()
}

// AptSource is one Debian archive entry from the apt configuration.
type AptSource struct {
	URI   string
	Suite string
	File  string // where it was found
}

// FindAptSource reads sources.list and sources.list.d (one-line .list and
// deb822 .sources files) under aptDir and returns the first `deb` entry whose
// suite debootstrap has a script for (in scriptsDir) — security and -updates
// suites have none, so the main archive is picked.
func FindAptSource(aptDir, scriptsDir string) (AptSource, error) {
	files := []string{filepath.Join(aptDir, "sources.list")}
	more, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*"))
	files = append(files, more...)
	var seen []string
	for _, f := range files {
		var entries []AptSource
		switch {
		case strings.HasSuffix(f, ".list"):
			entries = parseOneLine(f)
		case strings.HasSuffix(f, ".sources"):
			entries = parseDeb822(f)
		default:
			continue
		}
		for _, e := range entries {
			seen = append(seen, e.URI+" "+e.Suite)
			if _, err := os.Stat(filepath.Join(scriptsDir, e.Suite)); err == nil {
				return e, nil
			}
		}
	}
	if len(seen) == 0 {
		return AptSource{}, fmt.Errorf("no `deb` entries in %s/sources.list or %s/sources.list.d: pass --mirror and --suite", aptDir, aptDir)
	}
	return AptSource{}, fmt.Errorf("none of the apt sources (%s) has a suite debootstrap knows (scripts in %s): pass --mirror and --suite", strings.Join(seen, "; "), scriptsDir)
}

func parseOneLine(file string) []AptSource {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []AptSource
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		fields = fields[1:]
		if strings.HasPrefix(fields[0], "[") { // [arch=amd64 signed-by=...]
			for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
				fields = fields[1:]
			}
			if len(fields) > 0 {
				fields = fields[1:]
			}
		}
		if len(fields) >= 2 {
			out = append(out, AptSource{URI: fields[0], Suite: fields[1], File: file})
		}
	}
	return out
}

func parseDeb822(file string) []AptSource {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var out []AptSource
	for _, stanza := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n") {
		fields := map[string]string{}
		var last string
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if (line[0] == ' ' || line[0] == '\t') && last != "" {
				fields[last] += " " + strings.TrimSpace(line)
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
		if !containsWord(fields["types"], "deb") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			for _, suite := range strings.Fields(fields["suites"]) {
				out = append(out, AptSource{URI: uri, Suite: suite, File: file})
			}
		}
	}
	return out
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}
