package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The expected texts below are OpenHands' own, from
// tests/unit/runtime/plugins/test_agent_skill.py, rebuilt with the same
// loops; the observation drops trailing whitespace (as OpenHands' Jupyter
// output does), so they are compared trimmed.

// numbered is "i|<line(i)>\n" for i in [from, to].
func numbered(from, to int, line func(int) string) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%d|%s\n", i, line(i))
	}
	return b.String()
}

func lineN(i int) string { return fmt.Sprintf("Line %d", i) }

// linesFile is "Line 1\n...\nLine n" without a final newline, as the
// OpenHands tests write it.
func linesFile(n int, line func(int) string) string {
	s := make([]string, n)
	for i := range s {
		s[i] = line(i + 1)
	}
	return strings.Join(s, "\n")
}

// window is the text OpenHands prints for lines [start, end] of total.
func window(path string, total, start, end int, line func(int) string, hint bool) string {
	s := fmt.Sprintf("[File: %s (%d lines total)]\n", path, total)
	if start == 1 {
		s += "(this is the beginning of the file)\n"
	} else {
		s += fmt.Sprintf("(%d more lines above)\n", start-1)
	}
	s += numbered(start, end, line)
	if end == total {
		s += "(this is the end of the file)\n"
	} else {
		s += fmt.Sprintf("(%d more lines below)\n", total-end)
		if hint {
			s += "[Use `scroll_down` to view the next 100 lines of the file!]\n"
		}
	}
	return s
}

type skillStep struct {
	code string // {dir} is replaced by the case's directory, quoted for Python
	want string // {dir} is replaced by the case's directory
}

type skillCase struct {
	name  string
	files map[string]string
	setup func(t *testing.T, dir string)
	steps []skillStep
}

// runSkillCases runs each case in its own directory on one interpreter,
// resetting the open file first as OpenHands' fixture does.
func runSkillCases(t *testing.T, cases []skillCase) {
	x, root := newTestExecutor(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(root, fmt.Sprintf("case%d", i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			cell(t, x, "import agentskills\nagentskills.CURRENT_FILE = None", 0, false)
			for _, st := range tc.steps {
				code := strings.ReplaceAll(st.code, "{dir}", fmt.Sprintf("%q", dir))
				want := strings.TrimRight(strings.ReplaceAll(st.want, "{dir}", dir), " \n")
				if got := cell(t, x, code, 120, false); got != want {
					t.Fatalf("cell %s\n got: %q\nwant: %q", code, got, want)
				}
			}
		})
	}
}

// inDir runs code with the interpreter's cwd set to the case directory.
func inDir(code string) string {
	return "import os\n_old = os.getcwd()\nos.chdir({dir})\ntry:\n    " + code + "\nfinally:\n    os.chdir(_old)"
}

