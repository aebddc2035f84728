package sandbox

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"corral/eventbus"
)

func newTestExecutor(t *testing.T, opts ...Option) (*Executor, string) {
	t.Helper()
	dir := t.TempDir()
	// A private HOME keeps the host's ~/.bashrc (slow or polluted by other
	// tests) out of the shells.
	base := []Option{WithWorkDir(dir), WithNoChangeTimeout(5 * time.Second), WithEnv([]string{"HOME=" + t.TempDir()})}
	x, err := New(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { x.Close() })
	return x, dir
}

func xAct(id int64, a eventbus.Action) *eventbus.Event {
	e := eventbus.NewAction(eventbus.SourceAgent, a)
	e.ID = id
	return e
}

func xExec(t *testing.T, x *Executor, a eventbus.Action) *eventbus.Event {
	t.Helper()
	obs := x.Execute(context.Background(), xAct(7, a), nil)
	if obs == nil {
		t.Fatal("nil observation")
	}
	if obs.Cause == nil || *obs.Cause != 7 {
		t.Fatalf("cause not set: %+v", obs.Cause)
	}
	return obs
}

func xWantError(t *testing.T, obs *eventbus.Event, content, errorID string) {
	t.Helper()
	eo, ok := obs.Observation.(*eventbus.ErrorObservation)
	if !ok {
		t.Fatalf("want error observation %q, got %s %q", content, obs.Type(), obs.Content)
	}
	if obs.Content != content {
		t.Fatalf("error content:\n got %q\nwant %q", obs.Content, content)
	}
	if eo.ErrorID != errorID {
		t.Fatalf("error_id %q, want %q", eo.ErrorID, errorID)
	}
}

func xRun(t *testing.T, x *Executor, cmd string) *eventbus.Event {
	t.Helper()
	obs := xExec(t, x, &eventbus.CmdRunAction{Command: cmd})
	if _, ok := obs.Observation.(*eventbus.CmdOutputObservation); !ok {
		t.Fatalf("run %q: got %s %q", cmd, obs.Type(), obs.Content)
	}
	return obs
}

func TestExecuteDispatchesUnsupportedActionsToErrors(t *testing.T) {
	x, _ := newTestExecutor(t)
	cases := []struct {
		name    string
		ev      *eventbus.Event
		content string
		errorID string
	}{
		{"non-runnable think", xAct(1, &eventbus.AgentThinkAction{Thought: "hm"}), "Action think is not supported in the current runtime.", ErrorIDBadAction},
		{"non-runnable message", xAct(1, &eventbus.MessageAction{Content: "hi"}), "Action message is not supported in the current runtime.", ErrorIDBadAction},
		{"an observation", eventbus.NewObservation(3, "x", &eventbus.NullObservation{}), "Action null (an observation) is not supported in the current runtime.", ErrorIDBadAction},
		{"nil event", nil, "Action <none> is not supported in the current runtime.", ErrorIDBadAction},
		{"llm based edit", xAct(1, &eventbus.FileEditAction{Path: "/x", ImplSource: "llm_based_edit"}), `Edit with impl_source "llm_based_edit" is not supported in the sandbox: only oh_aci (str_replace_editor) edits are; LLM-based edits run in the controller.`, ErrorIDBadAction},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			xWantError(t, x.Execute(context.Background(), tc.ev, nil), tc.content, tc.errorID)
		})
	}
}

