package sandbox

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func strp(s string) *string { return &s }
func intp(n int) *int       { return &n }

func writeTestFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEditorCommandsProduceOpenHandsTexts(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "test.txt")
	two := "This is a test file.\nThis file is for testing purposes."
	cases := []struct {
		name    string
		setup   string // initial content of test.txt; "-" = absent
		req     EditRequest
		want    string
		wantErr bool
		after   string // expected file content afterwards ("" = don't check)
	}{
		{
			name: "view file numbers lines like cat -n", setup: two,
			req:  EditRequest{Command: "view", Path: f},
			want: "Here's the result of running `cat -n` on " + f + ":\n     1\tThis is a test file.\n     2\tThis file is for testing purposes.\n",
		},
		{
			name: "view file with trailing newline shows an empty last line", setup: "a\n",
			req:  EditRequest{Command: "view", Path: f},
			want: "Here's the result of running `cat -n` on " + f + ":\n     1\ta\n     2\t\n",
		},
		{
			name: "view range", setup: "l1\nl2\nl3\nl4\n",
			req:  EditRequest{Command: "view", Path: f, ViewRange: []int{2, 3}},
			want: "Here's the result of running `cat -n` on " + f + ":\n     2\tl2\n     3\tl3\n",
		},
		{
			name: "view range to end with -1", setup: "l1\nl2\nl3\n",
			req:  EditRequest{Command: "view", Path: f, ViewRange: []int{2, -1}},
			want: "Here's the result of running `cat -n` on " + f + ":\n     2\tl2\n     3\tl3\n",
		},
		{
			name: "view range past the end warns first", setup: "l1\nl2\n",
			req:  EditRequest{Command: "view", Path: f, ViewRange: []int{1, 9}},
			want: "NOTE: We only show up to 2 since there're only 2 lines in this file.\nHere's the result of running `cat -n` on " + f + ":\n     1\tl1\n     2\tl2\n",
		},
		{
			name: "view range start out of range", setup: "l1\nl2\n", wantErr: true,
			req:  EditRequest{Command: "view", Path: f, ViewRange: []int{3, 4}},
			want: "ERROR:\nInvalid `view_range` parameter: [3, 4]. Its first element `3` should be within the range of lines of the file: [1, 2].",
		},
		{
			name: "view range end before start", setup: "l1\nl2\nl3\n", wantErr: true,
			req:  EditRequest{Command: "view", Path: f, ViewRange: []int{3, 2}},
			want: "ERROR:\nInvalid `view_range` parameter: [3, 2]. Its second element `2` should be greater than or equal to the first element `3`.",
		},
		{
			name: "view range needs two numbers", setup: "l1\n", wantErr: true,
			req:  EditRequest{Command: "view", Path: f, ViewRange: []int{1}},
			want: "ERROR:\nInvalid `view_range` parameter: [1]. It should be a list of two integers.",
		},
		{
			name: "relative path is refused", setup: two, wantErr: true,
			req:  EditRequest{Command: "view", Path: "test.txt"},
			want: "ERROR:\nInvalid `path` parameter: test.txt. The path should be an absolute path, starting with `/`. Maybe you meant " + f + "?",
		},
		{
			name: "relative path without a match gets no suggestion", setup: two, wantErr: true,
			req:  EditRequest{Command: "view", Path: "nope.txt"},
			want: "ERROR:\nInvalid `path` parameter: nope.txt. The path should be an absolute path, starting with `/`.",
		},
		{
			name: "missing path", setup: "-", wantErr: true,
			req:  EditRequest{Command: "view", Path: f},
			want: "ERROR:\nInvalid `path` parameter: " + f + ". The path " + f + " does not exist. Please provide a valid path.",
		},
		{
			name: "create writes the file", setup: "-",
			req:  EditRequest{Command: "create", Path: f, FileText: strp("hello\nworld\n")},
			want: "File created successfully at: " + f, after: "hello\nworld\n",
		},
		{
			name: "create refuses to overwrite", setup: two, wantErr: true,
			req:  EditRequest{Command: "create", Path: f, FileText: strp("x")},
			want: "ERROR:\nInvalid `path` parameter: " + f + ". File already exists at: " + f + ". Cannot overwrite files using command `create`.",
		},
		{
			name: "create needs file_text", setup: "-", wantErr: true,
			req:  EditRequest{Command: "create", Path: f},
			want: "ERROR:\nParameter `file_text` is required for command: create.",
		},
		{
			name: "create into a missing directory fails with the OS error", setup: "-", wantErr: true,
			req:  EditRequest{Command: "create", Path: filepath.Join(dir, "no", "x.txt"), FileText: strp("x")},
			want: "ERROR:\nRan into [Errno 2] No such file or directory: '" + filepath.Join(dir, "no", "x.txt") + "' while trying to write to " + filepath.Join(dir, "no", "x.txt"),
		},
		{
			name: "str_replace shows a snippet", setup: "def test():\n\tprint(\"Hello, World!\")",
			req:   EditRequest{Command: "str_replace", Path: f, OldStr: strp("def test():\n\tprint(\"Hello, World!\")"), NewStr: strp("def test():\n\tprint(\"Hello, Universe!\")")},
			want:  "The file " + f + " has been edited. Here's the result of running `cat -n` on a snippet of " + f + ":\n     1\tdef test():\n     2\t\tprint(\"Hello, Universe!\")\nReview the changes and make sure they are as expected. Edit the file again if necessary.",
			after: "def test():\n\tprint(\"Hello, Universe!\")",
		},
		{
			name: "str_replace snippet starts 3 lines above as OHEditor does", setup: "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
			req:   EditRequest{Command: "str_replace", Path: f, OldStr: strp("6\n"), NewStr: strp("six\n")},
			want:  "The file " + f + " has been edited. Here's the result of running `cat -n` on a snippet of " + f + ":\n     3\t3\n     4\t4\n     5\t5\n     6\tsix\n     7\t7\n     8\t8\n     9\t9\n    10\t10\n    11\t\nReview the changes and make sure they are as expected. Edit the file again if necessary.",
			after: "1\n2\n3\n4\n5\nsix\n7\n8\n9\n10\n",
		},
		{
			name: "str_replace with no match", setup: two, wantErr: true,
			req:  EditRequest{Command: "str_replace", Path: f, OldStr: strp("nope"), NewStr: strp("x")},
			want: "ERROR:\nNo replacement was performed, old_str `nope` did not appear verbatim in " + f + ".",
		},
		{
			name: "str_replace retries without surrounding whitespace", setup: "a b c\n",
			req:   EditRequest{Command: "str_replace", Path: f, OldStr: strp("  b  "), NewStr: strp(" B ")},
			want:  "The file " + f + " has been edited. Here's the result of running `cat -n` on a snippet of " + f + ":\n     1\ta B c\n     2\t\nReview the changes and make sure they are as expected. Edit the file again if necessary.",
			after: "a B c\n",
		},
		{
			name: "str_replace with several matches", setup: "test\ntest\nother\n", wantErr: true,
			req:  EditRequest{Command: "str_replace", Path: f, OldStr: strp("test"), NewStr: strp("x")},
			want: "ERROR:\nNo replacement was performed. Multiple occurrences of old_str `test` in lines [1, 2]. Please ensure it is unique.",
		},
		{
			name: "str_replace with empty old_str matches every line", setup: "Line 1\nLine 2\nLine 3\n", wantErr: true,
			req:  EditRequest{Command: "str_replace", Path: f, OldStr: strp(""), NewStr: strp("x")},
			want: "ERROR:\nNo replacement was performed. Multiple occurrences of old_str `` in lines [1, 2, 3, 4]. Please ensure it is unique.",
		},
		{
			name: "str_replace with identical strings", setup: two, wantErr: true,
			req:  EditRequest{Command: "str_replace", Path: f, OldStr: strp("test"), NewStr: strp("test")},
			want: "ERROR:\nInvalid `new_str` parameter: test. No replacement was performed. `new_str` and `old_str` must be different.",
		},
		{
			name: "str_replace needs old_str", setup: two, wantErr: true,
			req:  EditRequest{Command: "str_replace", Path: f, NewStr: strp("x")},
			want: "ERROR:\nParameter `old_str` is required for command: str_replace.",
		},
		{
			name: "str_replace without new_str deletes", setup: "keep drop keep\n",
			req:   EditRequest{Command: "str_replace", Path: f, OldStr: strp(" drop")},
			want:  "The file " + f + " has been edited. Here's the result of running `cat -n` on a snippet of " + f + ":\n     1\tkeep keep\n     2\t\nReview the changes and make sure they are as expected. Edit the file again if necessary.",
			after: "keep keep\n",
		},
		{
			name: "insert after a line", setup: "Line 1\nLine 2\n",
			req:   EditRequest{Command: "insert", Path: f, InsertLine: intp(1), NewStr: strp("New")},
			want:  "The file " + f + " has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n     1\tLine 1\n     2\tNew\n     3\tLine 2\n     4\t\nReview the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
			after: "Line 1\nNew\nLine 2\n",
		},
		{
			name: "insert at the top", setup: "a\n",
			req:   EditRequest{Command: "insert", Path: f, InsertLine: intp(0), NewStr: strp("top")},
			want:  "The file " + f + " has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n     1\ttop\n     2\ta\n     3\t\nReview the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
			after: "top\na\n",
		},
		{
			name: "insert line out of range", setup: "a\nb\n", wantErr: true,
			req:  EditRequest{Command: "insert", Path: f, InsertLine: intp(5), NewStr: strp("x")},
			want: "ERROR:\nInvalid `insert_line` parameter: 5. It should be within the range of allowed values: [0, 2]",
		},
		{
			name: "insert needs insert_line", setup: "a\n", wantErr: true,
			req:  EditRequest{Command: "insert", Path: f, NewStr: strp("x")},
			want: "ERROR:\nParameter `insert_line` is required for command: insert.",
		},
		{
			name: "insert needs new_str", setup: "a\n", wantErr: true,
			req:  EditRequest{Command: "insert", Path: f, InsertLine: intp(0)},
			want: "ERROR:\nParameter `new_str` is required for command: insert.",
		},
		{
			name: "undo without history", setup: two, wantErr: true,
			req:  EditRequest{Command: "undo_edit", Path: f},
			want: "ERROR:\nNo edit history found for " + f + ".",
		},
		{
			name: "unknown command", setup: two, wantErr: true,
			req:  EditRequest{Command: "explode", Path: f},
			want: "ERROR:\nUnrecognized command explode. The allowed commands for the oh_editor tool are: view, create, str_replace, insert, undo_edit",
		},
		{
			name: "edit of a directory", setup: "-", wantErr: true,
			req:  EditRequest{Command: "str_replace", Path: dir, OldStr: strp("a"), NewStr: strp("b")},
			want: "ERROR:\nInvalid `path` parameter: " + dir + ". The path " + dir + " is a directory and only the `view` command can be used on directories.",
		},
		{
			name: "binary file is refused", setup: "\x00\x01\x02\x03binary\x00\xff", wantErr: true,
			req:  EditRequest{Command: "view", Path: f},
			want: "ERROR:\nFile validation failed for " + f + ": File appears to be binary and this file type cannot be read or edited by this tool.",
		},
		{
			name: "supported binary types are view-only", setup: "-", wantErr: true,
			req:  EditRequest{Command: "create", Path: filepath.Join(dir, "doc.pdf"), FileText: strp("x")},
			want: "ERROR:\nInvalid `path` parameter: " + filepath.Join(dir, "doc.pdf") + ". The path " + filepath.Join(dir, "doc.pdf") + " points to a binary file (.pdf) and only the `view` command can be used on supported binary files.",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(f)
			if tc.setup != "-" {
				writeTestFile(t, f, tc.setup)
			}
			ed := NewEditor(dir)
			res := ed.Run(tc.req)
			if res.Output != tc.want {
				t.Fatalf("output:\n got %q\nwant %q", res.Output, tc.want)
			}
			if res.IsError != tc.wantErr {
				t.Fatalf("IsError = %v, want %v", res.IsError, tc.wantErr)
			}
			if tc.after != "" {
				if got := readTestFile(t, f); got != tc.after {
					t.Fatalf("file content %q, want %q", got, tc.after)
				}
			}
		})
	}
}