func TestAgentSkillsFileOpsMatchOpenHands(t *testing.T) {
	five := "Line 1\nLine 2\nLine 3\nLine 4\nLine 5"
	thousand := linesFile(1000, lineN)
	tick := func(i int) string { return fmt.Sprintf("Line `%d`", i) }
	fiveWant := window("{dir}/a.txt", 5, 1, 5, lineN, false)
	manyFiles := func(n int, extra map[int]string) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			for i := 1; i <= n; i++ {
				body := "Line 1\nLine 2\nLine 3\nLine 4\nLine 5\n" + extra[i]
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("a%d.txt", i)), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	runSkillCases(t, []skillCase{
		{name: "open_file of a missing path is an error", steps: []skillStep{
			{"open_file('/unexist/path/a.txt')", "ERROR: File /unexist/path/a.txt not found."}}},
		{name: "open_file shows a short file whole", files: map[string]string{"a.txt": five}, steps: []skillStep{
			{"open_file({dir} + '/a.txt')", fiveWant}}},
		{name: "open_file keeps indentation", files: map[string]string{"a.txt": "Line 1\n    Line 2\nLine 3\nLine 4\nLine 5"}, steps: []skillStep{
			{"open_file({dir} + '/a.txt')", "[File: {dir}/a.txt (5 lines total)]\n(this is the beginning of the file)\n1|Line 1\n2|    Line 2\n3|Line 3\n4|Line 4\n5|Line 5\n(this is the end of the file)"}}},
		{name: "open_file with context_lines 50 shows 50 lines and the scroll hint", files: map[string]string{"a.txt": thousand}, steps: []skillStep{
			{"open_file({dir} + '/a.txt', 1, 50)", window("{dir}/a.txt", 1000, 1, 50, lineN, true)}}},
		{name: "open_file centres on line_number", files: map[string]string{"a.txt": thousand}, steps: []skillStep{
			{"open_file({dir} + '/a.txt', 100)", window("{dir}/a.txt", 1000, 50, 150, lineN, true)}}},
		{name: "goto_line moves the window without the hint", files: map[string]string{"a.txt": thousand}, steps: []skillStep{
			{"open_file({dir} + '/a.txt')", window("{dir}/a.txt", 1000, 1, 100, lineN, true)},
			{"goto_line(500)", window("{dir}/a.txt", 1000, 450, 550, lineN, false)}}},
		{name: "goto_line below 1 is an error", files: map[string]string{"a.txt": linesFile(4, lineN)}, steps: []skillStep{
			{"open_file({dir} + '/a.txt')", window("{dir}/a.txt", 4, 1, 4, lineN, false)},
			{"goto_line(-1)", "ERROR: Line number must be between 1 and 4."}}},
		{name: "goto_line past the end is an error", files: map[string]string{"a.txt": linesFile(9, lineN)}, steps: []skillStep{
			{"open_file({dir} + '/a.txt')", window("{dir}/a.txt", 9, 1, 9, lineN, false)},
			{"goto_line(100)", "ERROR: Line number must be between 1 and 9."}}},
		{name: "scroll_down shows the next window from the current line", files: map[string]string{"a.txt": thousand}, steps: []skillStep{
			{"open_file({dir} + '/a.txt')", window("{dir}/a.txt", 1000, 1, 100, lineN, true)},
			{"scroll_down()", window("{dir}/a.txt", 1000, 101, 201, lineN, false)}}},
		{name: "scroll_up shows the window above", files: map[string]string{"a.txt": thousand}, steps: []skillStep{
			{"open_file({dir} + '/a.txt', 300)", window("{dir}/a.txt", 1000, 250, 350, lineN, true)},
			{"scroll_up()", window("{dir}/a.txt", 1000, 200, 300, lineN, false)}}},
		{name: "scroll_down at the end shows the same short file", files: map[string]string{"a.txt": linesFile(9, lineN)}, steps: []skillStep{
			{"open_file({dir} + '/a.txt')", window("{dir}/a.txt", 9, 1, 9, lineN, false)},
			{"scroll_down()", window("{dir}/a.txt", 9, 1, 9, lineN, false)}}},
		{name: "a two-line window keeps one line either side", files: map[string]string{"a.txt": linesFile(100, tick) + "\n"}, steps: []skillStep{
			{"open_file({dir} + '/a.txt', 50, 2)", window("{dir}/a.txt", 100, 49, 51, tick, true)}}},
		{name: "open_file at a large line number", files: map[string]string{"a.txt": linesFile(999, tick) + "\n"}, steps: []skillStep{
			{"open_file({dir} + '/a.txt', 800, 100)", window("{dir}/a.txt", 999, 750, 850, tick, true)}}},
		{name: "search_dir finds one match among 100 files", setup: manyFiles(100, map[int]string{50: "bingo"}), steps: []skillStep{
			{"search_dir('bingo', {dir})", "[Found 1 matches for \"bingo\" in {dir}]\n{dir}/a50.txt (Line 6): bingo\n[End of matches for \"bingo\" in {dir}]"}}},
		{name: "search_dir without a match", setup: manyFiles(100, nil), steps: []skillStep{
			{"search_dir('non-exist', {dir})", "No matches found for \"non-exist\" in {dir}"}}},
		{name: "search_dir matching more than 100 files asks to narrow", setup: manyFiles(999, nil), steps: []skillStep{
			{"search_dir('Line 5', {dir})", "More than 999 files matched for \"Line 5\" in {dir}. Please narrow your search."}}},
		{name: "search_dir defaults to the current directory", setup: manyFiles(100, map[int]string{50: "bingo"}), steps: []skillStep{
			{inDir("search_dir('bingo')"), "[Found 1 matches for \"bingo\" in ./]\n./a50.txt (Line 6): bingo\n[End of matches for \"bingo\" in ./]"}}},
		{name: "search_file lists matching lines", files: map[string]string{"a.txt": five}, steps: []skillStep{
			{"search_file('Line 5', {dir} + '/a.txt')", "[Found 1 matches for \"Line 5\" in {dir}/a.txt]\nLine 5: Line 5\n[End of matches for \"Line 5\" in {dir}/a.txt]"}}},
		{name: "search_file without a match", files: map[string]string{"a.txt": five}, steps: []skillStep{
			{"search_file('Line 6', {dir} + '/a.txt')", "[No matches found for \"Line 6\" in {dir}/a.txt]"}}},
		{name: "search_file of a missing file is an error", steps: []skillStep{
			{"search_file('Line 6', '/unexist/path/a.txt')", "ERROR: File /unexist/path/a.txt not found."}}},
		{name: "search_file defaults to the open file", files: map[string]string{"a.txt": five}, steps: []skillStep{
			{"open_file({dir} + '/a.txt')", fiveWant},
			{"search_file('Line 2')", "[Found 1 matches for \"Line 2\" in {dir}/a.txt]\nLine 2: Line 2\n[End of matches for \"Line 2\" in {dir}/a.txt]"}}},
		{name: "find_file finds a file by name", files: map[string]string{"a.txt": five}, steps: []skillStep{
			{"find_file('a.txt', {dir})", "[Found 1 matches for \"a.txt\" in {dir}]\n{dir}/a.txt\n[End of matches for \"a.txt\" in {dir}]"}}},
		{name: "find_file defaults to the current directory", files: map[string]string{"a.txt": five}, steps: []skillStep{
			{inDir("find_file('a.txt')"), "[Found 1 matches for \"a.txt\" in ./]\n./a.txt\n[End of matches for \"a.txt\" in ./]"},
			{inDir("find_file('nonexist.txt')"), "[No matches found for \"nonexist.txt\" in ./]"}}},
		{name: "find_file without a match in a given directory", steps: []skillStep{
			{"find_file('nonexist.txt', {dir})", "[No matches found for \"nonexist.txt\" in {dir}]"}}},
	})
}

