package sandbox

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"

	"corral/eventbus"
)

// errnoOf extracts the OS errno from err, if there is one.
func errnoOf(err error) (int, bool) {
	var en syscall.Errno
	if errors.As(err, &en) {
		return int(en), true
	}
	return 0, false
}

// osErrorText renders an OS error the way Python's str(OSError) does, so the
// texts agents see match OpenHands'.
func osErrorText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pyOSError(err, pe.Path)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		if en, ok := errnoOf(le.Err); ok {
			return fmt.Sprintf("[Errno %d] %s: '%s' -> '%s'", en, pyStrerror(le.Err), le.Old, le.New)
		}
	}
	return err.Error()
}

// resolvePath joins a relative path with cwd (OpenHands' _resolve_path).
func resolvePath(cwd, p string) string {
	if filepath.IsAbs(p) {
		return pyPath(p)
	}
	return pyPath(filepath.Join(cwd, p))
}

// binaryCheckBytes is how much of a file binaryornot inspects.
const binaryCheckBytes = 1024

// isBinaryFile ports binaryornot.check.is_binary (used by OpenHands for
// `read` and by OHEditor): it looks at the first KiB. A missing or
// unreadable file is "not binary", as in binaryornot.
func isBinaryFile(path string) bool {
	if strings.HasSuffix(path, ".pyc") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, binaryCheckBytes)
	n, _ := io.ReadFull(f, buf)
	return isBinaryBytes(buf[:n])
}

// isBinaryBytes is binaryornot.helpers.is_binary_string with chardet's
// verdict approximated by "valid UTF-8 containing non-ASCII text" (the only
// non-ASCII encoding chardet reports with confidence > 0.9 for typical
// source files).
func isBinaryBytes(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	low, high := 0, 0
	for _, c := range b {
		printable := c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\b' || (c >= 32 && c < 127)
		if !printable {
			low++
		}
		if c < 127 {
			high++
		}
	}
	r1 := float64(low) / float64(len(b))
	r2 := float64(high) / float64(len(b))
	if r1 > 0.90 && r2 > 0.90 {
		return true
	}
	likelyBinary := (r1 > 0.3 && r2 < 0.05) || (r1 > 0.8 && r2 > 0.8)
	decodable := utf8Prefix(b) && bytes.IndexFunc(b, func(r rune) bool { return r >= 0x80 }) >= 0 && bytes.IndexByte(b, 0) < 0
	if decodable {
		return false
	}
	if likelyBinary {
		return true
	}
	return bytes.IndexByte(b, 0) >= 0 || bytes.IndexByte(b, 0xff) >= 0
}

// utf8Prefix reports whether b is valid UTF-8, allowing a rune cut off by the
// 1 KiB window at the end.
func utf8Prefix(b []byte) bool {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return len(b)-i < utf8.UTFMax && !utf8.FullRune(b[i:])
		}
		i += size
	}
	return true
}

// mediaMIME returns the data-URL MIME type for the file kinds OpenHands'
// `read` returns base64-encoded, or "" for text files.
func mediaMIME(p string) string {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".bmp":
		return "image/bmp"
	case ".gif":
		return "image/gif"
	case ".pdf":
		return "application/pdf"
	case ".mp4":
		return "video/mp4"
	case ".webm":
		return "video/webm"
	case ".ogg":
		return "audio/ogg"
	}
	return ""
}

// readLines is OpenHands' files.read_lines: 0-based start, end -1 = to EOF,
// and a bounded range always yields at least one line.
func readLines(all []string, start, end int) []string {
	n := len(all)
	start = min(max(start, 0), n)
	if end != -1 {
		end = max(end, 0)
	}
	end = min(end, n)
	if end == -1 {
		return all[start:]
	}
	begin := max(0, min(start, n-2))
	end = max(begin+1, end)
	if end > n {
		end = n
	}
	if begin > end {
		return nil
	}
	return all[begin:end]
}

// pySliceTo and pySliceFrom are Python's list[:i] and list[i:], negative
// indices included.
func pySliceTo(l []string, i int) []string {
	if i < 0 {
		i = max(0, len(l)+i)
	}
	return l[:min(i, len(l))]
}

func pySliceFrom(l []string, i int) []string {
	if i < 0 {
		i = max(0, len(l)+i)
	}
	return l[min(i, len(l)):]
}

// insertLines is OpenHands' files.insert_lines.
func insertLines(insert, original []string, start, end int) []string {
	var out []string
	if start == 0 {
		out = append(out, "")
	} else {
		out = append(out, pySliceTo(original, start)...)
	}
	for _, l := range insert {
		out = append(out, l+"\n")
	}
	if end == -1 {
		out = append(out, "")
	} else {
		out = append(out, pySliceFrom(original, end)...)
	}
	return out
}

func errorEvent(content string) *eventbus.Event {
	return eventbus.NewError(eventbus.InvalidID, "", content)
}

// readFile runs a `read` action in the default (non-editor) mode.
func (x *Executor) readFile(a *eventbus.FileReadAction, cwd string) *eventbus.Event {
	p := resolvePath(cwd, a.Path)
	if err := x.access.check(p, accessRead); err != nil {
		return errorEvent(osErrorText(err))
	}
	if mime := mediaMIME(p); mime != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return readError(err, p, cwd)
		}
		return eventbus.NewObservation(eventbus.InvalidID, "data:"+mime+";base64,"+base64.StdEncoding.EncodeToString(b),
			&eventbus.FileReadObservation{Path: p, ImplSource: "default"})
	}
	if isBinaryFile(p) {
		return errorEvent("ERROR_BINARY_FILE")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return readError(err, p, cwd)
	}
	if !utf8.Valid(b) {
		return errorEvent("File could not be decoded as utf-8: " + p + ".")
	}
	lines := readLines(splitKeepEnds(universalNewlines(string(b))), a.Start, a.End)
	return eventbus.NewObservation(eventbus.InvalidID, strings.Join(lines, ""),
		&eventbus.FileReadObservation{Path: p, ImplSource: "default"})
}