func TestEditorViewDirectoryListsTwoLevelsAndCountsHidden(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "test.txt"), "x")
	writeTestFile(t, filepath.Join(dir, ".downloads", "f"), "x")
	writeTestFile(t, filepath.Join(dir, "sub", "a.go"), "x")
	writeTestFile(t, filepath.Join(dir, "sub", ".hidden"), "x")
	writeTestFile(t, filepath.Join(dir, "sub", "deep", "too-deep.txt"), "x")
	res := NewEditor(dir).Run(EditRequest{Command: "view", Path: dir + "/"})
	want := "Here's the files and directories up to 2 levels deep in " + dir + ", excluding hidden items:\n" +
		dir + "/\n" + dir + "/sub/\n" + dir + "/sub/a.go\n" + dir + "/sub/deep/\n" + dir + "/test.txt\n\n" +
		"1 hidden files/directories in this directory are excluded. You can use 'ls -la " + dir + "' to see them."
	if res.Output != want {
		t.Fatalf("got\n%s\nwant\n%s", res.Output, want)
	}
	res = NewEditor(dir).Run(EditRequest{Command: "view", Path: dir, ViewRange: []int{1, 2}})
	if want := "ERROR:\nInvalid `view_range` parameter: [1, 2]. The `view_range` parameter is not allowed when `path` points to a directory."; res.Output != want {
		t.Fatalf("got %q", res.Output)
	}
}

