package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Editor is a Go port of openhands-aci's OHEditor (the str_replace_editor
// tool, version 0.3.2/0.3.3): the commands view, create, str_replace, insert
// and undo_edit, with OpenHands' exact output and error texts. Edits keep a
// per-file history (the last editorMaxHistory versions) for undo_edit.
//
// An Editor is safe for concurrent use, though the Executor runs one edit at
// a time anyway.
type Editor struct {
	cwd         string // used only to suggest an absolute path for a relative one
	maxFileSize int64

	mu      sync.Mutex
	history map[string][]string
}

const (
	editorToolName           = "oh_editor"
	editorMaxHistory         = 10
	editorMaxFileSize        = 10 * 1024 * 1024
	editorMaxResponseChars   = 16000
	editorSnippetContext     = 4
	textFileTruncatedNotice  = "<response clipped><NOTE>Due to the max output limit, only part of this file has been shown to you. You should retry this tool after you have searched inside the file with `grep -n` in order to find the line numbers of what you are looking for.</NOTE>"
	directoryTruncatedNotice = "<response clipped><NOTE>Due to the max output limit, only part of this directory has been shown to you. You should use `ls -la` instead to view large directories incrementally.</NOTE>"
)

// editorSupportedBinary are the extensions OHEditor converts to Markdown for
// view and refuses to edit.
var editorSupportedBinary = map[string]bool{
	".docx": true, ".xlsx": true, ".pptx": true, ".pdf": true,
	".mp3": true, ".wav": true, ".m4a": true, ".flac": true,
}

// NewEditor returns an editor whose relative-path hint is based on cwd.
func NewEditor(cwd string) *Editor {
	return &Editor{cwd: cwd, maxFileSize: editorMaxFileSize, history: map[string][]string{}}
}

// EditRequest is one str_replace_editor call. Nil pointers mean "parameter
// not given", as None does in Python.
type EditRequest struct {
	Command    string
	Path       string
	FileText   *string
	ViewRange  []int
	OldStr     *string
	NewStr     *string
	InsertLine *int
}

// EditResult is OHEditor's CLIResult, already rendered the way the action
// execution server renders it: Output is the tool output or "ERROR:\n<msg>".
type EditResult struct {
	Output     string
	IsError    bool
	Path       string
	PrevExist  bool
	OldContent *string // file text before the edit (nil for view and errors)
	NewContent *string // file text after the edit
}

// toolError is OHEditor's ToolError: its message is shown to the agent.
type toolError struct{ msg string }

func (e *toolError) Error() string { return e.msg }

func toolErrorf(format string, a ...any) error { return &toolError{fmt.Sprintf(format, a...)} }

func invalidParam(param, value, hint string) error {
	if hint == "" {
		return toolErrorf("Invalid `%s` parameter: %s.", param, value)
	}
	return toolErrorf("Invalid `%s` parameter: %s. %s", param, value, hint)
}

func missingParam(command, param string) error {
	return toolErrorf("Parameter `%s` is required for command: %s.", param, command)
}

// Run executes one editor command. Tool errors become an error result; it
// never panics on bad input.
func (ed *Editor) Run(req EditRequest) EditResult {
	res, err := ed.run(req)
	if err != nil {
		return EditResult{Output: "ERROR:\n" + err.Error(), IsError: true, Path: pyPath(req.Path)}
	}
	return res
}