func TestAgentSkillsEdgeCases(t *testing.T) {
	const huge = 100000
	runSkillCases(t, []skillCase{
		// First, so the parsers module is not imported yet.
		{name: "a project's own agentskills_readers.py does not replace the parsers", files: map[string]string{"agentskills_readers.py": "raise SystemExit('shadowed')", "t.tex": "x"}, steps: []skillStep{
			{inDir("import sys; print('agentskills_readers' in sys.modules); parse_latex('t.tex')"), "False\n[Reading LaTex file from t.tex]\nx"}}},
		{name: "an empty file is one empty line", files: map[string]string{"e.txt": ""}, steps: []skillStep{
			{"open_file({dir} + '/e.txt')", "[File: {dir}/e.txt (1 lines total)]\n(this is the beginning of the file)\n1|\n(this is the end of the file)"},
			{"search_file('x')", "[No matches found for \"x\" in {dir}/e.txt]"}}},
		{name: "line numbers out of range name the valid range", files: map[string]string{"a.txt": "a\nb\nc\n"}, steps: []skillStep{
			{"open_file({dir} + '/a.txt', 0)", "ERROR: Line number must be between 1 and 3"},
			{"open_file({dir} + '/a.txt', 4)", "ERROR: Line number must be between 1 and 3"},
			{"open_file({dir} + '/a.txt', None)", "ERROR: Line number must be between 1 and 3"}}},
		{name: "a directory is not a file", steps: []skillStep{
			{"open_file({dir})", "ERROR: File {dir} not found."},
			{"search_file('x', {dir})", "ERROR: File {dir} not found."},
			{"parse_latex({dir})", "[Reading LaTex file from {dir}]\nERROR: {dir} is a directory, not a file."},
			{"find_file('x', {dir} + '/nope')", "ERROR: Directory {dir}/nope not found"},
			{"search_dir('x', {dir} + '/nope')", "ERROR: Directory {dir}/nope not found"}}},
		{name: "navigation without an open file asks to open one", steps: []skillStep{
			{"goto_line(1)", "ERROR: No file open. Use the open_file function first."},
			{"scroll_down()", "ERROR: No file open. Use the open_file function first."},
			{"scroll_up()", "ERROR: No file open. Use the open_file function first."},
			{"search_file('x')", "ERROR: No file specified or open. Use the open_file function first."}}},
		{name: "a binary file is refused with a clear error, and search_dir skips its bytes", files: map[string]string{"b.bin": "\x89PNG\r\n\x1a\n\x00\xff\xfe bingo"}, steps: []skillStep{
			{"open_file({dir} + '/b.bin')", "ERROR: File {dir}/b.bin is not a UTF-8 text file (invalid start byte); these skills show text only. Use parse_pdf/parse_docx/parse_pptx for documents, or open it as bytes in Python."},
			{"search_file('bingo', {dir} + '/b.bin')", "ERROR: File {dir}/b.bin is not a UTF-8 text file (invalid start byte); these skills show text only. Use parse_pdf/parse_docx/parse_pptx for documents, or open it as bytes in Python."},
			{"search_dir('bingo', {dir})", "[Found 1 matches for \"bingo\" in {dir}]\n{dir}/b.bin (Line 3): \x00 bingo\n[End of matches for \"bingo\" in {dir}]"}}},
		{name: "a huge file shows at most 100 lines around the target", files: map[string]string{"h.txt": linesFile(huge, lineN) + "\n"}, steps: []skillStep{
			{"open_file({dir} + '/h.txt', 50000, 5000)", window("{dir}/h.txt", huge, 49950, 50050, lineN, true)},
			{"scroll_down()", window("{dir}/h.txt", huge, 50100, 50200, lineN, false)},
			{"goto_line(100000)", window("{dir}/h.txt", huge, 99901, huge, lineN, false)}}},
		{name: "search_dir skips FIFOs instead of blocking on them", files: map[string]string{"a.txt": "needle\n"},
			setup: func(t *testing.T, dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
					t.Fatal(err)
				}
			}, steps: []skillStep{
				{"search_dir('needle', {dir})", "[Found 1 matches for \"needle\" in {dir}]\n{dir}/a.txt (Line 1): needle\n[End of matches for \"needle\" in {dir}]"}}},
		{name: "hidden files are skipped by search_dir but found by find_file", files: map[string]string{".h": "needle\n"}, steps: []skillStep{
			{"search_dir('needle', {dir})", "No matches found for \"needle\" in {dir}"},
			{"find_file('.h', {dir})", "[Found 1 matches for \".h\" in {dir}]\n{dir}/.h\n[End of matches for \".h\" in {dir}]"}}},
	})
}

