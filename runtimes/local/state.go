package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"corral/runtimes"
)

// stateVersion is the format of a state file.
const stateVersion = 1

// stateFile is what <state dir>/<sandbox id>.json holds: enough to find,
// Recover, Connect to and Destroy the sandbox from another process (pid,
// socket, token, workspace and owner are all in the handle and its Meta).
type stateFile struct {
	Version int              `json:"version"`
	Handle  *runtimes.Handle `json:"handle"`
}

var _ runtimes.Lister = (*Backend)(nil)

// defaultStateDir is $XDG_RUNTIME_DIR/corral-local (a per-user tmpfs
// cleared at logout and boot, when there is one), else a per-user
// directory in the temporary directory.
func defaultStateDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "corral-local")
	}
	return filepath.Join(os.TempDir(), "corral-local-"+strconv.Itoa(os.Getuid()))
}

// StateDir is where the backend keeps its sandboxes' state files.
func (b *Backend) StateDir() string { return b.stateDir }

func (b *Backend) statePath(id string) string {
	return filepath.Join(b.stateDir, safe(id)+".json")
}

// saveState writes h's state file atomically (mode 0600: it holds the
// agent's token).
func (b *Backend) saveState(h *runtimes.Handle) error {
	data, err := json.Marshal(stateFile{Version: stateVersion, Handle: h})
	if err != nil {
		return fmt.Errorf("encode the state of sandbox %s: %w", h.ID, err)
	}
	f, err := os.CreateTemp(b.stateDir, ".state-*")
	if err != nil {
		return fmt.Errorf("write the state of sandbox %s in %s: %w", h.ID, b.stateDir, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), b.statePath(h.ID))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write the state of sandbox %s in %s: %w", h.ID, b.stateDir, err)
	}
	return nil
}

// loadState reads one state file.
func loadState(path string) (*runtimes.Handle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if st.Version != stateVersion || st.Handle == nil || st.Handle.ID == "" {
		return nil, fmt.Errorf("state file %s: version %d without a handle; this Corral reads version %d", path, st.Version, stateVersion)
	}
	if st.Handle.Meta == nil {
		st.Handle.Meta = map[string]string{}
	}
	return st.Handle, nil
}

// pendingPrefix starts the id of a sandbox whose agent is being started
// and has no pid yet; its state file is statePath(pendingID(sockDir)).
const pendingPrefix = "pending-"

// pendingID is the id in the pending state file of the sandbox whose
// socket directory is sockDir (unique: made by os.MkdirTemp).
func pendingID(sockDir string) string { return pendingPrefix + filepath.Base(sockDir) }

// removePending deletes the pending state file of h, written before its
// agent was started.
func (b *Backend) removePending(h *runtimes.Handle) error {
	d := h.Meta[metaSockDir]
	if d == "" {
		return nil
	}
	return b.removeStateFile(b.statePath(pendingID(d)), h)
}

// removeState deletes h's state files (the one naming its pid and the
// pending one written before its agent started), unless one now describes
// another sandbox (a new agent that got the same pid).
func (b *Backend) removeState(h *runtimes.Handle) error {
	errs := []error{b.removeStateFile(b.statePath(h.ID), h)}
	if !strings.HasPrefix(h.ID, pendingPrefix) {
		errs = append(errs, b.removePending(h))
	}
	return errors.Join(errs...)
}

func (b *Backend) removeStateFile(path string, h *runtimes.Handle) error {
	cur, err := loadState(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil && cur.AgentAddr != h.AgentAddr {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the state file of sandbox %s: %w", h.ID, err)
	}
	return nil
}

// List returns the handles of every sandbox with a state file, whoever
// started it and whether or not its agent still runs: runtimes.Reap judges
// their owners, Recover tells whether one can be re-attached. Unreadable
// state files are skipped with a warning.
func (b *Backend) List(ctx context.Context) ([]*runtimes.Handle, error) {
	ents, err := os.ReadDir(b.stateDir)
	if err != nil {
		return nil, fmt.Errorf("local backend: list sandboxes in %s: %w", b.stateDir, err)
	}
	var out []*runtimes.Handle
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		h, err := loadState(filepath.Join(b.stateDir, e.Name()))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				b.logger.Warn("skipping an unreadable sandbox state file", "err", err)
			}
			continue
		}
		out = append(out, h)
	}
	// A pending state file whose start got as far as the state file naming
	// the pid is the same sandbox: skip it. Else, when its agent runs, name
	// its pid (found by the socket on its command line) so that Destroy
	// can kill it; when none runs, the handle keeps its pending id and
	// Destroy removes what the start left (state file, socket directory,
	// workspace).
	known := map[string]bool{}
	for _, h := range out {
		if !strings.HasPrefix(h.ID, pendingPrefix) {
			known[h.AgentAddr] = true
		}
	}
	list := out[:0]
	for _, h := range out {
		if strings.HasPrefix(h.ID, pendingPrefix) {
			if known[h.AgentAddr] {
				continue
			}
			if pid := agentListeningOn(h.AgentAddr); pid > 0 {
				h.ID, h.Meta[metaPID], h.Meta[metaStart] = strconv.Itoa(pid), strconv.Itoa(pid), procStart(pid)
			}
		}
		list = append(list, h)
	}
	return list, nil
}

// agentListeningOn is the pid of the process whose command line has
// "--listen addr", or 0.
func agentListeningOn(addr string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 {
			continue
		}
		if isAgentOn(pid, addr) {
			return pid
		}
	}
	return 0
}

// setOwner replaces the owner entries of meta with o's.
func setOwner(meta map[string]string, o runtimes.Owner) {
	for _, k := range []string{runtimes.MetaOwnerID, runtimes.MetaOwnerInst, runtimes.MetaOwnerHost, runtimes.MetaOwnerLock, runtimes.MetaOwnerDurable} {
		delete(meta, k)
	}
	for k, v := range o.Meta() {
		meta[k] = v
	}
}
