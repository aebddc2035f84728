package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// GitChange is one changed file, as OpenHands' git_changes.py reports it.
type GitChange struct {
	Status string `json:"status"` // M, A, D or U
	Path   string `json:"path"`   // relative to the directory asked about
}

// GitDiffResult is OpenHands' git_diff.py result for one file.
type GitDiffResult struct {
	Modified string `json:"modified"` // current text, lines joined by "\n"
	Original string `json:"original"` // text at the reference ref, "" if none
}

// Errors of GitDiff; their texts are OpenHands' error codes.
var (
	ErrGitNoDir        = errors.New("no_dir_in_git_diff")
	ErrGitNoRepository = errors.New("no_repository")
	ErrGitFileTooLarge = errors.New("file_to_large")
)

// gitEmptyTree is git's well-known empty tree, the reference of last resort.
const gitEmptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

// maxGitDiffFile is git_diff.py's MAX_FILE_SIZE_FOR_GIT_DIFF.
const maxGitDiffFile = 1024 * 1024

// git runs git in dir without a pager or prompts and returns its stdout.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"--no-pager"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0", "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			msg = err.Error()
		}
		return "", fmt.Errorf("error_running_cmd:%d:%s", code, msg)
	}
	return stdout.String(), nil
}

// gitValidRef picks the reference to compare with, as OpenHands does: the
// first that resolves of origin/<current branch>, the merge-base of HEAD with
// origin/<default branch>, origin/<default branch>, and the empty tree.
func gitValidRef(ctx context.Context, repo string) (string, bool) {
	type candidate func() (string, error)
	var refs []candidate
	if branch, err := git(ctx, repo, "rev-parse", "--abbrev-ref", "HEAD"); err == nil {
		b := strings.TrimSpace(branch)
		refs = append(refs, func() (string, error) { return "origin/" + b, nil })
	}
	if show, err := git(ctx, repo, "remote", "show", "origin"); err == nil {
		def := ""
		for _, line := range strings.Split(show, "\n") {
			if strings.Contains(line, "HEAD branch") {
				if f := strings.Fields(line); len(f) > 0 {
					def = f[len(f)-1]
				}
			}
		}
		if def != "" {
			refs = append(refs,
				func() (string, error) {
					abbrev, err := git(ctx, repo, "rev-parse", "--abbrev-ref", "origin/"+def)
					if err != nil {
						return "", err
					}
					mb, err := git(ctx, repo, "merge-base", "HEAD", strings.TrimSpace(abbrev))
					return strings.TrimSpace(mb), err
				},
				func() (string, error) { return "origin/" + def, nil })
		}
	}
	refs = append(refs, func() (string, error) { return gitEmptyTree, nil })
	for _, c := range refs {
		ref, err := c()
		if err != nil || ref == "" {
			continue
		}
		sha, err := git(ctx, repo, "rev-parse", "--verify", "--quiet", ref)
		if err == nil && strings.TrimSpace(sha) != "" {
			return strings.TrimSpace(sha), true
		}
	}
	return "", false
}

// gitChangesInRepo lists the changes of one repository against its
// reference ref, untracked files included as "A".
func gitChangesInRepo(ctx context.Context, repo string) ([]GitChange, error) {
	ref, ok := gitValidRef(ctx, repo)
	if !ok {
		return nil, nil
	}
	// -z keeps paths with spaces or non-ASCII bytes intact (OpenHands
	// splits on whitespace and would fail on them).
	out, err := git(ctx, repo, "diff", "--name-status", "-z", ref)
	if err != nil {
		return nil, err
	}
	var changes []GitChange
	fields := strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
	if out == "" {
		fields = nil
	}
	for i := 0; i < len(fields); {
		status := fields[i]
		switch {
		case strings.HasPrefix(status, "R") && i+2 < len(fields):
			changes = append(changes, GitChange{"D", fields[i+1]}, GitChange{"A", fields[i+2]})
			i += 3
			continue
		case strings.HasPrefix(status, "C") && i+2 < len(fields):
			changes = append(changes, GitChange{"A", fields[i+2]})
			i += 3
			continue
		case i+1 >= len(fields):
			return nil, fmt.Errorf("unexpected_value_in_git_diff:%q", out)
		}
		path := fields[i+1]
		i += 2
		switch status {
		case "??":
			status = "A"
		case "*":
			status = "M"
		}
		switch status {
		case "M", "A", "D", "U":
			changes = append(changes, GitChange{status, path})
		default:
			return nil, fmt.Errorf("unexpected_status_in_git_diff:%s %s", status, path)
		}
	}
	untracked, err := git(ctx, repo, "ls-files", "--others", "--exclude-standard", "-z")
	if err != nil {
		return nil, err
	}
	for _, p := range strings.Split(untracked, "\x00") {
		if p != "" {
			changes = append(changes, GitChange{"A", p})
		}
	}
	return changes, nil
}