func (ed *Editor) run(req EditRequest) (EditResult, error) {
	path := pyPath(req.Path)
	if err := ed.validatePath(req.Command, path); err != nil {
		return EditResult{}, err
	}
	switch req.Command {
	case "view":
		return ed.view(path, req.ViewRange)
	case "create":
		if req.FileText == nil {
			return EditResult{}, missingParam("create", "file_text")
		}
		if err := ed.writeFile(path, *req.FileText); err != nil {
			return EditResult{}, err
		}
		ed.addHistory(path, *req.FileText)
		text := *req.FileText
		return EditResult{Output: "File created successfully at: " + path, Path: path, NewContent: &text}, nil
	case "str_replace":
		if req.OldStr == nil {
			return EditResult{}, missingParam("str_replace", "old_str")
		}
		if req.NewStr != nil && *req.NewStr == *req.OldStr {
			return EditResult{}, invalidParam("new_str", *req.NewStr, "No replacement was performed. `new_str` and `old_str` must be different.")
		}
		newStr := ""
		if req.NewStr != nil {
			newStr = *req.NewStr
		}
		return ed.strReplace(path, *req.OldStr, newStr)
	case "insert":
		if req.InsertLine == nil {
			return EditResult{}, missingParam("insert", "insert_line")
		}
		if req.NewStr == nil {
			return EditResult{}, missingParam("insert", "new_str")
		}
		return ed.insert(path, *req.InsertLine, *req.NewStr)
	case "undo_edit":
		return ed.undo(path)
	}
	return EditResult{}, toolErrorf("Unrecognized command %s. The allowed commands for the %s tool are: view, create, str_replace, insert, undo_edit", req.Command, editorToolName)
}

func (ed *Editor) validatePath(command, path string) error {
	if !filepath.IsAbs(path) {
		hint := "The path should be an absolute path, starting with `/`."
		if ed.cwd != "" {
			suggested := filepath.Join(ed.cwd, path)
			if exists(suggested) {
				hint += " Maybe you meant " + suggested + "?"
			}
		}
		return invalidParam("path", path, hint)
	}
	if command == "create" && exists(path) {
		return invalidParam("path", path, "File already exists at: "+path+". Cannot overwrite files using command `create`.")
	}
	if command != "create" && !exists(path) {
		return invalidParam("path", path, "The path "+path+" does not exist. Please provide a valid path.")
	}
	if command != "view" {
		if isDir(path) {
			return invalidParam("path", path, "The path "+path+" is a directory and only the `view` command can be used on directories.")
		}
		if ext := strings.ToLower(filepath.Ext(path)); editorSupportedBinary[ext] {
			return invalidParam("path", path, "The path "+path+" points to a binary file ("+filepath.Ext(path)+") and only the `view` command can be used on supported binary files.")
		}
	}
	return nil
}

// validateFile is OHEditor.validate_file: size limit and binary detection.
func (ed *Editor) validateFile(path string) error {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if st.Size() > ed.maxFileSize {
		return toolErrorf("File validation failed for %s: File is too large (%.1fMB). Maximum allowed size is %dMB.",
			path, float64(st.Size())/1024/1024, ed.maxFileSize/1024/1024)
	}
	if editorSupportedBinary[strings.ToLower(filepath.Ext(path))] {
		return nil
	}
	if isBinaryFile(path) {
		return toolErrorf("File validation failed for %s: File appears to be binary and this file type cannot be read or edited by this tool.", path)
	}
	return nil
}

// readText reads a file as Python's text mode does: UTF-8 with universal
// newlines.
func (ed *Editor) readText(path string) (string, error) {
	if err := ed.validateFile(path); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", toolErrorf("Ran into %s while trying to read %s", pyOSError(err, path), path)
	}
	if !utf8.Valid(b) {
		off := firstInvalidUTF8(b)
		return "", toolErrorf("Ran into 'utf-8' codec can't decode byte 0x%02x in position %d: invalid start byte while trying to read %s", b[off], off, path)
	}
	return universalNewlines(string(b)), nil
}