func TestEditorUndoRestoresEachPreviousVersion(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "u.txt")
	ed := NewEditor(dir)
	if r := ed.Run(EditRequest{Command: "create", Path: f, FileText: strp("v1\n")}); r.IsError {
		t.Fatal(r.Output)
	}
	ed.Run(EditRequest{Command: "str_replace", Path: f, OldStr: strp("v1"), NewStr: strp("v2")})
	ed.Run(EditRequest{Command: "insert", Path: f, InsertLine: intp(1), NewStr: strp("v3")})
	if got := readTestFile(t, f); got != "v2\nv3\n" {
		t.Fatalf("content %q", got)
	}
	r := ed.Run(EditRequest{Command: "undo_edit", Path: f})
	want := "Last edit to " + f + " undone successfully. Here's the result of running `cat -n` on " + f + ":\n     1\tv2\n     2\t\n"
	if r.Output != want {
		t.Fatalf("got %q\nwant %q", r.Output, want)
	}
	if *r.OldContent != "v2\nv3\n" || *r.NewContent != "v2\n" {
		t.Fatalf("old/new content %q %q", *r.OldContent, *r.NewContent)
	}
	ed.Run(EditRequest{Command: "undo_edit", Path: f})
	if got := readTestFile(t, f); got != "v1\n" {
		t.Fatalf("after second undo %q", got)
	}
	// The create itself is in the history (as in OHEditor): undo keeps v1.
	ed.Run(EditRequest{Command: "undo_edit", Path: f})
	if got := readTestFile(t, f); got != "v1\n" {
		t.Fatalf("after third undo %q", got)
	}
	if r := ed.Run(EditRequest{Command: "undo_edit", Path: f}); r.Output != "ERROR:\nNo edit history found for "+f+"." {
		t.Fatalf("fourth undo: %q", r.Output)
	}
}