func TestAgentSkillsParsersMatchOpenHands(t *testing.T) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatalf("pdftotext (Debian poppler-utils, see scripts/test-deps) is needed: %v", err)
	}
	latex := "\n        \\documentclass{article}\n        \\begin{document}\n        Hello, this is a test LaTeX document.\n        \\end{document}\n        "
	runSkillCases(t, []skillCase{
		{name: "parse_docx prints each paragraph as a page", setup: writeFixture("test.docx", func(t *testing.T) []byte {
			return testDocx(t, "Hello, this is a test document.", "This is the second paragraph.")
		}), steps: []skillStep{
			{"parse_docx({dir} + '/test.docx')", "[Reading DOCX file from {dir}/test.docx]\n@@ Page 1 @@\nHello, this is a test document.\n\n@@ Page 2 @@\nThis is the second paragraph.\n\n\n"}}},
		{name: "parse_latex prints the document body as text", files: map[string]string{"test.tex": latex}, steps: []skillStep{
			{"parse_latex({dir} + '/test.tex')", "[Reading LaTex file from {dir}/test.tex]\nHello, this is a test LaTeX document.\n"}}},
		{name: "parse_pdf prints each page", setup: writeFixture("test.pdf", func(*testing.T) []byte { return testPDF("Hello, this is a test PDF document.") }), steps: []skillStep{
			{"parse_pdf({dir} + '/test.pdf')", "[Reading PDF file from {dir}/test.pdf]\n@@ Page 1 @@\nHello, this is a test PDF document.\n"}}},
		{name: "parse_pptx prints each slide's shapes in presentation order", setup: writeFixture("test.pptx", func(t *testing.T) []byte {
			return testPptx(t, "Hello, this is the first test PPTX slide.", "Hello, this is the second test PPTX slide.")
		}), steps: []skillStep{
			{"parse_pptx({dir} + '/test.pptx')", "[Reading PowerPoint file from {dir}/test.pptx]\n@@ Slide 1 @@\nHello, this is the first test PPTX slide.\n\n@@ Slide 2 @@\nHello, this is the second test PPTX slide.\n\n"}}},
	})
}