func TestExecuteLinksObservationToAction(t *testing.T) {
	x, _ := newTestExecutor(t)
	ev := xAct(42, &eventbus.CmdRunAction{Command: "echo hi", Hidden: true})
	ev.ToolCallMetadata = json.RawMessage(`{"function_name":"execute_bash","tool_call_id":"t1"}`)
	ev.Source = eventbus.SourceUser
	var streamed strings.Builder
	obs := x.Execute(context.Background(), ev, func(b []byte) { streamed.Write(b) })
	if obs.Cause == nil || *obs.Cause != 42 {
		t.Fatalf("cause %v", obs.Cause)
	}
	if string(obs.ToolCallMetadata) != string(ev.ToolCallMetadata) {
		t.Fatalf("tool_call_metadata %s", obs.ToolCallMetadata)
	}
	if obs.Source != eventbus.SourceUser {
		t.Fatalf("source %q", obs.Source)
	}
	co := obs.Observation.(*eventbus.CmdOutputObservation)
	if !co.Hidden || !strings.Contains(obs.Content, "hi") || co.Metadata.ExitCode != 0 {
		t.Fatalf("obs %+v %q", co, obs.Content)
	}
	// An action without an id gets no cause.
	obs = x.Execute(context.Background(), eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: "true"}), nil)
	if obs.Cause != nil {
		t.Fatalf("cause set for an unappended action: %d", *obs.Cause)
	}
}

func TestStaticRunUsesItsOwnShellAndCwd(t *testing.T) {
	x, dir := newTestExecutor(t)
	other := filepath.Join(dir, "other")
	os.Mkdir(other, 0o755)
	xRun(t, x, "export MAINVAR=1")
	obs := xExec(t, x, &eventbus.CmdRunAction{Command: "pwd; echo v=$MAINVAR; cd /", IsStatic: true, Cwd: &other})
	if !strings.Contains(obs.Content, other) || !strings.Contains(obs.Content, "v=\n") && !strings.HasSuffix(strings.TrimSpace(obs.Content), "v=") {
		t.Fatalf("static run output %q", obs.Content)
	}
	if x.Cwd() != dir {
		t.Fatalf("main cwd changed to %q", x.Cwd())
	}
	if o := xRun(t, x, "echo v=$MAINVAR"); !strings.Contains(o.Content, "v=1") {
		t.Fatalf("main session lost its state: %q", o.Content)
	}
}

func TestReadDefaultModeSlicesLinesLikeOpenHands(t *testing.T) {
	x, dir := newTestExecutor(t)
	writeTestFile(t, filepath.Join(dir, "f.txt"), "l0\nl1\nl2\nl3\nl4\n")
	cases := []struct {
		start, end int
		want       string
	}{
		{0, -1, "l0\nl1\nl2\nl3\nl4\n"},
		{2, -1, "l2\nl3\nl4\n"},
		{1, 3, "l1\nl2\n"},
		{3, 3, "l3\n"}, // a bounded range yields at least one line
		{4, 2, "l3\n"}, // begin = min(start, n-2)
		{9, 12, "l3\nl4\n"},
		{-5, 1, "l0\n"},
		{0, 100, "l0\nl1\nl2\nl3\nl4\n"},
	}
	for _, tc := range cases {
		obs := xExec(t, x, &eventbus.FileReadAction{Path: "f.txt", Start: tc.start, End: tc.end})
		ro, ok := obs.Observation.(*eventbus.FileReadObservation)
		if !ok {
			t.Fatalf("[%d:%d] got %s %q", tc.start, tc.end, obs.Type(), obs.Content)
		}
		if obs.Content != tc.want || ro.Path != filepath.Join(dir, "f.txt") || ro.ImplSource != "default" {
			t.Errorf("[%d:%d] got %q path %q, want %q", tc.start, tc.end, obs.Content, ro.Path, tc.want)
		}
	}
}

