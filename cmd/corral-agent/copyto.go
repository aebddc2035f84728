package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// copySelf copies the running executable to dst, mode 0755, creating dst's
// directory. It is what `corral-agent --copy-to PATH` does: the Kubernetes
// backend's init container runs it from the FROM-scratch agent image (which
// has no cp or shell) to put the agent into an emptyDir the sandbox
// container runs it from.
//
// The copy is atomic: it is written to a temporary file beside dst, synced,
// then renamed over dst, so a reader never sees a half-written agent, and a
// dst that is running ("text file busy") is replaced rather than written
// into. It returns the number of bytes copied.
func copySelf(dst string) (int64, error) {
	if dst == "" {
		return 0, errors.New("--copy-to needs a file path, e.g. --copy-to /.corral/corral-agent")
	}
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		return 0, fmt.Errorf("--copy-to %s is a directory; give the file to write, e.g. %s", dst, filepath.Join(dst, "corral-agent"))
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("--copy-to: cannot find this executable to copy (os.Executable): %w", err)
	}
	src, err := os.Open(exe)
	if err != nil {
		return 0, fmt.Errorf("--copy-to: opening this executable %s: %w", exe, err)
	}
	defer src.Close()
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("--copy-to %s: creating its directory: %w", dst, err)
	}
	tmp, err := os.CreateTemp(dir, ".corral-agent-copy-*")
	if err != nil {
		return 0, fmt.Errorf("--copy-to %s: creating a temporary file in %s (is it writable?): %w", dst, dir, err)
	}
	n, err := writeExecutable(tmp, src)
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return 0, fmt.Errorf("--copy-to %s: %w", dst, err)
	}
	return n, nil
}

// writeExecutable copies src into f, makes it 0755 (CreateTemp makes 0600
// and the umask must not matter), syncs and closes it.
func writeExecutable(f *os.File, src io.Reader) (int64, error) {
	n, err := io.Copy(f, src)
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if err := f.Chmod(0o755); err != nil {
		f.Close()
		return 0, fmt.Errorf("chmod 0755 %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, fmt.Errorf("syncing %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("closing %s: %w", f.Name(), err)
	}
	return n, nil
}