func TestAgentSkillsParserErrorsAreClear(t *testing.T) {
	runSkillCases(t, []skillCase{
		{name: "a multi-page PDF numbers its pages", setup: writeFixture("two.pdf", func(*testing.T) []byte { return testPDF("first page", "second page") }), steps: []skillStep{
			{"parse_pdf({dir} + '/two.pdf')", "[Reading PDF file from {dir}/two.pdf]\n@@ Page 1 @@\nfirst page\n\n@@ Page 2 @@\nsecond page"}}},
		{name: "a PDF whose name starts with a dash is read, not taken as an option", setup: writeFixture("-v.pdf", func(*testing.T) []byte { return testPDF("dash") }), steps: []skillStep{
			{inDir("parse_pdf('-v.pdf')"), "[Reading PDF file from -v.pdf]\n@@ Page 1 @@\ndash"}}},
		{name: "parse_pdf without pdftotext names the package to install", setup: writeFixture("test.pdf", func(*testing.T) []byte { return testPDF("x") }), steps: []skillStep{
			{"import os\n_p = os.environ['PATH']\nos.environ['PATH'] = '/nonexistent'\ntry:\n    parse_pdf({dir} + '/test.pdf')\nfinally:\n    os.environ['PATH'] = _p",
				"[Reading PDF file from {dir}/test.pdf]\nERROR: parse_pdf needs the pdftotext command, which is not installed in this sandbox. Install the Debian/Ubuntu package poppler-utils (apt-get install -y poppler-utils) and call parse_pdf again."}}},
		{name: "parse_pdf of a non-PDF says pdftotext could not read it", files: map[string]string{"bad.pdf": "not a pdf"}, steps: []skillStep{
			{"parse_pdf({dir} + '/bad.pdf')", "[Reading PDF file from {dir}/bad.pdf]\nERROR: pdftotext could not read {dir}/bad.pdf as a PDF (Syntax Error: Couldn't read xref table)."}}},
		{name: "missing documents are reported by every parser", steps: []skillStep{
			{"parse_pdf('/unexist/a.pdf')", "[Reading PDF file from /unexist/a.pdf]\nERROR: File /unexist/a.pdf not found."},
			{"parse_docx('/unexist/a.docx')", "[Reading DOCX file from /unexist/a.docx]\nERROR: File /unexist/a.docx not found."},
			{"parse_latex('/unexist/a.tex')", "[Reading LaTex file from /unexist/a.tex]\nERROR: File /unexist/a.tex not found."},
			{"parse_pptx('/unexist/a.pptx')", "[Reading PowerPoint file from /unexist/a.pptx]\nError reading PowerPoint file: Package not found at '/unexist/a.pptx'"}}},
		{name: "documents that are not zips are reported", files: map[string]string{"a.docx": "plain", "a.pptx": "plain"}, steps: []skillStep{
			{"parse_docx({dir} + '/a.docx')", "[Reading DOCX file from {dir}/a.docx]\nERROR: {dir}/a.docx is not a readable DOCX file (BadZipFile: File is not a zip file)."},
			{"parse_pptx({dir} + '/a.pptx')", "[Reading PowerPoint file from {dir}/a.pptx]\nError reading PowerPoint file: File is not a zip file"}}},
		{name: "a docx given to parse_pptx and a pptx to parse_docx are refused",
			setup: func(t *testing.T, dir string) {
				writeFixture("w.docx", func(t *testing.T) []byte { return testDocx(t, "x") })(t, dir)
				writeFixture("p.pptx", func(t *testing.T) []byte { return testPptx(t, "x") })(t, dir)
			}, steps: []skillStep{
				{"parse_pptx({dir} + '/w.docx')", "[Reading PowerPoint file from {dir}/w.docx]\nError reading PowerPoint file: file is not a PowerPoint file, its main part is {http://schemas.openxmlformats.org/wordprocessingml/2006/main}document"},
				{"parse_docx({dir} + '/p.pptx')", "[Reading DOCX file from {dir}/p.pptx]\nERROR: {dir}/p.pptx is not a readable DOCX file (ValueError: its main part is {http://schemas.openxmlformats.org/presentationml/2006/main}presentation, not a Word document)."}}},
		{name: "docx run text follows python-docx: tabs, breaks, hyperlinks", setup: writeFixture("r.docx", func(t *testing.T) []byte {
			return testDocxXML(t, `<w:p><w:r><w:t>a</w:t><w:tab/><w:t>b</w:t><w:br/><w:t>c</w:t></w:r><w:hyperlink><w:r><w:t>-link</w:t></w:r></w:hyperlink></w:p><w:tbl><w:tr><w:tc><w:p><w:r><w:t>in table</w:t></w:r></w:p></w:tc></w:tr></w:tbl>`)
		}), steps: []skillStep{
			{"parse_docx({dir} + '/r.docx')", "[Reading DOCX file from {dir}/r.docx]\n@@ Page 1 @@\na\tb\nc-link"}}},
	})
}