func TestReadErrorsAndMedia(t *testing.T) {
	x, dir := newTestExecutor(t)
	writeTestFile(t, filepath.Join(dir, "bin.dat"), "\x00\x01\x02\x03\x04\xff\xfe")
	writeTestFile(t, filepath.Join(dir, "latin1.txt"), "caf\xe9 au lait, plain text otherwise")
	writeTestFile(t, filepath.Join(dir, "img.png"), "\x89PNG\r\n\x1a\nDATA")
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	missing := filepath.Join(dir, "missing.txt")
	xWantError(t, xExec(t, x, &eventbus.FileReadAction{Path: "missing.txt", End: -1}),
		"File not found: "+missing+". Your current working directory is "+dir+".", "")
	xWantError(t, xExec(t, x, &eventbus.FileReadAction{Path: "d", End: -1}),
		"Path is a directory: "+filepath.Join(dir, "d")+". You can only read files", "")
	xWantError(t, xExec(t, x, &eventbus.FileReadAction{Path: "bin.dat", End: -1}), "ERROR_BINARY_FILE", "")
	xWantError(t, xExec(t, x, &eventbus.FileReadAction{Path: filepath.Join(dir, "bin.dat"), End: -1, ImplSource: "oh_aci"}), "ERROR_BINARY_FILE", "")
	xWantError(t, xExec(t, x, &eventbus.FileReadAction{Path: "latin1.txt", End: -1}),
		"File could not be decoded as utf-8: "+filepath.Join(dir, "latin1.txt")+".", "")
	obs := xExec(t, x, &eventbus.FileReadAction{Path: "img.png", End: -1})
	if obs.Content != "data:image/png;base64,iVBORw0KGgpEQVRB" {
		t.Fatalf("png data url %q", obs.Content)
	}
	// Relative paths follow the shell's cwd.
	xRun(t, x, "cd d && printf 'inside\\n' > in.txt")
	obs = xExec(t, x, &eventbus.FileReadAction{Path: "in.txt", End: -1})
	if obs.Content != "inside\n" || obs.Observation.(*eventbus.FileReadObservation).Path != filepath.Join(dir, "d", "in.txt") {
		t.Fatalf("read after cd: %q %+v", obs.Content, obs.Observation)
	}
}

func TestReadOhAciModeUsesTheEditorView(t *testing.T) {
	x, dir := newTestExecutor(t)
	f := filepath.Join(dir, "v.txt")
	writeTestFile(t, f, "a\nb\nc\n")
	obs := xExec(t, x, &eventbus.FileReadAction{Path: f, End: -1, ImplSource: "oh_aci", ViewRange: []int{2, 3}})
	ro := obs.Observation.(*eventbus.FileReadObservation)
	if obs.Content != "Here's the result of running `cat -n` on "+f+":\n     2\tb\n     3\tc\n" || ro.ImplSource != "oh_aci" || ro.Path != f {
		t.Fatalf("got %q %+v", obs.Content, ro)
	}
	obs = xExec(t, x, &eventbus.FileReadAction{Path: "v.txt", End: -1, ImplSource: "oh_aci"})
	if _, ok := obs.Observation.(*eventbus.FileReadObservation); !ok || !strings.HasPrefix(obs.Content, "ERROR:\nInvalid `path` parameter: v.txt.") {
		t.Fatalf("relative oh_aci read: %s %q", obs.Type(), obs.Content)
	}
}

