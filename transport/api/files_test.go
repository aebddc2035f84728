package api

import (
	"archive/zip"
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"

	"corral/eventbus"
)

// TestDownloadThroughTheRealAPIOnTheLocalRuntime drives GET
// .../files/download against a real local sandbox (agent process, agentwire,
// the executor): a directory comes as a zip, a single file as itself, a
// missing path as a 404 JSON error, and no error text points at a path
// that would create host directories on the local runtime.
func TestDownloadThroughTheRealAPIOnTheLocalRuntime(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real local sandbox; skipped in -short mode")
	}
	f := newRealFixture(t, nil)
	id := f.readySession()
	code, b, _ := f.do("POST", "/api/sessions/"+id+"/actions?wait=true", map[string]any{"action": "run", "args": map[string]any{
		"command": "mkdir -p dl/sub && printf 'hello\\n' > dl/one.txt && printf 'PK-not-a-zip' > dl/sub/two.zip && : > dl/empty && printf 'accent' > 'dl/résumé 1.txt' && cd dl && pwd",
	}})
	obs, err := eventbus.Unmarshal(b)
	if code != 200 || err != nil {
		t.Fatalf("set-up run = %d %s (%v)", code, b, err)
	}
	dir := strings.TrimSpace(obs.Content)
	if !strings.HasPrefix(dir, "/") {
		t.Fatalf("set-up run printed %q, want the absolute directory", obs.Content)
	}
	download := "/api/sessions/" + id + "/files/download?path="

	t.Run("a directory is a zip of its files", func(t *testing.T) {
		code, b, hdr := f.do("GET", download+dir, nil)
		if code != 200 || hdr.Get("Content-Type") != "application/zip" || hdr.Get(downloadKindHeader) != "directory" || attachmentName(t, hdr) != "dl.zip" {
			t.Fatalf("= %d %v", code, hdr)
		}
		got := unzipAll(t, b)
		want := map[string]string{"one.txt": "hello\n", "sub/two.zip": "PK-not-a-zip", "empty": "", "résumé 1.txt": "accent"}
		if len(got) != len(want) {
			t.Fatalf("entries %v, want %v", keys(got), keys(want))
		}
		for n, c := range want {
			if got[n] != c {
				t.Errorf("entry %s = %q, want %q", n, got[n], c)
			}
		}
	})

	files := []struct {
		name, path, wantName, wantBody string
	}{
		{"a text file comes as itself", dir + "/one.txt", "one.txt", "hello\n"},
		{"a file named .zip comes as itself, not unpacked", dir + "/sub/two.zip", "two.zip", "PK-not-a-zip"},
		{"an empty file comes as an empty body", dir + "/empty", "empty", ""},
		{"a non-ASCII name with a space keeps its name", dir + "/" + url.PathEscape("résumé 1.txt"), "résumé 1.txt", "accent"},
		{"a path with .. in it is resolved", dir + "/sub/../one.txt", "one.txt", "hello\n"},
	}
	for _, tc := range files {
		t.Run(tc.name, func(t *testing.T) {
			code, b, hdr := f.do("GET", download+tc.path, nil)
			if code != 200 {
				t.Fatalf("= %d %s", code, b)
			}
			if hdr.Get("Content-Type") != "application/octet-stream" || hdr.Get(downloadKindHeader) != "file" || attachmentName(t, hdr) != tc.wantName {
				t.Errorf("headers %v, want an application/octet-stream attachment named %s", hdr, tc.wantName)
			}
			if string(b) != tc.wantBody || hdr.Get("Content-Length") != strconv.Itoa(len(tc.wantBody)) {
				t.Errorf("body %q (Content-Length %s), want %q", b, hdr.Get("Content-Length"), tc.wantBody)
			}
		})
	}

	errs := []struct {
		name, path string
		status     int
		code, msg  string
	}{
		{"a missing file is 404", dir + "/nope.txt", 404, "not_found", "path " + dir + "/nope.txt does not exist in the sandbox"},
		{"a path under a missing directory is 404", dir + "/no/such/dir", 404, "not_found", "does not exist in the sandbox"},
		{"a relative path is 400", "dl/one.txt", 400, "invalid_request", `path="dl/one.txt" is not an absolute path`},
		{"an empty path is 400", "", 400, "invalid_request", `path="" is not an absolute path`},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			code, b, hdr := f.do("GET", download+tc.path, nil)
			c, msg := errorCode(t, b)
			if code != tc.status || c != tc.code || !strings.Contains(msg, tc.msg) || hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("= %d %s, want %d %s containing %q", code, b, tc.status, tc.code, tc.msg)
			}
			if strings.Contains(msg, "/workspace") {
				t.Errorf("the error suggests /workspace, which the local runtime would create on the host: %s", msg)
			}
		})
	}

	t.Run("a relative upload destination names no host directory", func(t *testing.T) {
		code, b, _ := f.do("POST", "/api/sessions/"+id+"/files?destination=rel", "x", "Content-Type", "multipart/form-data; boundary=b")
		c, msg := errorCode(t, b)
		if code != 400 || c != "invalid_request" || strings.Contains(msg, "/workspace") {
			t.Fatalf("= %d %s, want 400 invalid_request without a /workspace hint", code, b)
		}
	})

	t.Run("a stopped session's download is 409, not 404", func(t *testing.T) {
		f.mustJSON("DELETE", "/api/sessions/"+id, nil, 200, nil)
		code, b, _ := f.do("GET", download+dir+"/one.txt", nil)
		if c, _ := errorCode(t, b); code != http.StatusConflict || c != "not_running" {
			t.Fatalf("= %d %s, want 409 not_running", code, b)
		}
	})
}

func attachmentName(t *testing.T, hdr http.Header) string {
	t.Helper()
	disp, params, err := mime.ParseMediaType(hdr.Get("Content-Disposition"))
	if err != nil || disp != "attachment" {
		t.Fatalf("Content-Disposition %q is not an attachment (%v)", hdr.Get("Content-Disposition"), err)
	}
	return params["filename"]
}

func unzipAll(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip (%v): %.100q", err, b)
	}
	out := map[string]string{}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		c, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[zf.Name] = string(c)
	}
	return out
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