// GitChanges reports the files changed in the repository at cwd and in the
// repositories directly below it (./*/.git), relative to the reference ref
// OpenHands would pick, sorted by path. A directory that is not a
// repository has no changes.
func GitChanges(ctx context.Context, cwd string) ([]GitChange, error) {
	if cwd == "" {
		return nil, errors.New("GitChanges needs a directory")
	}
	matches, _ := filepath.Glob(filepath.Join(cwd, "*", ".git"))
	var subs []string
	for _, m := range matches {
		subs = append(subs, filepath.Base(filepath.Dir(m)))
	}
	sort.Strings(subs)
	top, err := gitChangesInRepo(ctx, cwd)
	if err != nil {
		return nil, err
	}
	changes := []GitChange{}
	for _, c := range top {
		inSub := false
		for _, s := range subs {
			if c.Path == s || strings.HasPrefix(c.Path, s+"/") {
				inSub = true
				break
			}
		}
		if !inSub {
			changes = append(changes, c)
		}
	}
	for _, s := range subs {
		sc, err := gitChangesInRepo(ctx, filepath.Join(cwd, s))
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", s, err)
		}
		for _, c := range sc {
			changes = append(changes, GitChange{c.Status, s + "/" + c.Path})
		}
	}
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return changes, nil
}

// GitDiff returns the current and the original text of path (relative to
// cwd, or absolute) in its closest enclosing repository, as OpenHands'
// git_diff.py does. Files over 1 MiB give ErrGitFileTooLarge, files outside
// any repository ErrGitNoRepository. A deleted file has Modified "" (OpenHands
// fails on it).
func GitDiff(ctx context.Context, cwd, path string) (GitDiffResult, error) {
	if cwd == "" {
		return GitDiffResult{}, ErrGitNoDir
	}
	p := path
	if !filepath.IsAbs(p) {
		p = filepath.Join(cwd, p)
	}
	p = resolveExisting(p)
	if st, err := os.Stat(p); err == nil && st.Size() > maxGitDiffFile {
		return GitDiffResult{}, ErrGitFileTooLarge
	}
	repo := ""
	for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
		if isDir(filepath.Join(dir, ".git")) {
			repo = dir
			break
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	if repo == "" {
		return GitDiffResult{}, ErrGitNoRepository
	}
	var res GitDiffResult
	if ref, ok := gitValidRef(ctx, repo); ok {
		rel, err := filepath.Rel(repo, p)
		if err == nil {
			if out, err := git(ctx, repo, "show", ref+":"+filepath.ToSlash(rel)); err == nil {
				res.Original = strings.TrimSpace(out)
			}
		}
	}
	if b, err := os.ReadFile(p); err == nil {
		res.Modified = strings.Join(splitLinesPy(universalNewlines(string(b))), "\n")
	} else if !errors.Is(err, os.ErrNotExist) {
		return GitDiffResult{}, fmt.Errorf("read %s: %w", p, err)
	}
	return res, nil
}

// resolveExisting is Path.resolve(strict=False): symlinks of the longest
// existing prefix are resolved, the rest is appended.
func resolveExisting(p string) string {
	p = filepath.Clean(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	parent := filepath.Dir(p)
	if parent == p {
		return p
	}
	return filepath.Join(resolveExisting(parent), filepath.Base(p))
}
