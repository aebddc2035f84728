package sandbox

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func gitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func initRepo(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	gitT(t, dir, "init", "-q", "-b", "main")
	for p, c := range files {
		writeTestFile(t, filepath.Join(dir, p), c)
	}
	gitT(t, dir, "add", "-A")
	gitT(t, dir, "commit", "-qm", "init")
}

func TestGitChangesReportsModifiedAddedDeletedUntrackedAndSubRepos(t *testing.T) {
	origin := t.TempDir()
	initRepo(t, origin, map[string]string{"keep.txt": "k\n", "mod.txt": "m\n", "del.txt": "d\n", "old name.txt": "same content here\n"})
	work := filepath.Join(t.TempDir(), "work")
	gitT(t, filepath.Dir(work), "clone", "-q", origin, work)
	// Committed locally but not pushed: still a change against origin/main.
	writeTestFile(t, filepath.Join(work, "committed.txt"), "c\n")
	gitT(t, work, "add", "committed.txt")
	gitT(t, work, "commit", "-qm", "local")
	writeTestFile(t, filepath.Join(work, "mod.txt"), "changed\n")
	os.Remove(filepath.Join(work, "del.txt"))
	gitT(t, work, "mv", "old name.txt", "new name.txt")
	writeTestFile(t, filepath.Join(work, "staged.txt"), "s\n")
	gitT(t, work, "add", "staged.txt")
	writeTestFile(t, filepath.Join(work, "untracked.txt"), "u\n")
	writeTestFile(t, filepath.Join(work, ".gitignore"), "ignored.log\n")
	writeTestFile(t, filepath.Join(work, "ignored.log"), "i\n")
	sub := filepath.Join(work, "sub")
	os.Mkdir(sub, 0o755)
	initRepo(t, sub, map[string]string{"s.txt": "1\n"})
	writeTestFile(t, filepath.Join(sub, "s.txt"), "2\n")
	writeTestFile(t, filepath.Join(sub, "new.txt"), "n\n")

	got, err := GitChanges(context.Background(), work)
	if err != nil {
		t.Fatal(err)
	}
	want := []GitChange{
		{"A", ".gitignore"},
		{"A", "committed.txt"},
		{"D", "del.txt"},
		{"M", "mod.txt"},
		{"A", "new name.txt"},
		{"D", "old name.txt"},
		{"A", "staged.txt"},
		{"A", "sub/new.txt"},
		{"A", "sub/s.txt"}, // no origin: compared with the empty tree, as in OpenHands
		{"A", "untracked.txt"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("changes:\n got %v\nwant %v", got, want)
	}
}

func TestGitChangesOutsideARepositoryIsEmpty(t *testing.T) {
	got, err := GitChanges(context.Background(), t.TempDir())
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("got %#v, %v", got, err)
	}
	// A repository without commits compares with the empty tree.
	dir := t.TempDir()
	gitT(t, dir, "init", "-q")
	writeTestFile(t, filepath.Join(dir, "a.txt"), "a")
	got, err = GitChanges(context.Background(), dir)
	if err != nil || !reflect.DeepEqual(got, []GitChange{{"A", "a.txt"}}) {
		t.Fatalf("fresh repo: %v, %v", got, err)
	}
}

func TestGitDiffReturnsOriginalAndModified(t *testing.T) {
	origin := t.TempDir()
	initRepo(t, origin, map[string]string{"src/f.txt": "one\ntwo\n", "gone.txt": "g\n"})
	dir := filepath.Join(t.TempDir(), "clone")
	gitT(t, filepath.Dir(dir), "clone", "-q", origin, dir)
	writeTestFile(t, filepath.Join(dir, "src", "f.txt"), "one\r\nTWO\n")
	os.Remove(filepath.Join(dir, "gone.txt"))
	writeTestFile(t, filepath.Join(dir, "big.txt"), strings.Repeat("x", maxGitDiffFile+1))
	cases := []struct {
		cwd, path string
		want      GitDiffResult
		err       error
	}{
		{dir, "src/f.txt", GitDiffResult{Modified: "one\nTWO", Original: "one\ntwo"}, nil},
		{filepath.Join(dir, "src"), "f.txt", GitDiffResult{Modified: "one\nTWO", Original: "one\ntwo"}, nil},
		{dir, "gone.txt", GitDiffResult{Modified: "", Original: "g"}, nil},
		{dir, "new.txt", GitDiffResult{}, nil},
		{dir, "big.txt", GitDiffResult{}, ErrGitFileTooLarge},
		{t.TempDir(), "x.txt", GitDiffResult{}, ErrGitNoRepository},
		{origin, "src/f.txt", GitDiffResult{Modified: "one\ntwo", Original: ""}, nil}, // no origin remote: empty tree
		{"", "x.txt", GitDiffResult{}, ErrGitNoDir},
	}
	for _, tc := range cases {
		got, err := GitDiff(context.Background(), tc.cwd, tc.path)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("GitDiff(%q, %q) = %+v, %v; want %+v, %v", tc.cwd, tc.path, got, err, tc.want, tc.err)
		}
	}
}
