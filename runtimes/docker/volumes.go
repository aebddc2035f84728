package docker

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// WorkspaceDir is where the workspace is mounted inside every sandbox.
const WorkspaceDir = "/workspace"

var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// volumeMount is one parsed OpenHands `volumes` entry.
type volumeMount struct {
	Source   string // absolute host path, or a volume name when Named
	Target   string // absolute path in the container
	ReadOnly bool
	Named    bool
}

// bind renders the mount in the Engine's Binds syntax (the one docker-py's
// `volumes=` uses, so host directories are created when missing, as in
// OpenHands).
func (m volumeMount) bind() string {
	mode := "rw"
	if m.ReadOnly {
		mode = "ro"
	}
	return m.Source + ":" + m.Target + ":" + mode
}

// parseVolume parses `host:container[:mode]` (OpenHands sandbox.volumes).
// The host part is a named volume when it is `volume:<name>` or not an
// absolute path. mode is rw (default) or ro.
func parseVolume(entry string) (volumeMount, error) {
	raw := strings.TrimSpace(entry)
	named := false
	if rest, ok := strings.CutPrefix(raw, "volume:"); ok {
		raw, named = rest, true
	}
	parts := strings.Split(raw, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return volumeMount{}, fmt.Errorf("volume %q: want host:container[:mode] (host an absolute path, a volume name or volume:<name>; mode rw or ro)", entry)
	}
	m := volumeMount{Source: parts[0], Target: parts[1]}
	if m.Source == "" || m.Target == "" {
		return volumeMount{}, fmt.Errorf("volume %q: empty host or container part; want host:container[:mode]", entry)
	}
	if !path.IsAbs(m.Target) {
		return volumeMount{}, fmt.Errorf("volume %q: container path %q must be absolute", entry, m.Target)
	}
	m.Target = path.Clean(m.Target)
	if len(parts) == 3 {
		switch parts[2] {
		case "rw", "":
		case "ro":
			m.ReadOnly = true
		default:
			if strings.Contains(parts[2], "overlay") {
				return volumeMount{}, fmt.Errorf("volume %q: overlay mounts are not supported by the docker backend; use rw or ro", entry)
			}
			return volumeMount{}, fmt.Errorf("volume %q: unknown mode %q; use rw or ro", entry, parts[2])
		}
	}
	if named || !strings.HasPrefix(m.Source, "/") {
		if !volumeName.MatchString(m.Source) {
			return volumeMount{}, fmt.Errorf("volume %q: %q is neither an absolute host path nor a valid volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)", entry, m.Source)
		}
		m.Named = true
	} else {
		m.Source = path.Clean(m.Source)
	}
	if strings.HasPrefix(m.Target, "/.corral") {
		return volumeMount{}, fmt.Errorf("volume %q: %s is reserved for Corral's agent", entry, m.Target)
	}
	return m, nil
}

// mountsFor works out the mounts of a sandbox from Spec.Workspace and
// Spec.Volumes. Exactly one source may provide /workspace; when none does
// the workspace is an anonymous volume that Destroy removes.
func mountsFor(workspace string, volumes []string) (mounts []volumeMount, ws *volumeMount, err error) {
	seen := map[string]string{}
	if workspace != "" {
		entry := workspace + ":" + WorkspaceDir
		if strings.Count(workspace, ":") > 0 && !strings.HasPrefix(workspace, "volume:") {
			return nil, nil, fmt.Errorf("workspace %q: want an absolute host directory, a volume name or volume:<name>", workspace)
		}
		m, err := parseVolume(entry)
		if err != nil {
			return nil, nil, fmt.Errorf("workspace: %w", err)
		}
		mounts = append(mounts, m)
		seen[m.Target] = "workspace " + workspace
	}
	for _, v := range volumes {
		m, err := parseVolume(v)
		if err != nil {
			return nil, nil, err
		}
		if prev, dup := seen[m.Target]; dup {
			return nil, nil, fmt.Errorf("volume %q: %s is already mounted by %s", v, m.Target, prev)
		}
		seen[m.Target] = "volume " + v
		mounts = append(mounts, m)
	}
	for i := range mounts {
		if mounts[i].Target == WorkspaceDir {
			ws = &mounts[i]
		}
	}
	return mounts, ws, nil
}