func (ed *Editor) writeFile(path, text string) error {
	if err := ed.validateFile(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err == nil {
		_, err = f.WriteString(text)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return toolErrorf("Ran into %s while trying to write to %s", pyOSError(err, path), path)
	}
	return nil
}

func (ed *Editor) addHistory(path, text string) {
	ed.mu.Lock()
	defer ed.mu.Unlock()
	h := append(ed.history[path], text)
	if len(h) > editorMaxHistory {
		h = h[len(h)-editorMaxHistory:]
	}
	ed.history[path] = h
}

func (ed *Editor) popHistory(path string) (string, bool) {
	ed.mu.Lock()
	defer ed.mu.Unlock()
	h := ed.history[path]
	if len(h) == 0 {
		return "", false
	}
	last := h[len(h)-1]
	ed.history[path] = h[:len(h)-1]
	return last, true
}

func (ed *Editor) view(path string, viewRange []int) (EditResult, error) {
	if isDir(path) {
		if len(viewRange) > 0 {
			return EditResult{}, invalidParam("view_range", pyIntList(viewRange), "The `view_range` parameter is not allowed when `path` points to a directory.")
		}
		return ed.viewDir(path)
	}
	if err := ed.validateFile(path); err != nil {
		return EditResult{}, err
	}
	if editorSupportedBinary[strings.ToLower(filepath.Ext(path))] {
		return EditResult{}, toolErrorf("Error in converting file to Markdown: conversion of %s files is not supported by this runtime. Please use Python code to read %s", filepath.Ext(path), path)
	}
	text, err := ed.readText(path)
	if err != nil {
		return EditResult{}, err
	}
	numLines := countLines(text)
	if len(viewRange) == 0 {
		return EditResult{Output: makeOutput(text, path, 1), Path: path, PrevExist: true}, nil
	}
	if len(viewRange) != 2 {
		return EditResult{}, invalidParam("view_range", pyIntList(viewRange), "It should be a list of two integers.")
	}
	start, end := viewRange[0], viewRange[1]
	if start < 1 || start > numLines {
		return EditResult{}, invalidParam("view_range", pyIntList(viewRange), fmt.Sprintf("Its first element `%d` should be within the range of lines of the file: [1, %d].", start, numLines))
	}
	warning := ""
	if end == -1 {
		end = numLines
	} else if end > numLines {
		warning = fmt.Sprintf("We only show up to %d since there're only %d lines in this file.", numLines, numLines)
		end = numLines
	}
	if end < start {
		return EditResult{}, invalidParam("view_range", pyIntList(viewRange), fmt.Sprintf("Its second element `%d` should be greater than or equal to the first element `%d`.", end, start))
	}
	snippet := strings.Join(splitLinesPy(linesRange(text, start, end)), "\n")
	out := makeOutput(snippet, path, start)
	if warning != "" {
		out = "NOTE: " + warning + "\n" + out
	}
	return EditResult{Output: out, Path: path, PrevExist: true}, nil
}

// viewDir renders `find -L <path> -maxdepth 2 -not -path '<path>/.*' ... | sort`
// the way OHEditor does, without spawning find.
func (ed *Editor) viewDir(path string) (EditResult, error) {
	hidden := 0
	entries, err := os.ReadDir(path)
	if err != nil {
		return EditResult{}, toolErrorf("find: '%s': %s", path, pyStrerror(err))
	}
	found := []string{path}
	var errs []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			hidden++
			continue
		}
		p := path + "/" + e.Name()
		found = append(found, p)
		if !isDir(p) { // -L: symlinks to directories are descended into
			continue
		}
		sub, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, fmt.Sprintf("find: '%s': %s", p, pyStrerror(err)))
			continue
		}
		for _, s := range sub {
			if !strings.HasPrefix(s.Name(), ".") {
				found = append(found, p+"/"+s.Name())
			}
		}
	}
	if len(errs) > 0 {
		return EditResult{}, &toolError{strings.Join(errs, "\n") + "\n"}
	}
	sort.Strings(found)
	raw := truncateRunes(strings.Join(found, "\n")+"\n", editorMaxResponseChars, directoryTruncatedNotice)
	lines := strings.Split(strings.TrimSpace(raw), "\n")
	for i, p := range lines {
		if isDir(p) {
			lines[i] = p + "/"
		}
	}
	msg := "Here's the files and directories up to 2 levels deep in " + path + ", excluding hidden items:\n" + strings.Join(lines, "\n")
	if hidden > 0 {
		msg += "\n" + fmt.Sprintf("\n%d hidden files/directories in this directory are excluded. You can use 'ls -la %s' to see them.", hidden, path)
	}
	return EditResult{Output: msg, Path: path, PrevExist: true}, nil
}

