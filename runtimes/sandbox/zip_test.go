package sandbox

import (
	"archive/zip"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[n]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipEntries(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		var c bytes.Buffer
		c.ReadFrom(rc)
		rc.Close()
		out[f.Name] = c.String()
	}
	return out
}

func TestUploadZipThenDownloadZipRoundTrips(t *testing.T) {
	x, dir := newTestExecutor(t)
	files := map[string]string{"a.txt": "A", "sub/b.txt": "B", "sub/deeper/c.bin": "\x00\x01"}
	dest := filepath.Join(dir, "up")
	if err := x.UploadZip(dest, bytes.NewReader(zipOf(t, files)), "bundle.zip", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dest, "bundle.zip")); !os.IsNotExist(err) {
		t.Fatal("the uploaded zip must not be kept")
	}
	var out bytes.Buffer
	if err := x.DownloadZip(&out, dest); err != nil {
		t.Fatal(err)
	}
	got := zipEntries(t, out.Bytes())
	if len(got) != len(files) {
		t.Fatalf("entries %v", got)
	}
	for n, c := range files {
		if got[n] != c {
			t.Fatalf("entry %s = %q, want %q", n, got[n], c)
		}
	}
	// A directory's archive is not taken for a single file's.
	zr, err := zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := SingleFile(zr); ok {
		t.Fatalf("SingleFile of a directory's archive = %s, true", f.Name)
	}
	// A single file downloads as an archive holding it (OpenHands sends an
	// empty one), marked so that SingleFile finds it.
	out.Reset()
	if err := x.DownloadZip(&out, filepath.Join(dest, "sub", "b.txt")); err != nil {
		t.Fatal(err)
	}
	if got := zipEntries(t, out.Bytes()); len(got) != 1 || got["b.txt"] != "B" {
		t.Fatalf("single file zip has entries %v, want b.txt = B", got)
	}
	zr, err = zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := SingleFile(zr); !ok || f.Name != "b.txt" {
		t.Fatalf("SingleFile of a single file's archive = %v, %v", f, ok)
	}
	// A plain upload is stored under its name.
	if err := x.UploadZip(dest, strings.NewReader("plain"), "note.md", false); err != nil {
		t.Fatal(err)
	}
	if readTestFile(t, filepath.Join(dest, "note.md")) != "plain" {
		t.Fatal("plain upload content")
	}
}

func TestUploadZipRejectsBadInput(t *testing.T) {
	x, dir := newTestExecutor(t, WithMaxTransferBytes(1000))
	outside := filepath.Join(filepath.Dir(dir), "escaped.txt")
	os.Symlink("/tmp", filepath.Join(dir, "link"))
	cases := []struct {
		name      string
		dest      string
		body      []byte
		filename  string
		recursive bool
		want      string
	}{
		{"relative destination", "rel", nil, "a.txt", false, `upload destination must be an absolute path, got "rel"`},
		{"recursive non-zip", dir, []byte("x"), "a.txt", true, `recursive uploads must be zip files, got "a.txt"`},
		{"file name with a directory", dir, []byte("x"), "../a.txt", false, `upload file name "../a.txt" is not a plain file name`},
		{"not a zip", dir, []byte("not a zip"), "x.zip", false, "upload x.zip is not a valid zip archive"},
		{"zip slip with dot-dot", dir, zipOf(t, map[string]string{"ok.txt": "1", "../escaped.txt": "evil"}), "s.zip", true, `zip entry "../escaped.txt" would be written outside the destination`},
		{"zip slip with absolute name", dir, zipOf(t, map[string]string{"/etc/evil": "x"}), "s.zip", true, `zip entry "/etc/evil" has an absolute or invalid name`},
		{"zip slip through a symlink", dir, zipOf(t, map[string]string{"link/evil.txt": "x"}), "s.zip", true, `zip entry "link/evil.txt" would be written outside the destination through a symlink`},
		{"upload over the limit", dir, bytes.Repeat([]byte("x"), 2000), "big.txt", false, "exceeds the limit of 1000 bytes"},
		{"zip unpacking over the limit", dir, zipOf(t, map[string]string{"big": strings.Repeat("x", 5000)}), "b.zip", true, "unpacks to 5000 bytes, more than the limit of 1000 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := x.UploadZip(tc.dest, bytes.NewReader(tc.body), tc.filename, tc.recursive)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Fatal("zip slip wrote outside the destination")
	}
	if _, err := os.Stat(filepath.Join(dir, "ok.txt")); !os.IsNotExist(err) {
		t.Fatal("a refused archive must not be partly unpacked")
	}
	if _, err := os.Stat("/tmp/evil.txt"); err == nil {
		t.Fatal("wrote through the symlink")
	}
	if _, err := os.Stat(filepath.Join(dir, "big.txt")); !os.IsNotExist(err) {
		t.Fatal("an oversized upload must be removed")
	}
}

func TestDownloadZipErrors(t *testing.T) {
	x, dir := newTestExecutor(t, WithMaxTransferBytes(10))
	writeTestFile(t, filepath.Join(dir, "d", "big.txt"), strings.Repeat("x", 50))
	var out bytes.Buffer
	for _, tc := range []struct{ path, want string }{
		{"rel", `download path must be an absolute path, got "rel"`},
		{filepath.Join(dir, "missing"), "download path " + filepath.Join(dir, "missing") + ": file does not exist"},
		{filepath.Join(dir, "d"), "exceeds the limit of 10 bytes"},
		{filepath.Join(dir, "d", "big.txt"), "(50 bytes) exceeds the limit of 10 bytes"},
		{"/dev/null", "/dev/null is neither a regular file nor a directory"},
	} {
		if err := x.DownloadZip(&out, tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DownloadZip(%q) = %v, want %q", tc.path, err, tc.want)
		}
	}
	// A missing path is fs.ErrNotExist, so every transport can answer 404.
	if err := x.DownloadZip(&out, filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DownloadZip of a missing path = %v, want it to wrap fs.ErrNotExist", err)
	}
}
