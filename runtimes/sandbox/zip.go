package sandbox

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// UploadZip stores an upload under dest the way OpenHands' /upload_file
// does: dest must be absolute and is created if missing; when recursive is
// set or filename ends in ".zip" the upload must be a zip archive, which is
// unpacked into dest (and not kept); otherwise it is saved as
// dest/<filename>. Uploads and unpacked contents are limited by
// WithMaxTransferBytes. Archives with entries that would land outside dest
// are refused: absolute names and ".." before anything is written, an entry
// leading through a symlink out of dest when it is reached.
func (x *Executor) UploadZip(dest string, r io.Reader, filename string, recursive bool) error {
	if !filepath.IsAbs(dest) {
		return fmt.Errorf("upload destination must be an absolute path, got %q", dest)
	}
	dest = filepath.Clean(dest)
	name := filename
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("upload file name %q is not a plain file name (no directories, not empty)", filename)
	}
	if err := x.access.check(nearestExisting(dest), accessWrite); err != nil {
		return fmt.Errorf("upload to %s: %w", dest, err)
	}
	if err := os.MkdirAll(dest, 0o775); err != nil {
		return fmt.Errorf("create upload destination: %w", err)
	}
	isZip := strings.HasSuffix(name, ".zip")
	if recursive && !isZip {
		return fmt.Errorf("recursive uploads must be zip files, got %q", filename)
	}
	if !isZip {
		target := filepath.Join(dest, name)
		if err := x.access.check(target, accessWrite); err != nil {
			return fmt.Errorf("upload to %s: %w", target, err)
		}
		if err := x.saveLimited(target, r); err != nil {
			return err
		}
		x.chownNew(target)
		return nil
	}
	tmp, err := os.CreateTemp("", "corral-upload-*.zip")
	if err != nil {
		return fmt.Errorf("buffer upload: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(r, x.cfg.maxTransfer+1))
	if err != nil {
		return fmt.Errorf("receive upload %s: %w", filename, err)
	}
	if n > x.cfg.maxTransfer {
		return fmt.Errorf("upload %s exceeds the limit of %d bytes", filename, x.cfg.maxTransfer)
	}
	zr, err := zip.NewReader(tmp, n)
	if err != nil {
		return fmt.Errorf("upload %s is not a valid zip archive: %w", filename, err)
	}
	return x.extractZip(zr, dest)
}

// saveLimited writes r to target, refusing more than the transfer limit.
func (x *Executor) saveLimited(target string, r io.Reader) (err error) {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o664)
	if err != nil {
		return fmt.Errorf("save upload: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("save upload: %w", cerr)
		}
		if err != nil {
			os.Remove(target)
		}
	}()
	n, err := io.Copy(f, io.LimitReader(r, x.cfg.maxTransfer+1))
	if err != nil {
		return fmt.Errorf("save upload to %s: %w", target, err)
	}
	if n > x.cfg.maxTransfer {
		return fmt.Errorf("upload to %s exceeds the limit of %d bytes", target, x.cfg.maxTransfer)
	}
	return nil
}

// zipEntryPath validates an archive entry name and returns its slash path
// relative to the destination.
func zipEntryPath(name string) (string, error) {
	n := strings.ReplaceAll(name, "\\", "/")
	if n == "" || strings.HasPrefix(n, "/") || strings.Contains(n, "\x00") || (len(n) > 1 && n[1] == ':') {
		return "", fmt.Errorf("zip entry %q has an absolute or invalid name; refusing to unpack the archive", name)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("zip entry %q would be written outside the destination (\"..\"); refusing to unpack the archive", name)
		}
	}
	return path.Clean(n), nil
}

func (x *Executor) extractZip(zr *zip.Reader, dest string) error {
	realDest, err := filepath.EvalSymlinks(dest)
	if err != nil {
		return fmt.Errorf("resolve upload destination: %w", err)
	}
	var total uint64
	for _, f := range zr.File {
		if _, err := zipEntryPath(f.Name); err != nil {
			return err
		}
		total += f.UncompressedSize64
	}
	if total > uint64(x.cfg.maxTransfer) {
		return fmt.Errorf("zip archive unpacks to %d bytes, more than the limit of %d bytes", total, x.cfg.maxTransfer)
	}
	var written int64
	for _, f := range zr.File {
		rel, _ := zipEntryPath(f.Name)
		if rel == "." {
			continue
		}
		target := filepath.Join(dest, filepath.FromSlash(rel))
		isDirEntry := strings.HasSuffix(f.Name, "/") || f.FileInfo().IsDir()
		parent := target
		if !isDirEntry {
			parent = filepath.Dir(target)
		}
		if err := os.MkdirAll(parent, 0o775); err != nil {
			return fmt.Errorf("unpack %s: %w", f.Name, err)
		}
		// A symlink already in dest must not carry an entry outside it.
		realParent, err := filepath.EvalSymlinks(parent)
		if err != nil {
			return fmt.Errorf("unpack %s: %w", f.Name, err)
		}
		if realParent != realDest && !strings.HasPrefix(realParent, realDest+string(filepath.Separator)) {
			return fmt.Errorf("zip entry %q would be written outside the destination through a symlink; refusing it", f.Name)
		}
		if err := x.access.check(parent, accessWrite); err != nil {
			return fmt.Errorf("unpack %s: %w", f.Name, err)
		}
		if isDirEntry {
			x.chownNew(target)
			continue
		}
		if st, err := os.Lstat(target); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			if err := os.Remove(target); err != nil {
				return fmt.Errorf("unpack %s: replace symlink: %w", f.Name, err)
			}
		}
		n, err := x.extractOne(f, target, x.cfg.maxTransfer-written)
		written += n
		if err != nil {
			return err
		}
	}
	return nil
}