func readError(err error, p, cwd string) *eventbus.Event {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errorEvent("File not found: " + p + ". Your current working directory is " + cwd + ".")
	case errors.Is(err, syscall.EISDIR):
		return errorEvent("Path is a directory: " + p + ". You can only read files")
	}
	return errorEvent(osErrorText(err))
}

// readEditor runs a `read` action in oh_aci mode: the editor's view.
func (x *Executor) readEditor(a *eventbus.FileReadAction, cwd string) *eventbus.Event {
	if filepath.IsAbs(a.Path) {
		if err := x.access.check(pyPath(a.Path), accessRead); err != nil {
			return errorEvent(osErrorText(err))
		}
		if isBinaryFile(a.Path) {
			return errorEvent("ERROR_BINARY_FILE")
		}
	}
	res := x.editor.Run(EditRequest{Command: "view", Path: a.Path, ViewRange: a.ViewRange})
	return eventbus.NewObservation(eventbus.InvalidID, res.Output,
		&eventbus.FileReadObservation{Path: a.Path, ImplSource: "oh_aci"})
}

// writeFile runs a `write` action: OpenHands' line splice, parent
// directories created, the mode and owner of an existing file kept.
func (x *Executor) writeFile(a *eventbus.FileWriteAction, cwd string) *eventbus.Event {
	p := resolvePath(cwd, a.Path)
	insert := strings.Split(a.Content, "\n")
	dir := filepath.Dir(p)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := x.access.check(nearestExisting(dir), accessWrite); err != nil {
			return errorEvent(osErrorText(err))
		}
		if err := os.MkdirAll(dir, 0o775); err != nil {
			return errorEvent(osErrorText(err))
		}
		x.chownNew(dir)
	}
	st, statErr := os.Stat(p)
	exists := statErr == nil
	if exists {
		if err := x.access.check(p, accessRead|accessWrite); err != nil {
			return errorEvent(osErrorText(err))
		}
	} else if err := x.access.check(dir, accessWrite); err != nil {
		return errorEvent(osErrorText(err))
	}
	if exists && st.IsDir() {
		return errorEvent("Path is a directory: " + p + ". You can only write to files")
	}
	var newLines []string
	if exists {
		b, err := os.ReadFile(p)
		if err != nil {
			return errorEvent(osErrorText(err))
		}
		if !utf8.Valid(b) {
			return errorEvent("File could not be decoded as utf-8: " + p)
		}
		newLines = insertLines(insert, splitKeepEnds(universalNewlines(string(b))), a.Start, a.End)
	} else {
		for _, l := range insert {
			newLines = append(newLines, l+"\n")
		}
	}
	flags := os.O_WRONLY | os.O_TRUNC
	if !exists {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(p, flags, 0o664)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errorEvent("File not found: " + p)
		}
		return errorEvent(osErrorText(err))
	}
	_, err = f.WriteString(strings.Join(newLines, ""))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errorEvent(osErrorText(err))
	}
	var permErr error
	if exists {
		permErr = os.Chmod(p, st.Mode().Perm()|st.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && permErr == nil {
			permErr = os.Chown(p, int(sys.Uid), int(sys.Gid))
		}
	} else {
		permErr = os.Chmod(p, 0o664)
		if permErr == nil {
			permErr = x.chownNewErr(p)
		}
	}
	if permErr != nil {
		return errorEvent("File " + p + " written, but failed to change ownership and permissions: " + osErrorText(permErr))
	}
	return eventbus.NewObservation(eventbus.InvalidID, "", &eventbus.FileWriteObservation{Path: p})
}

// nearestExisting returns p or its closest existing ancestor.
func nearestExisting(p string) string {
	for {
		if _, err := os.Lstat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// chownNew gives a path created on the user's behalf to that user when the
// executor runs as root; failures are ignored (best effort for directories).
func (x *Executor) chownNew(p string) { _ = x.chownNewErr(p) }

func (x *Executor) chownNewErr(p string) error {
	if !x.access.asUser {
		return nil
	}
	return os.Chown(p, x.access.uid, x.access.gid)
}

// ListFiles lists path the way OpenHands' /list_files does: directories
// (with a trailing "/") first, then files, each group sorted
// case-insensitively; names only. A relative path is joined with the current
// working directory, an empty one means the working directory. Any error
// yields an empty list.
func (x *Executor) ListFiles(path string) []string {
	full := path
	if full == "" {
		full = x.Cwd()
	} else if !filepath.IsAbs(full) {
		full = filepath.Join(x.Cwd(), full)
	}
	entries, err := os.ReadDir(full)
	if err != nil {
		return []string{}
	}
	dirs, files := []string{}, []string{}
	for _, e := range entries {
		st, err := os.Stat(filepath.Join(full, e.Name()))
		if err != nil {
			continue // dangling symlink: os.path.exists is false
		}
		if st.IsDir() {
			dirs = append(dirs, e.Name()+"/")
		} else {
			files = append(files, e.Name())
		}
	}
	lower := func(l []string) {
		sort.SliceStable(l, func(i, j int) bool { return strings.ToLower(l[i]) < strings.ToLower(l[j]) })
	}
	lower(dirs)
	lower(files)
	return append(dirs, files...)
}
