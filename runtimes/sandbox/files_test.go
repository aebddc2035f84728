package sandbox

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"corral/eventbus"
)

func TestIsBinaryBytesFollowsBinaryornot(t *testing.T) {
	cases := []struct {
		name string
		data string
		want bool
	}{
		{"empty", "", false},
		{"ascii text", "hello world\n\tindented\r\n", false},
		{"utf-8 text", "héllo wörld ✓ 😀 plain text", false},
		{"nul byte", "text\x00more text", true},
		{"0xff byte", "text\xffmore", true},
		{"mostly control bytes", "\x01\x02\x03\x04\x05\x06\x07\x0e\x0f\x10", true},
		{"png header", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", true},
		{"latin-1 text without nul", "caf\xe9 cr\xe8me br\xfbl\xe9e", false},
	}
	for _, tc := range cases {
		if got := isBinaryBytes([]byte(tc.data)); got != tc.want {
			t.Errorf("%s: isBinaryBytes = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRootExecutorRefusesPathsItsUserMayNotTouch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the check only applies when the executor runs as root for another user (kernel enforces it otherwise; see TestWriteModesParentsAndErrors)")
	}
	name := xLoginUser(t)
	dir := t.TempDir()
	// t.TempDir's parent is private to root; the user must reach dir.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	x, err := New(context.Background(), WithWorkDir(dir), WithUser(name), WithPython("/usr/bin/python3"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	secret := filepath.Join(dir, "secret.txt")
	writeTestFile(t, secret, "s3cret")
	os.Chmod(secret, 0o600)
	xWantError(t, xExec(t, x, &eventbus.FileReadAction{Path: secret, End: -1}), "[Errno 13] Permission denied: '"+secret+"'", "")
	xWantError(t, xExec(t, x, &eventbus.FileWriteAction{Path: secret, Content: "x", End: -1}), "[Errno 13] Permission denied: '"+secret+"'", "")
	xWantError(t, xExec(t, x, &eventbus.FileEditAction{Command: "view", Path: secret}), "[Errno 13] Permission denied: '"+secret+"'", "")
	if readTestFile(t, secret) != "s3cret" {
		t.Fatal("secret was changed")
	}
	// A directory the user can write to: new files belong to the user.
	shared := filepath.Join(dir, "shared")
	os.Mkdir(shared, 0o755)
	os.Chmod(shared, 0o777)
	obs := xExec(t, x, &eventbus.FileWriteAction{Path: filepath.Join(shared, "n.txt"), Content: "x", End: -1})
	if _, ok := obs.Observation.(*eventbus.FileWriteObservation); !ok {
		t.Fatalf("write in shared dir: %s %q", obs.Type(), obs.Content)
	}
	st, _ := os.Stat(filepath.Join(shared, "n.txt"))
	if owner := fileOwner(st); owner != x.access.uid {
		t.Fatalf("new file owned by %d, want %d", owner, x.access.uid)
	}
	if o := xRun(t, x, "whoami"); !strings.Contains(o.Content, name) {
		t.Fatalf("shell user: %q", o.Content)
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		if got := cell(t, x, "import os\nos.getuid()", 0, false); got != strconv.Itoa(x.access.uid) {
			t.Fatalf("python runs as uid %s, want %d", got, x.access.uid)
		}
	}
}

// loginUser returns a non-root user with a login shell, which the bash
// session needs (su USER -).
func xLoginUser(t *testing.T) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		t.Skip("no /etc/passwd:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), ":")
		if len(p) == 7 && p[2] != "0" && strings.HasSuffix(p[6], "sh") {
			return p[0]
		}
	}
	t.Skip("no non-root user with a login shell on this machine")
	return ""
}