func (x *Executor) extractOne(f *zip.File, target string, budget int64) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("unpack %s: %w", f.Name, err)
	}
	defer rc.Close()
	perm := f.Mode().Perm()
	if perm == 0 {
		perm = 0o664
	}
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return 0, fmt.Errorf("unpack %s: %w", f.Name, err)
	}
	// Entry sizes in the directory can lie; the budget bounds real bytes.
	n, err := io.Copy(out, io.LimitReader(rc, budget+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("unpack %s: %w", f.Name, err)
	}
	if n > budget {
		return n, fmt.Errorf("zip archive unpacks to more than the limit of %d bytes", x.cfg.maxTransfer)
	}
	x.chownNew(target)
	return n, nil
}

// SingleFileComment is the comment of an archive DownloadZip made of a
// single file (not a directory). It lets a reader of the archive (the public
// API) serve that file as itself, which the entry alone cannot say: a
// directory holding one file of its own name gives the same entry.
const SingleFileComment = "corral: the download path is this one file"

// SingleFile returns the file of an archive DownloadZip made of a single
// file, and false for a directory's archive (or any other zip).
func SingleFile(zr *zip.Reader) (*zip.File, bool) {
	if zr.Comment != SingleFileComment || len(zr.File) != 1 {
		return nil, false
	}
	return zr.File[0], true
}

// DownloadZip writes a zip of the files under path to w, as OpenHands'
// /download_files does: path must be absolute and exist (a missing path is
// an error that wraps fs.ErrNotExist); entries are relative to path;
// symlinked directories are not followed, dangling symlinks are skipped.
// A single file yields an archive holding it under its base name, marked
// with SingleFileComment (OpenHands walks directories only and sends an
// empty archive, losing the file). The packed bytes are limited by
// WithMaxTransferBytes. On an error part of the archive may already have
// been written.
func (x *Executor) DownloadZip(w io.Writer, root string) error {
	if !filepath.IsAbs(root) {
		return fmt.Errorf("download path must be an absolute path, got %q", root)
	}
	st, err := os.Stat(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("download path %s: %w", root, fs.ErrNotExist)
		}
		return fmt.Errorf("download %s: %w", root, err)
	}
	if err := x.access.check(root, accessRead); err != nil {
		return fmt.Errorf("download %s: %w", root, err)
	}
	zw := zip.NewWriter(w)
	if st.IsDir() {
		err = x.zipDir(zw, root)
	} else {
		err = x.zipOneFile(zw, root, st)
	}
	if err != nil {
		zw.Close()
		return fmt.Errorf("download %s: %w", root, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("download %s: finish zip: %w", root, err)
	}
	return nil
}

func (x *Executor) zipDir(zw *zip.Writer, root string) error {
	var total int64
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fst, err := os.Stat(p) // follows file symlinks like zipfile.write
		if err != nil {
			return nil
		}
		if fst.IsDir() {
			return nil // symlink to a directory: os.walk does not descend
		}
		if err := x.access.check(p, accessRead); err != nil {
			return err
		}
		total += fst.Size()
		if total > x.cfg.maxTransfer {
			return fmt.Errorf("download of %s exceeds the limit of %d bytes", root, x.cfg.maxTransfer)
		}
		rel, _ := filepath.Rel(root, p)
		return addZipFile(zw, p, filepath.ToSlash(rel), fst)
	})
}

func (x *Executor) zipOneFile(zw *zip.Writer, p string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is neither a regular file nor a directory (%s); only those can be downloaded", p, st.Mode().Type())
	}
	if st.Size() > x.cfg.maxTransfer {
		return fmt.Errorf("download of %s (%d bytes) exceeds the limit of %d bytes", p, st.Size(), x.cfg.maxTransfer)
	}
	if err := zw.SetComment(SingleFileComment); err != nil {
		return err
	}
	return addZipFile(zw, p, filepath.Base(p), st)
}

func addZipFile(zw *zip.Writer, p, name string, st fs.FileInfo) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr, err := zip.FileInfoHeader(st)
	if err != nil {
		return err
	}
	hdr.Name = name
	hdr.Method = zip.Deflate
	zwf, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	_, err = io.Copy(zwf, f)
	return err
}