// The expected texts are what pylatexenc 2.10 (OpenHands' LaTeX library)
// prints for the same sources.
func TestAgentSkillsLatexFollowsPylatexenc(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"sections, references, escapes and comments",
			"\\section{Intro}\nSee \\textbf{bold} and \\emph{it}~\\cite{k} in \\ref{x}. 50\\% done % comment\n",
			"§ INTRO\n\nSee bold and it\u00a0<cit.> in <ref>. 50% done"},
		{"the preamble is dropped, lists are bulleted",
			"\\documentclass[11pt]{article}\n\\usepackage[margin=1in]{geometry}\n\\begin{document}\n\\subsection{Plan}\n\\begin{itemize}\n  \\item First\n  \\item[-] Second\n\\end{itemize}\n\\end{document}\n",
			"§.§ Plan\n\n\n  \n  * First\n  \n  - Second"},
		{"quotes, dashes and table cells",
			"``Yes'' -- 3---4\n\\begin{tabular}{|l|r|}\nA & 1 \\\\\nB & 2\n\\end{tabular}",
			"\u201cYes\u201d \u2013 3\u20144\n\nA     1 \n\nB     2"},
		{"unknown macros keep their groups, known ones are formatted",
			"\\foo{kept} \\texttt{dropped} \\footnote{note} \\url{http://x} \\frac{1}{2}",
			"kept  [note] <http://x> 1/2"},
		{"display environments are indented",
			"\\begin{center}Mid\\end{center}\n\\begin{equation}E=mc^2\\end{equation}",
			"Mid\n\n\n    E=mc^2"},
	}
	var sc []skillCase
	for _, tc := range cases {
		sc = append(sc, skillCase{name: tc.name, files: map[string]string{"s.tex": tc.src}, steps: []skillStep{
			{"parse_latex({dir} + '/s.tex')", "[Reading LaTex file from {dir}/s.tex]\n" + tc.want}}})
	}
	runSkillCases(t, sc)
}