func (ed *Editor) strReplace(path, oldStr, newStr string) (EditResult, error) {
	content, err := ed.readText(path)
	if err != nil {
		return EditResult{}, err
	}
	occ := findOccurrences(content, oldStr)
	if len(occ) == 0 {
		// OHEditor retries without surrounding whitespace before giving up.
		oldStr, newStr = strings.TrimSpace(oldStr), strings.TrimSpace(newStr)
		occ = findOccurrences(content, oldStr)
		if len(occ) == 0 {
			return EditResult{}, toolErrorf("No replacement was performed, old_str `%s` did not appear verbatim in %s.", oldStr, path)
		}
	}
	if len(occ) > 1 {
		seen := map[int]bool{}
		var lines []int
		for _, o := range occ {
			ln := strings.Count(content[:o], "\n") + 1
			if !seen[ln] {
				seen[ln] = true
				lines = append(lines, ln)
			}
		}
		sort.Ints(lines)
		return EditResult{}, toolErrorf("No replacement was performed. Multiple occurrences of old_str `%s` in lines %s. Please ensure it is unique.", oldStr, pyIntList(lines))
	}
	idx := occ[0]
	replacementLine := strings.Count(content[:idx], "\n") + 1
	newContent := content[:idx] + newStr + content[idx+len(oldStr):]
	if err := ed.writeFile(path, newContent); err != nil {
		return EditResult{}, err
	}
	ed.addHistory(path, content)
	startLine := max(0, replacementLine-editorSnippetContext)
	endLine := replacementLine + editorSnippetContext + strings.Count(newStr, "\n")
	snippet := linesRange(newContent, startLine+1, endLine)
	msg := "The file " + path + " has been edited. " + makeOutput(snippet, "a snippet of "+path, startLine+1) +
		"Review the changes and make sure they are as expected. Edit the file again if necessary."
	return EditResult{Output: msg, Path: path, PrevExist: true, OldContent: &content, NewContent: &newContent}, nil
}

func (ed *Editor) insert(path string, insertLine int, newStr string) (EditResult, error) {
	content, err := ed.readText(path)
	if err != nil {
		return EditResult{}, err
	}
	numLines := countLines(content)
	if insertLine < 0 || insertLine > numLines {
		return EditResult{}, invalidParam("insert_line", strconv.Itoa(insertLine), fmt.Sprintf("It should be within the range of allowed values: [0, %d]", numLines))
	}
	lines := splitKeepEnds(content)
	newLines := strings.Split(newStr, "\n")
	var b strings.Builder
	for _, l := range lines[:insertLine] {
		b.WriteString(l)
	}
	for _, l := range newLines {
		b.WriteString(l + "\n")
	}
	for _, l := range lines[insertLine:] {
		b.WriteString(l)
	}
	newContent := b.String()
	if err := ed.writeFile(path, newContent); err != nil {
		return EditResult{}, err
	}
	startLine := max(0, insertLine-editorSnippetContext)
	endLine := min(numLines+len(newLines), insertLine+editorSnippetContext+len(newLines))
	snippet := linesRange(newContent, startLine+1, endLine)
	ed.addHistory(path, content)
	msg := "The file " + path + " has been edited. " + makeOutput(snippet, "a snippet of the edited file", max(1, insertLine-editorSnippetContext+1)) +
		"Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary."
	return EditResult{Output: msg, Path: path, PrevExist: true, OldContent: &content, NewContent: &newContent}, nil
}