func TestWriteSplicesLinesLikeOpenHands(t *testing.T) {
	x, dir := newTestExecutor(t)
	cases := []struct {
		name       string
		initial    string // "-" = no file
		content    string
		start, end int
		want       string
	}{
		{"new file gets a newline per line", "-", "a\nb", 0, -1, "a\nb\n"},
		{"new file content ending in newline gets an empty last line", "-", "a\n", 0, -1, "a\n\n"},
		{"default range replaces the whole file", "x\ny\nz\n", "new", 0, -1, "new\n"},
		{"start keeps the lines before", "x\ny\nz\n", "new", 1, -1, "x\nnew\n"},
		{"end keeps the lines after", "x\ny\nz\n", "new", 0, 2, "new\nz\n"},
		{"middle splice", "x\ny\nz\n", "n1\nn2", 1, 2, "x\nn1\nn2\nz\n"},
		{"negative start is a python slice", "x\ny\nz\n", "new", -1, -1, "x\ny\nnew\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "w.txt")
			os.Remove(p)
			if tc.initial != "-" {
				writeTestFile(t, p, tc.initial)
			}
			obs := xExec(t, x, &eventbus.FileWriteAction{Path: "w.txt", Content: tc.content, Start: tc.start, End: tc.end})
			wo, ok := obs.Observation.(*eventbus.FileWriteObservation)
			if !ok || wo.Path != p || obs.Content != "" {
				t.Fatalf("got %s %q %+v", obs.Type(), obs.Content, obs.Observation)
			}
			if got := readTestFile(t, p); got != tc.want {
				t.Fatalf("file %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWriteModesParentsAndErrors(t *testing.T) {
	x, dir := newTestExecutor(t)
	p := filepath.Join(dir, "deep", "er", "new.sh")
	xExec(t, x, &eventbus.FileWriteAction{Path: p, Content: "echo", End: -1})
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o664 {
		t.Fatalf("new file mode %v %v", st.Mode(), err)
	}
	os.Chmod(p, 0o750)
	xExec(t, x, &eventbus.FileWriteAction{Path: p, Content: "echo 2", End: -1})
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o750 {
		t.Fatalf("existing mode not kept: %v", st.Mode())
	}
	xWantError(t, xExec(t, x, &eventbus.FileWriteAction{Path: "deep", Content: "x", End: -1}),
		"Path is a directory: "+filepath.Join(dir, "deep")+". You can only write to files", "")
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o555)
		t.Cleanup(func() { os.Chmod(ro, 0o755) })
		xWantError(t, xExec(t, x, &eventbus.FileWriteAction{Path: filepath.Join(ro, "x.txt"), Content: "x", End: -1}),
			"[Errno 13] Permission denied: '"+filepath.Join(ro, "x.txt")+"'", "")
	}
}

func TestEditActionObservationFields(t *testing.T) {
	x, dir := newTestExecutor(t)
	f := filepath.Join(dir, "e.py")
	obs := xExec(t, x, &eventbus.FileEditAction{Command: "create", Path: f, FileText: strp("a\nb\n"), ImplSource: "oh_aci"})
	eo := obs.Observation.(*eventbus.FileEditObservation)
	if obs.Content != "File created successfully at: "+f || eo.PrevExist || *eo.Diff != "--- "+f+"\n+++ "+f+"\n@@ -0,0 +1,2 @@\n+a\n+b" {
		t.Fatalf("create: %q prev=%v diff=%q", obs.Content, eo.PrevExist, *eo.Diff)
	}
	obs = xExec(t, x, &eventbus.FileEditAction{Command: "str_replace", Path: f, OldStr: strp("b"), NewStr: strp("B"), ImplSource: "oh_aci"})
	eo = obs.Observation.(*eventbus.FileEditObservation)
	if *eo.OldContent != "b" || *eo.NewContent != "B" || !eo.PrevExist || eo.ImplSource != "oh_aci" || eo.Path != f {
		t.Fatalf("str_replace fields %+v", eo)
	}
	if *eo.Diff != "--- "+f+"\n+++ "+f+"\n@@ -2 +2 @@\n-b\n+B" {
		t.Fatalf("diff %q", *eo.Diff)
	}
	// insert_line may arrive as a numeric string.
	obs = xExec(t, x, &eventbus.FileEditAction{Command: "insert", Path: f, InsertLine: json.RawMessage(`"1"`), NewStr: strp("mid"), ImplSource: "oh_aci"})
	if !strings.HasPrefix(obs.Content, "The file "+f+" has been edited.") || readTestFile(t, f) != "a\nmid\nB\n" {
		t.Fatalf("insert with string line: %q %q", obs.Content, readTestFile(t, f))
	}
	obs = xExec(t, x, &eventbus.FileEditAction{Command: "insert", Path: f, InsertLine: json.RawMessage(`"one"`), NewStr: strp("x"), ImplSource: "oh_aci"})
	if obs.Content != "ERROR:\nInvalid insert_line value: 'one'. Expected an integer." || *obs.Observation.(*eventbus.FileEditObservation).Diff != "" {
		t.Fatalf("bad insert_line: %q", obs.Content)
	}
	obs = xExec(t, x, &eventbus.FileEditAction{Command: "view", Path: f, ImplSource: "oh_aci"})
	if eo := obs.Observation.(*eventbus.FileEditObservation); *eo.Diff != "" || eo.OldContent != nil {
		t.Fatalf("view diff %q", *eo.Diff)
	}
}

func TestListFilesOrdersDirectoriesFirstCaseInsensitively(t *testing.T) {
	x, dir := newTestExecutor(t)
	for _, d := range []string{"beta", "Alpha", "zeta"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	for _, f := range []string{"b.txt", "A.txt", "c.txt", ".hidden"} {
		writeTestFile(t, filepath.Join(dir, f), "x")
	}
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling"))
	os.Symlink(filepath.Join(dir, "zeta"), filepath.Join(dir, "link-to-dir"))
	want := []string{"Alpha/", "beta/", "link-to-dir/", "zeta/", ".hidden", "A.txt", "b.txt", "c.txt"}
	for _, p := range []string{"", dir, "."} {
		got := x.ListFiles(p)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("ListFiles(%q) = %v, want %v", p, got, want)
		}
	}
	if got := x.ListFiles("Alpha"); len(got) != 0 || got == nil {
		t.Fatalf("empty dir: %#v", got)
	}
	for _, p := range []string{"missing", filepath.Join(dir, "b.txt")} {
		if got := x.ListFiles(p); got == nil || len(got) != 0 {
			t.Fatalf("ListFiles(%q) = %#v, want []", p, got)
		}
	}
}

func TestCloseIsIdempotentAndStopsEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	x, err := New(context.Background(), WithWorkDir(dir), WithEnv([]string{"HOME=" + t.TempDir()}))
	if err != nil {
		t.Fatal(err)
	}
	obs := x.Execute(context.Background(), xAct(1, &eventbus.IPythonRunCellAction{Code: "import os\nos.getpid()"}), nil)
	pid := strings.SplitN(obs.Content, "\n", 2)[0]
	if !processAlive(pid) {
		t.Fatalf("python pid %q not running: (%q)", pid, obs.Content)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	// Close waited for the interpreter's direct child; a grandchild behind
	// a wrapper (pyenv shim) dies from the same SIGKILL a moment later.
	for deadline := time.Now().Add(5 * time.Second); processAlive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("python %s still running after Close", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	xWantError(t, x.Execute(context.Background(), xAct(2, &eventbus.CmdRunAction{Command: "true"}), nil),
		"The sandbox executor is closed; action run was not run.", "")
}

func TestNewRejectsBadSettings(t *testing.T) {
	if _, err := New(context.Background(), WithWorkDir(filepath.Join(t.TempDir(), "missing"))); err == nil || !strings.Contains(err.Error(), "not an existing directory") {
		t.Fatalf("missing workdir: %v", err)
	}
	t.Setenv("NO_CHANGE_TIMEOUT_SECONDS", "soon")
	if _, err := New(context.Background(), WithWorkDir(t.TempDir())); err == nil || !strings.Contains(err.Error(), "NO_CHANGE_TIMEOUT_SECONDS") {
		t.Fatalf("bad env: %v", err)
	}
}

// processAlive reports whether pid exists and is not a zombie (a killed
// process whose parent died is reparented to an init that may never reap
// it, e.g. behind a pyenv shim).
func processAlive(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func TestCloseStopsRunningCellAndStaticCommand(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	x, _ := newTestExecutor(t)
	cell(t, x, "1", 0, false) // start the interpreter
	results := make(chan *eventbus.Event, 2)
	long := 300.0
	cellEv := xAct(1, &eventbus.IPythonRunCellAction{Code: "import time\ntime.sleep(300)"})
	cellEv.Timeout = &long
	staticEv := xAct(2, &eventbus.CmdRunAction{Command: "sleep 300", IsStatic: true, Blocking: true})
	staticEv.Timeout = &long
	go func() { results <- x.Execute(context.Background(), cellEv, nil) }()
	go func() { results <- x.Execute(context.Background(), staticEv, nil) }()
	time.Sleep(2 * time.Second)
	start := time.Now()
	if err := x.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
	for range 2 {
		select {
		case obs := <-results:
			if obs == nil || obs.Cause == nil {
				t.Fatalf("bad observation %+v", obs)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("an action did not return after Close")
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("Close took %s", d)
	}
}