func TestAgentSkillsAreInEveryInterpreterAndNotInArgv(t *testing.T) {
	x, dir := newTestExecutor(t)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("x\n"), 0o644)
	check := func(when string) {
		t.Helper()
		got := cell(t, x, "import sys, agentskills\nprint(sys.argv, sorted(agentskills.__all__) == sorted(n for n in agentskills.__all__ if callable(globals()[n])))\nopen_file('a.txt')", 0, false)
		want := "['-c'] True\n" + window(filepath.Join(dir, "a.txt"), 1, 1, 1, func(int) string { return "x" }, false)
		if got != strings.TrimRight(want, "\n") {
			t.Fatalf("%s: %q, want %q", when, got, want)
		}
	}
	check("first interpreter")
	if got := cell(t, x, "import os\nos._exit(1)", 0, false); !strings.Contains(got, "interpreter exited") {
		t.Fatalf("exit: %q", got)
	}
	check("restarted interpreter")
	if got := cell(t, x, "help(scroll_down)", 0, false); !strings.Contains(got, "Moves the window down by 100 lines.") {
		t.Fatalf("docstring: %q", got)
	}
}

func TestAgentSkillsSourceFitsInOneArgument(t *testing.T) {
	// ipython.go passes each module as one argv string; Linux refuses a
	// single argument over MAX_ARG_STRLEN (32 pages) with E2BIG.
	mods := skillModules()
	for i := 0; i < len(mods); i += 2 {
		if n, limit := len(mods[i+1]), 32*4096; n >= limit {
			t.Fatalf("module %s is %d bytes, over the %d a single exec argument may hold: split it or load it another way", mods[i], n, limit)
		}
	}
}

func writeFixture(name string, body func(*testing.T) []byte) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, name), body(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testPDF is a minimal PDF with one Helvetica line per page, xref offsets
// computed as the bytes are written.
func testPDF(pages ...string) []byte {
	var b bytes.Buffer
	var offsets []int
	obj := func(body string) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
	}
	b.WriteString("%PDF-1.4\n")
	kids := make([]string, len(pages))
	for i := range pages {
		kids[i] = fmt.Sprintf("%d 0 R", 4+2*i)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(pages)))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	for i, text := range pages {
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources << /Font << /F1 3 0 R >> >> >>", 5+2*i))
		stream := fmt.Sprintf("BT /F1 12 Tf 100 750 Td (%s) Tj ET", text)
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(stream), stream))
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, o := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}

const opcRels = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="%s"/></Relationships>`

// testDocx is a docx with one paragraph per argument.
func testDocx(t *testing.T, paras ...string) []byte {
	var body strings.Builder
	for _, p := range paras {
		fmt.Fprintf(&body, "<w:p><w:r><w:t>%s</w:t></w:r></w:p>", p)
	}
	return testDocxXML(t, body.String())
}

func testDocxXML(t *testing.T, body string) []byte {
	return zipOf(t, map[string]string{
		"[Content_Types].xml": `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`,
		"_rels/.rels":         fmt.Sprintf(opcRels, "word/document.xml"),
		"word/document.xml": `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>` + body + `<w:sectPr/></w:body></w:document>`,
	})
}

// testPptx has one slide per title, each with a title and an empty subtitle
// placeholder (python-pptx's layout 0), the slide parts stored in reverse
// order so only presentation.xml gives the order.
func testPptx(t *testing.T, titles ...string) []byte {
	const ns = `xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"`
	var ids, rels strings.Builder
	files := map[string]string{
		"[Content_Types].xml": `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`,
		"_rels/.rels":         fmt.Sprintf(opcRels, "ppt/presentation.xml"),
	}
	for i, title := range titles {
		fmt.Fprintf(&ids, `<p:sldId id="%d" r:id="rId%d"/>`, 256+i, 10+i)
		fmt.Fprintf(&rels, `<Relationship Id="rId%d" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/s%c.xml"/>`, 10+i, 'z'-i)
		files[fmt.Sprintf("ppt/slides/s%c.xml", 'z'-i)] = `<p:sld ` + ns + `><p:cSld><p:spTree><p:nvGrpSpPr/><p:grpSpPr/>` +
			`<p:sp><p:nvSpPr/><p:txBody><a:bodyPr/><a:p><a:r><a:t>` + title + `</a:t></a:r></a:p></p:txBody></p:sp>` +
			`<p:sp><p:nvSpPr/><p:txBody><a:bodyPr/><a:p/></p:txBody></p:sp>` +
			`<p:pic><p:nvPicPr/></p:pic></p:spTree></p:cSld></p:sld>`
	}
	files["ppt/presentation.xml"] = `<p:presentation ` + ns + `><p:sldIdLst>` + ids.String() + `</p:sldIdLst></p:presentation>`
	files["ppt/_rels/presentation.xml.rels"] = `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` + rels.String() + `</Relationships>`
	return zipOf(t, files)
}