func TestEditorClipsLongOutputAndRefusesHugeFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "long.txt")
	writeTestFile(t, f, strings.Repeat("x", 20000))
	r := NewEditor(dir).Run(EditRequest{Command: "view", Path: f})
	if !strings.HasSuffix(r.Output, textFileTruncatedNotice+"\n") || !strings.Contains(r.Output, "\t"+strings.Repeat("x", 16000)+"<response clipped>") {
		t.Fatalf("not clipped at 16000 chars: ...%q", r.Output[len(r.Output)-300:])
	}
	big := filepath.Join(dir, "big.txt")
	writeTestFile(t, big, strings.Repeat("a\n", 6*1024*1024))
	r = NewEditor(dir).Run(EditRequest{Command: "view", Path: big})
	if want := "ERROR:\nFile validation failed for " + big + ": File is too large (12.0MB). Maximum allowed size is 10MB."; r.Output != want {
		t.Fatalf("got %q", r.Output)
	}
}

// TestEditDiffMatchesPythonDifflib compares editDiff with CPython's difflib
// (as openhands_aci.utils.diff.get_diff calls it) on random edits.
func TestEditDiffMatchesPythonDifflib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required for this test: ", err)
	}
	rng := rand.New(rand.NewSource(7))
	words := []string{"a", "b", "c", "", "  x", "def f():", "return 1", "}", "{"}
	gen := func(n int) string {
		var l []string
		for range n {
			l = append(l, words[rng.Intn(len(words))])
		}
		return strings.Join(l, "\n")
	}
	type pair struct {
		A string `json:"a"`
		B string `json:"b"`
	}
	pairs := []pair{{"", ""}, {"", "new\nfile\n"}, {"a\nb\n", ""}, {"same", "same"}}
	for range 40 {
		pairs = append(pairs, pair{gen(rng.Intn(30)), gen(rng.Intn(30))})
	}
	// Large inputs exercise the autojunk heuristic (>= 200 lines).
	pairs = append(pairs, pair{gen(400), gen(420)})
	in, _ := json.Marshal(pairs)
	// One interpreter for all pairs: starting python is the slow part.
	script := `import difflib,json,sys
out=[]
for p in json.load(sys.stdin):
    d=difflib.unified_diff(p['a'].split('\n'), p['b'].split('\n'), fromfile='/w/f.py', tofile='/w/f.py', n=0)
    out.append('\n'.join(x.rstrip() for x in d))
json.dump(out, sys.stdout)`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	raw, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	if err := json.Unmarshal(raw, &want); err != nil || len(want) != len(pairs) {
		t.Fatalf("python output: %v (%d results)", err, len(want))
	}
	for i, p := range pairs {
		if got := editDiff(p.A, p.B, "/w/f.py"); got != want[i] {
			t.Fatalf("pair %d differs:\nGo:\n%s\nPython:\n%s", i, got, want[i])
		}
	}
}