func (ed *Editor) undo(path string) (EditResult, error) {
	current, err := ed.readText(path)
	if err != nil {
		return EditResult{}, err
	}
	old, ok := ed.popHistory(path)
	if !ok {
		return EditResult{}, toolErrorf("No edit history found for %s.", path)
	}
	if err := ed.writeFile(path, old); err != nil {
		return EditResult{}, err
	}
	msg := "Last edit to " + path + " undone successfully. " + makeOutput(old, path, 1)
	return EditResult{Output: msg, Path: path, PrevExist: true, OldContent: &current, NewContent: &old}, nil
}

// makeOutput is OHEditor._make_output for text: clip, then number every line
// like `cat -n` (6-wide right-aligned number and a tab).
func makeOutput(snippet, description string, startLine int) string {
	snippet = truncateRunes(snippet, editorMaxResponseChars, textFileTruncatedNotice)
	lines := strings.Split(snippet, "\n")
	var b strings.Builder
	b.WriteString("Here's the result of running `cat -n` on " + description + ":\n")
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%6d\t%s", i+startLine, l)
	}
	b.WriteByte('\n')
	return b.String()
}

// findOccurrences returns the byte offsets of the non-overlapping matches of
// needle, as re.finditer(re.escape(needle)) does (an empty needle matches at
// every position, end included).
func findOccurrences(s, needle string) []int {
	var out []int
	if needle == "" {
		for i := range s {
			out = append(out, i)
		}
		return append(out, len(s))
	}
	for off := 0; ; {
		i := strings.Index(s[off:], needle)
		if i < 0 {
			return out
		}
		out = append(out, off+i)
		off += i + len(needle)
	}
}

// splitKeepEnds splits text into lines that keep their "\n", as iterating a
// Python text file does.
func splitKeepEnds(text string) []string {
	var out []string
	for text != "" {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			out = append(out, text)
			break
		}
		out = append(out, text[:i+1])
		text = text[i+1:]
	}
	return out
}

func countLines(text string) int { return len(splitKeepEnds(text)) }

// linesRange returns lines start..end (1-based, inclusive) with their line
// ends, as OHEditor.read_file(start_line, end_line) does.
func linesRange(text string, start, end int) string {
	var b strings.Builder
	for i, l := range splitKeepEnds(text) {
		n := i + 1
		if n > end {
			break
		}
		if n >= start {
			b.WriteString(l)
		}
	}
	return b.String()
}

// splitLinesPy is str.splitlines() for "\n"-normalised text.
func splitLinesPy(text string) []string {
	lines := splitKeepEnds(text)
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\n")
	}
	return lines
}

func universalNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

func truncateRunes(s string, limit int, notice string) string {
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i] + notice
		}
		n++
	}
	return s
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return 0
}

// pyPath normalises a path string as pathlib.Path does (collapses repeated
// and trailing slashes and "." components, keeps "..").
func pyPath(p string) string {
	if p == "" {
		return "."
	}
	abs := strings.HasPrefix(p, "/")
	var parts []string
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." {
			continue
		}
		parts = append(parts, c)
	}
	s := strings.Join(parts, "/")
	if abs {
		return "/" + s
	}
	if s == "" {
		return "."
	}
	return s
}

// pyIntList formats ints as Python prints a list: [1, 2].
func pyIntList(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// pyStrerror is the C strerror text Python shows for an OS error.
func pyStrerror(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	msg := err.Error()
	if msg == "" {
		return msg
	}
	r, size := utf8.DecodeRuneInString(msg)
	return string(unicode.ToUpper(r)) + msg[size:]
}

// pyOSError formats err as str(OSError): "[Errno 2] No such file or directory: '/p'".
func pyOSError(err error, path string) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if en, ok := errnoOf(pe.Err); ok {
			return fmt.Sprintf("[Errno %d] %s: '%s'", en, pyStrerror(pe.Err), path)
		}
	}
	return err.Error()
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func isDir(p string) bool { st, err := os.Stat(p); return err == nil && st.IsDir() }