// realPython is python3's real executable: a pyenv shim in front of it
// costs a bash start per interpreter, noise for a benchmark or a fuzzer.
func realPython(tb testing.TB) string {
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		tb.Fatal("python3 needed:", err)
	}
	return strings.TrimSpace(string(out))
}

// BenchmarkPythonKernelStart measures starting the interpreter with the
// agent skills and, interleaved in the same run, without them (the
// baseline). Besides wall time it reports the interpreter's own CPU time
// (user+sys, read after it exits), which a loaded machine distorts far
// less.
func BenchmarkPythonKernelStart(b *testing.B) {
	py, dir := realPython(b), b.TempDir()
	start := func(modules []string) (wall, cpu time.Duration) {
		t0 := time.Now()
		k, err := startPythonKernelWith(context.Background(), py, os.Environ(), nil, dir, modules)
		if err != nil {
			b.Fatal(err)
		}
		wall = time.Since(t0)
		k.close() // waits for the process, so ProcessState is set
		st := k.cmd.ProcessState
		return wall, st.UserTime() + st.SystemTime()
	}
	var with, without, withCPU, withoutCPU time.Duration
	n := 0
	for b.Loop() {
		w, c := start(skillModules())
		with, withCPU = with+w, withCPU+c
		b.StopTimer()
		w, c = start(nil)
		without, withoutCPU = without+w, withoutCPU+c
		b.StartTimer()
		n++
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	b.ReportMetric(per(without), "no-skills-µs/start")
	b.ReportMetric(per(with-without), "skills-added-µs")
	b.ReportMetric(per(withoutCPU), "no-skills-cpu-µs/start")
	b.ReportMetric(per(withCPU-withoutCPU), "skills-added-cpu-µs")
	b.ReportMetric(float64(withCPU)/float64(withoutCPU), "cpu-x-of-baseline")
}

// FuzzAgentSkillsParsers feeds arbitrary bytes to the document parsers on
// one interpreter: whatever the file holds, a parser prints its header and
// either text or a clear message, never a traceback, and the kernel lives.
func FuzzAgentSkillsParsers(f *testing.F) {
	parsers := []struct{ fn, header string }{
		{"parse_pdf", "[Reading PDF file from "},
		{"parse_docx", "[Reading DOCX file from "},
		{"parse_pptx", "[Reading PowerPoint file from "},
		{"parse_latex", "[Reading LaTex file from "},
	}
	f.Add(uint8(0), testPDF("seed page"))
	f.Add(uint8(3), []byte("\\documentclass{article}\\begin{document}\\section{A \\emph{b}} x~y \\\\ 10\\% \\cite{k}\\end{document}"))
	f.Add(uint8(3), []byte("\\section{\\section{\\section{deep}}} {unbalanced \\textbf{"))
	dir := f.TempDir()
	k, err := startPythonKernel(context.Background(), realPython(f), os.Environ(), nil, dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(k.close)
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		p := parsers[int(kind)%len(parsers)]
		path := filepath.Join(dir, "input")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := k.run(context.Background(), fmt.Sprintf("%s(%q)", p.fn, path), "", 2*time.Minute, nil)
		if err != nil || res.timedOut {
			t.Fatalf("%s on %q: kernel failed: %v (timed out %v)", p.fn, data, err, res.timedOut)
		}
		if !strings.HasPrefix(res.text, p.header+path+"]\n") || strings.Contains(res.text, "Traceback (most recent call last)") {
			t.Fatalf("%s on %q printed %q", p.fn, data, res.text)
		}
	})
}
