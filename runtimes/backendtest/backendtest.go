package backendtest

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
)

// Harness says how to run the suite against one backend.
type Harness struct {
	// Backend is the backend under test; the suite reaches its sandbox
	// only through Backend.Connect (the one way to reach a sandbox).
	Backend runtimes.Backend
	// Start starts one sandbox for the suite on Backend and registers its
	// teardown with t.Cleanup.
	Start func(t *testing.T) *runtimes.Handle
	// HasPython: the sandbox has python3, so run_ipython runs cells;
	// without it run_ipython must answer with an error observation.
	HasPython bool
}

// maxCmdOutput is OpenHands' MAX_CMD_OUTPUT_SIZE; half of it is kept from
// each end of a longer output around truncationMarker.
const (
	maxCmdOutput     = 30000
	truncationMarker = "\n[... Observation truncated due to length ...]\n"
)

// suite is the state the steps share: one sandbox, one connection, one
// bash session whose cwd and environment carry over between steps.
type suite struct {
	h    Harness
	hd   *runtimes.Handle
	conn runtimes.AgentConn
	ws   string // the sandbox's initial working directory
	id   int64  // id of the last action sent

	lastContent string // content of the last run observation
}

// Run starts one sandbox with h and runs every conformance step against
// it, each as a subtest named after the behaviour it checks.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Start == nil || h.Backend == nil {
		t.Fatal("backendtest.Harness needs Backend and Start")
	}
	s := &suite{h: h, hd: h.Start(t)}
	s.conn = s.dial(t)
	t.Cleanup(func() { s.conn.Close() })
	_, o := s.run(t, "pwd", 20)
	if o.Metadata.ExitCode != 0 {
		t.Fatalf("pwd in a fresh sandbox: exit %d", o.Metadata.ExitCode)
	}
	s.ws = strings.TrimSpace(s.lastContent)
	if !path.IsAbs(s.ws) {
		t.Fatalf("fresh sandbox's working directory %q is not absolute", s.ws)
	}

	t.Run("bash", s.bash)
	t.Run("files", s.files)
	t.Run("editor", s.editor)
	t.Run("transfer", s.transfer)
	t.Run("ipython", s.ipython)
	t.Run("LongOutputIsTruncatedToFirstAndLast15000Chars", s.longOutput)
	t.Run("ASecondConnectionSharesTheShell", s.secondConnection)
	t.Run("LiveOutputChunksAreNumberedFromOneWithoutGaps", s.liveOutput)
	t.Run("LiveOutputIsExactlyWhatCommandsPrint", s.liveOutputIsClean)
	t.Run("Interrupt", s.interrupt)
}

func (s *suite) dial(t *testing.T) runtimes.AgentConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := s.h.Backend.Connect(ctx, s.hd)
	if err != nil {
		t.Fatalf("%s backend: Connect to sandbox %s: %v", s.h.Backend.Name(), s.hd.ID, err)
	}
	return c
}

// exec runs one action with a hard timeout of timeout seconds and returns
// its observation; any transport error fails the test.
func (s *suite) exec(t *testing.T, a eventbus.Action, timeout float64) *eventbus.Event {
	t.Helper()
	return s.execOn(t, s.conn, a, timeout)
}

func (s *suite) execOn(t *testing.T, c runtimes.AgentConn, a eventbus.Action, timeout float64) *eventbus.Event {
	t.Helper()
	ev := eventbus.NewAction(eventbus.SourceAgent, a)
	s.id++
	ev.ID = s.id
	ev.SetHardTimeout(timeout, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeout*float64(time.Second))+30*time.Second)
	defer cancel()
	obs, err := c.Execute(ctx, "", ev, nil)
	if err != nil {
		t.Fatalf("%s action %+v: %v", a.ActionType(), a, err)
	}
	if obs == nil || obs.Observation == nil {
		t.Fatalf("%s action %+v: no observation (%+v)", a.ActionType(), a, obs)
	}
	// OpenHands links each observation to its action by cause.
	if obs.Cause == nil || *obs.Cause != ev.ID {
		t.Errorf("%s action %d: observation cause %v, want %d", a.ActionType(), ev.ID, obs.Cause, ev.ID)
	}
	return obs
}

func cmd(c string) *eventbus.CmdRunAction {
	return &eventbus.CmdRunAction{Command: c, ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown}
}

// run runs a bash command and requires a run observation.
func (s *suite) run(t *testing.T, c string, timeout float64) (*eventbus.Event, *eventbus.CmdOutputObservation) {
	t.Helper()
	return s.runAction(t, s.conn, cmd(c), timeout)
}

func (s *suite) runAction(t *testing.T, c runtimes.AgentConn, a *eventbus.CmdRunAction, timeout float64) (*eventbus.Event, *eventbus.CmdOutputObservation) {
	t.Helper()
	obs := s.execOn(t, c, a, timeout)
	o, ok := obs.Observation.(*eventbus.CmdOutputObservation)
	if !ok {
		t.Fatalf("command %q: got a %s observation %q, want run output", a.Command, obs.Type(), obs.Content)
	}
	s.lastContent = obs.Content
	return obs, o
}

func completed(code int) string {
	return "\n[The command completed with exit code " + itoa(code) + ".]"
}

func itoa(n int) string { return strconv.Itoa(n) }

func (s *suite) bash(t *testing.T) {
	cases := []struct {
		name, command string
		content       func(string) bool
		want          string // content description for failures
		exit          int
	}{
		{"EchoPrintsAndExitsZero", "echo hello", eq("hello"), `"hello"`, 0},
		{"FalseExitsOne", "false", eq(""), `""`, 1},
		{"UnknownCommandExits127", "nonexistent_cmd_xyz", contains("nonexistent_cmd_xyz: command not found"), `"…nonexistent_cmd_xyz: command not found"`, 127},
		{"ExportedVariableIsSet", "export CONFORMANCE_VAR=kept-42", eq(""), `""`, 0},
		{"ExportedVariableIsVisibleInTheNextAction", "echo $CONFORMANCE_VAR", eq("kept-42"), `"kept-42"`, 0},
		{"CdSucceeds", "cd /tmp", eq(""), `""`, 0},
		{"CwdPersistsAcrossActions", "pwd", eq("/tmp"), `"/tmp"`, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs, o := s.run(t, tc.command, 20)
			if !tc.content(obs.Content) {
				t.Errorf("%q: content %q, want %s", tc.command, obs.Content, tc.want)
			}
			if o.Metadata.ExitCode != tc.exit || o.Metadata.Suffix != completed(tc.exit) {
				t.Errorf("%q: exit %d suffix %q, want exit %d suffix %q", tc.command, o.Metadata.ExitCode, o.Metadata.Suffix, tc.exit, completed(tc.exit))
			}
			if o.Command != tc.command {
				t.Errorf("observation command %q, want %q", o.Command, tc.command)
			}
		})
	}
	t.Run("CwdIsReportedInMetadata", func(t *testing.T) {
		_, o := s.run(t, "true", 20)
		if o.Metadata.WorkingDir == nil || *o.Metadata.WorkingDir != "/tmp" {
			t.Errorf("metadata working_dir %v, want /tmp", o.Metadata.WorkingDir)
		}
	})
	t.Run("TwoTopLevelCommandsAreRefusedWithAnError", func(t *testing.T) {
		obs := s.exec(t, cmd("echo one\necho two"), 20)
		want := "ERROR: Cannot execute multiple commands at once.\nPlease run each command separately OR chain them into a single command via && or ;\nProvided commands:\n(1) echo one\n(2) echo two"
		if _, ok := obs.Observation.(*eventbus.ErrorObservation); !ok || obs.Content != want {
			t.Errorf("got %s %q, want error %q", obs.Type(), obs.Content, want)
		}
	})
	t.Run("HardTimeoutGivesExitMinusOneThenCtrlCGives130", func(t *testing.T) {
		_, o := s.run(t, "sleep 5", 1)
		const pre = "\n[The command timed out after 1.0 seconds. "
		if o.Metadata.ExitCode != -1 || !strings.HasPrefix(o.Metadata.Suffix, pre) {
			t.Errorf("sleep 5 with timeout 1: exit %d suffix %q, want exit -1 and suffix starting %q", o.Metadata.ExitCode, o.Metadata.Suffix, pre)
		}
		in := cmd("C-c")
		in.IsInput = true
		_, o = s.runAction(t, s.conn, in, 10)
		if want := "\n[The command completed with exit code 130. CTRL+C was sent.]"; o.Metadata.ExitCode != 130 || o.Metadata.Suffix != want {
			t.Errorf("C-c: exit %d suffix %q, want 130 %q", o.Metadata.ExitCode, o.Metadata.Suffix, want)
		}
		obs, o := s.run(t, "echo usable", 20)
		if obs.Content != "usable" || o.Metadata.ExitCode != 0 {
			t.Errorf("after C-c: %q exit %d, want the shell usable", obs.Content, o.Metadata.ExitCode)
		}
	})
}

func eq(want string) func(string) bool { return func(s string) bool { return s == want } }
func contains(want string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, want) }
}

func (s *suite) files(t *testing.T) {
	dir := s.ws + "/conformance"
	p := dir + "/notes.txt"
	if _, o := s.run(t, "cd "+s.ws, 20); o.Metadata.ExitCode != 0 {
		t.Fatalf("cd %s: exit %d", s.ws, o.Metadata.ExitCode)
	}
	t.Run("WriteCreatesTheFileAndItsDirectory", func(t *testing.T) {
		obs := s.exec(t, &eventbus.FileWriteAction{Path: p, Content: "line1\nline2\nline3\nline4", End: -1}, 20)
		w, ok := obs.Observation.(*eventbus.FileWriteObservation)
		if !ok || obs.Content != "" || w.Path != p {
			t.Fatalf("write: %s %q %+v, want write observation with path %s", obs.Type(), obs.Content, obs.Observation, p)
		}
	})
	reads := []struct {
		name, path string
		start, end int
		want       string
	}{
		{"ReadWholeFileEndsEveryLineWithNewline", p, 0, -1, "line1\nline2\nline3\nline4\n"},
		{"ReadLineRangeIsZeroBasedEndExclusive", p, 1, 3, "line2\nline3\n"},
		{"ReadRelativePathResolvesAgainstCwd", "conformance/notes.txt", 3, -1, "line4\n"},
	}
	for _, tc := range reads {
		t.Run(tc.name, func(t *testing.T) {
			obs := s.exec(t, &eventbus.FileReadAction{Path: tc.path, Start: tc.start, End: tc.end}, 20)
			r, ok := obs.Observation.(*eventbus.FileReadObservation)
			if !ok || obs.Content != tc.want || r.Path != p {
				t.Errorf("read %s [%d:%d]: %s %q %+v, want %q at %s", tc.path, tc.start, tc.end, obs.Type(), obs.Content, obs.Observation, tc.want, p)
			}
		})
	}
	t.Run("ReadOfAMissingFileIsAnErrorNamingTheCwd", func(t *testing.T) {
		m := dir + "/missing.txt"
		obs := s.exec(t, &eventbus.FileReadAction{Path: m, End: -1}, 20)
		want := "File not found: " + m + ". Your current working directory is " + s.ws + "."
		if _, ok := obs.Observation.(*eventbus.ErrorObservation); !ok || obs.Content != want {
			t.Errorf("got %s %q, want error %q", obs.Type(), obs.Content, want)
		}
	})
}

func strp(s string) *string { return &s }

func (s *suite) editor(t *testing.T) {
	e := s.ws + "/conformance/edit.txt"
	catN := func(desc string, lines ...string) string {
		var b strings.Builder
		b.WriteString("Here's the result of running `cat -n` on " + desc + ":\n")
		for i, l := range lines {
			b.WriteString(strings.Repeat(" ", 6-len(itoa(i+1))) + itoa(i+1) + "\t" + l + "\n")
		}
		return b.String()
	}
	edited := "The file " + e + " has been edited. " + catN("a snippet of "+e, "hello there", "second line", "") +
		"Review the changes and make sure they are as expected. Edit the file again if necessary."
	missing := s.ws + "/conformance/absent.txt"
	steps := []struct {
		name string
		act  eventbus.Action
		want string
	}{
		{"CreateWritesANewFile", &eventbus.FileEditAction{Command: "create", Path: e, FileText: strp("hello world\nsecond line\n"), ImplSource: "oh_aci"},
			"File created successfully at: " + e},
		{"CreateRefusesToOverwrite", &eventbus.FileEditAction{Command: "create", Path: e, FileText: strp("x"), ImplSource: "oh_aci"},
			"ERROR:\nInvalid `path` parameter: " + e + ". File already exists at: " + e + ". Cannot overwrite files using command `create`."},
		{"StrReplaceShowsTheEditedSnippet", &eventbus.FileEditAction{Command: "str_replace", Path: e, OldStr: strp("world"), NewStr: strp("there"), ImplSource: "oh_aci"},
			edited},
		{"StrReplaceOfAbsentTextChangesNothing", &eventbus.FileEditAction{Command: "str_replace", Path: e, OldStr: strp("nowhere"), NewStr: strp("x"), ImplSource: "oh_aci"},
			"ERROR:\nNo replacement was performed, old_str `nowhere` did not appear verbatim in " + e + "."},
		{"StrReplaceOnAMissingFileNamesThePath", &eventbus.FileEditAction{Command: "str_replace", Path: missing, OldStr: strp("a"), NewStr: strp("b"), ImplSource: "oh_aci"},
			"ERROR:\nInvalid `path` parameter: " + missing + ". The path " + missing + " does not exist. Please provide a valid path."},
		{"ViewShowsCatN", &eventbus.FileReadAction{Path: e, End: -1, ImplSource: "oh_aci"},
			catN(e, "hello there", "second line", "")},
		{"ViewRangeShowsOnlyThoseLines", &eventbus.FileReadAction{Path: e, End: -1, ImplSource: "oh_aci", ViewRange: []int{2, 2}},
			"Here's the result of running `cat -n` on " + e + ":\n     2\tsecond line\n"},
		{"UndoEditRestoresThePreviousText", &eventbus.FileEditAction{Command: "undo_edit", Path: e, ImplSource: "oh_aci"},
			"Last edit to " + e + " undone successfully. " + catN(e, "hello world", "second line", "")},
		// OH-ACI records create's text in the history too: one more undo
		// "restores" it, only the next one finds the history empty.
		{"UndoEditReachesTheCreatedText", &eventbus.FileEditAction{Command: "undo_edit", Path: e, ImplSource: "oh_aci"},
			"Last edit to " + e + " undone successfully. " + catN(e, "hello world", "second line", "")},
		{"UndoEditWithoutHistoryIsAnError", &eventbus.FileEditAction{Command: "undo_edit", Path: e, ImplSource: "oh_aci"},
			"ERROR:\nNo edit history found for " + e + "."},
		{"PlainReadSeesTheUndoneFile", &eventbus.FileReadAction{Path: e, End: -1},
			"hello world\nsecond line\n"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			obs := s.exec(t, st.act, 20)
			switch a := st.act.(type) {
			case *eventbus.FileEditAction:
				o, ok := obs.Observation.(*eventbus.FileEditObservation)
				if !ok || o.Path != a.Path || o.ImplSource != "oh_aci" {
					t.Fatalf("got %s %+v, want an oh_aci edit observation for %s", obs.Type(), obs.Observation, a.Path)
				}
			case *eventbus.FileReadAction:
				o, ok := obs.Observation.(*eventbus.FileReadObservation)
				want := a.ImplSource
				if want == "" {
					want = "default" // OpenHands' FileReadSource.DEFAULT
				}
				if !ok || o.Path != a.Path || o.ImplSource != want {
					t.Fatalf("got %s %+v, want a read observation for %s (impl_source %q)", obs.Type(), obs.Observation, a.Path, want)
				}
			}
			if obs.Content != st.want {
				t.Errorf("content\n%q\nwant\n%q", obs.Content, st.want)
			}
		})
	}
}

func (s *suite) transfer(t *testing.T) {
	ft := s.conn
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files := map[string]string{"a.txt": "alpha\n", "sub/b.txt": "beta"}
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for _, n := range []string{"a.txt", "sub/b.txt"} {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, files[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	dest := s.ws + "/conformance/up"
	t.Run("UploadZipUnpacksIntoTheDestination", func(t *testing.T) {
		if err := ft.Upload(ctx, dest, bytes.NewReader(zb.Bytes()), "bundle.zip", true); err != nil {
			t.Fatalf("Upload: %v", err)
		}
		if err := ft.Upload(ctx, dest, strings.NewReader("plain"), "plain.txt", false); err != nil {
			t.Fatalf("Upload of a plain file: %v", err)
		}
		obs, _ := s.run(t, "cat "+dest+"/sub/b.txt", 20)
		if obs.Content != "beta" {
			t.Errorf("sandbox reads %q from the upload, want %q", obs.Content, "beta")
		}
	})
	t.Run("ListFilesPutsDirectoriesFirstWithSlash", func(t *testing.T) {
		got, err := ft.ListFiles(ctx, dest)
		if err != nil {
			t.Fatalf("ListFiles: %v", err)
		}
		if want := []string{"sub/", "a.txt", "plain.txt"}; !slices.Equal(got, want) {
			t.Errorf("ListFiles(%s) = %q, want %q", dest, got, want)
		}
		if got, err := ft.ListFiles(ctx, dest+"/nope"); err != nil || len(got) != 0 {
			t.Errorf("ListFiles of a missing directory = %q, %v; want empty", got, err)
		}
	})
	t.Run("DownloadZipRoundTripsTheUpload", func(t *testing.T) {
		var out bytes.Buffer
		if err := ft.Download(ctx, dest, &out); err != nil {
			t.Fatalf("Download: %v", err)
		}
		zr, err := zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("Download is not a zip: %v", err)
		}
		got := map[string]string{}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			got[f.Name] = string(b)
		}
		want := map[string]string{"a.txt": "alpha\n", "sub/b.txt": "beta", "plain.txt": "plain"}
		if len(got) != len(want) {
			t.Errorf("download has %q, want %q", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("download entry %s = %q, want %q", k, got[k], v)
			}
		}
	})
}

func (s *suite) ipython(t *testing.T) {
	if !s.h.HasPython {
		t.Run("CellWithoutPython3IsAClearError", func(t *testing.T) {
			obs := s.exec(t, &eventbus.IPythonRunCellAction{Code: "print(1)", IncludeExtra: true, ConfirmationState: eventbus.Confirmed}, 20)
			const want = "Cannot run IPython cell: no python3 interpreter was found on PATH in the sandbox."
			if _, ok := obs.Observation.(*eventbus.ErrorObservation); !ok || !strings.HasPrefix(obs.Content, want) {
				t.Errorf("got %s %q, want an error starting %q", obs.Type(), obs.Content, want)
			}
		})
		return
	}
	cell := func(t *testing.T, code string, extra bool) string {
		t.Helper()
		obs := s.exec(t, &eventbus.IPythonRunCellAction{Code: code, IncludeExtra: extra, ConfirmationState: eventbus.Confirmed}, 30)
		o, ok := obs.Observation.(*eventbus.IPythonRunCellObservation)
		if !ok || o.Code != code {
			t.Fatalf("cell %q: got %s %q, want a run_ipython observation", code, obs.Type(), obs.Content)
		}
		return obs.Content
	}
	t.Run("CellWithoutOutputSaysSo", func(t *testing.T) {
		if got := cell(t, "x = 21", false); got != "[Code executed successfully with no output]" {
			t.Errorf("content %q", got)
		}
	})
	t.Run("GlobalsAreKeptBetweenCellsAndExtrasAppended", func(t *testing.T) {
		got := cell(t, "print(x * 2)", true)
		want := "42\n[Jupyter current working directory: " + s.ws + "]\n[Jupyter Python interpreter: "
		if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "]") {
			t.Errorf("content %q, want it to start %q", got, want)
		}
	})
	t.Run("CellFollowsTheBashCwd", func(t *testing.T) {
		s.run(t, "cd /tmp", 20)
		defer s.run(t, "cd "+s.ws, 20)
		if got := cell(t, "import os; print(os.getcwd())", false); got != "/tmp" {
			t.Errorf("cwd in the kernel %q, want /tmp", got)
		}
	})
}

func (s *suite) longOutput(t *testing.T) {
	// Pure bash: the minimal image has no python3 and busybox's tools vary.
	obs, o := s.run(t, `s=$(printf '%20000s'); echo "${s// /a}${s// /b}"`, 30)
	half := maxCmdOutput / 2
	want := strings.Repeat("a", half) + truncationMarker + strings.Repeat("b", half)
	if obs.Content != want {
		n := min(len(obs.Content), 40)
		t.Errorf("content is %d chars starting %q ending %q; want %d chars: 15000 a, the marker, 15000 b",
			len(obs.Content), obs.Content[:n], obs.Content[len(obs.Content)-n:], len(want))
	}
	if o.Metadata.ExitCode != 0 || o.Metadata.Suffix != completed(0) {
		t.Errorf("exit %d suffix %q", o.Metadata.ExitCode, o.Metadata.Suffix)
	}
}

func (s *suite) secondConnection(t *testing.T) {
	c := s.dial(t)
	defer c.Close()
	obs, _ := s.runAction(t, c, cmd("echo $CONFORMANCE_VAR"), 20)
	if obs.Content != "kept-42" {
		t.Errorf("second connection sees %q, want the session's kept-42", obs.Content)
	}
}

func (s *suite) liveOutput(t *testing.T) {
	ev := eventbus.NewAction(eventbus.SourceAgent, cmd("echo streamed-1; echo streamed-2"))
	s.id++
	ev.ID = s.id
	ev.SetHardTimeout(20, false)
	var (
		mu   sync.Mutex
		seqs []uint64
		data strings.Builder
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obs, err := s.conn.Execute(ctx, "", ev, func(seq uint64, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		seqs = append(seqs, seq)
		data.Write(b)
	})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if want := "streamed-1\nstreamed-2"; obs.Content != want {
		t.Errorf("content %q, want %q", obs.Content, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) == 0 {
		t.Fatal("no live output chunk before the observation")
	}
	for i, q := range seqs {
		if q != uint64(i+1) {
			t.Fatalf("chunk seqs %v, want 1..%d", seqs, len(seqs))
		}
	}
	if !strings.Contains(data.String(), "streamed-2") {
		t.Errorf("live output %q lacks the command's output", data.String())
	}
}

// watchedExec runs a on c on a goroutine; seen closes once the live output
// contains want, done receives the observation.
type watchedExec struct {
	mu   sync.Mutex
	live strings.Builder
	seen chan struct{}
	done chan *eventbus.Event
	err  chan error
}

func (s *suite) execWatched(t *testing.T, c runtimes.AgentConn, a eventbus.Action, timeout float64, want string) *watchedExec {
	t.Helper()
	ev := eventbus.NewAction(eventbus.SourceAgent, a)
	s.id++
	ev.ID = s.id
	ev.SetHardTimeout(timeout, true)
	w := &watchedExec{seen: make(chan struct{}), done: make(chan *eventbus.Event, 1), err: make(chan error, 1)}
	var once sync.Once
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeout*float64(time.Second))+30*time.Second)
		defer cancel()
		obs, err := c.Execute(ctx, "", ev, func(_ uint64, b []byte) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.live.Write(b)
			if want != "" && strings.Contains(w.live.String(), want) {
				once.Do(func() { close(w.seen) })
			}
		})
		if err != nil {
			w.err <- err
			return
		}
		w.done <- obs
	}()
	return w
}

// wait returns the observation, failing on a transport error.
func (w *watchedExec) wait(t *testing.T) *eventbus.Event {
	t.Helper()
	select {
	case obs := <-w.done:
		return obs
	case err := <-w.err:
		t.Fatalf("Execute: %v", err)
		return nil
	}
}

// started waits until the live output shows want (or the action ended).
func (w *watchedExec) started(t *testing.T) {
	t.Helper()
	select {
	case <-w.seen:
	case obs := <-w.done:
		w.done <- obs
		t.Fatalf("the action ended before its output showed it started: %q", obs.Content)
	case err := <-w.err:
		t.Fatalf("Execute: %v", err)
	}
}

func (w *watchedExec) output() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live.String()
}

// interrupt: AgentConn.Interrupt reaches the running command at once, from
// another connection, past the Execute waiting for it; the command's
// observation has OpenHands' C-c semantics.
func (s *suite) interrupt(t *testing.T) {
	const ctrlC = "\n[The command completed with exit code 130. CTRL+C was sent.]"
	other := s.dial(t)
	defer other.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct{ name, command, started string }{
		{"SleepEndsWithExit130", "echo started; sleep 100", "started"},
		{"BusyLoopEndsWithExit130", "while true; do echo tick; sleep 0.5; done", "tick"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := s.execWatched(t, s.conn, cmd(tc.command), 60, tc.started)
			w.started(t)
			if err := other.Interrupt(ctx); err != nil {
				t.Fatalf("Interrupt: %v", err)
			}
			obs := w.wait(t)
			o, ok := obs.Observation.(*eventbus.CmdOutputObservation)
			if !ok || o.Metadata.ExitCode != 130 || o.Metadata.Suffix != ctrlC {
				t.Fatalf("got %s %q %+v; want exit 130 and suffix %q", obs.Type(), obs.Content, obs.Observation, ctrlC)
			}
			if obs, o := s.run(t, "echo usable", 20); obs.Content != "usable" || o.Metadata.Suffix != completed(0) {
				t.Errorf("after the interrupt: %q %q, want the shell usable", obs.Content, o.Metadata.Suffix)
			}
		})
	}
	t.Run("NothingRunningIsANoOp", func(t *testing.T) {
		if err := other.Interrupt(ctx); err != nil {
			t.Fatalf("Interrupt with nothing running: %v", err)
		}
		if obs, o := s.run(t, "echo still", 20); obs.Content != "still" || o.Metadata.Suffix != completed(0) {
			t.Errorf("after a no-op interrupt: %q %q", obs.Content, o.Metadata.Suffix)
		}
	})
	if !s.h.HasPython {
		return
	}
	t.Run("PythonCellGetsKeyboardInterrupt", func(t *testing.T) {
		code := "import time\nprint('started', flush=True)\ntime.sleep(100)"
		w := s.execWatched(t, s.conn, &eventbus.IPythonRunCellAction{Code: code, ConfirmationState: eventbus.Confirmed}, 60, "started")
		w.started(t)
		if err := other.Interrupt(ctx); err != nil {
			t.Fatalf("Interrupt: %v", err)
		}
		obs := w.wait(t)
		if _, ok := obs.Observation.(*eventbus.IPythonRunCellObservation); !ok || !strings.Contains(obs.Content, "KeyboardInterrupt") {
			t.Fatalf("got %s %q; want the cell's KeyboardInterrupt", obs.Type(), obs.Content)
		}
	})
}

// liveOutputIsClean: live chunks carry exactly what commands print, never
// the PS1 protocol blocks; also output ending at and around a 64 KiB read,
// and a big output. Pure bash: the minimal image has few tools.
func (s *suite) liveOutputIsClean(t *testing.T) {
	var big strings.Builder
	for i := 1; i <= 30000; i++ {
		big.WriteString(itoa(i) + "\n")
	}
	for _, tc := range []struct{ name, command, want string }{
		{"LineOutput", "echo hello", "hello\n"},
		{"NoTrailingNewline", "printf 'no newline'", "no newline"},
		{"BlankLines", `printf 'a\n\n\n'`, "a\n\n\n"},
		{"NoOutput", "true", ""},
		{"MarkerTextThatIsNotAPrompt", `printf '%s\n' '###PS1JSON###' '{}' x`, "###PS1JSON###\n{}\nx\n"},
		{"Exactly64KiB", `s=$(printf '%65536s'); printf '%s' "${s// /x}"`, strings.Repeat("x", 65536)},
		{"Around64KiB", `s=$(printf '%65535s'); printf '%s\n\n' "${s// /x}"`, strings.Repeat("x", 65535) + "\n\n"},
		{"BigOutput", "for ((i=1; i<=30000; i++)); do echo $i; done", big.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := s.execWatched(t, s.conn, cmd(tc.command), 60, "")
			obs := w.wait(t)
			if _, ok := obs.Observation.(*eventbus.CmdOutputObservation); !ok {
				t.Fatalf("got %s %q", obs.Type(), obs.Content)
			}
			got := w.output()
			if strings.Contains(got, "###PS1END###") {
				t.Fatalf("a PS1 block reached the live output: %q", got[max(0, strings.Index(got, "###PS1END###")-200):])
			}
			if got != tc.want {
				t.Errorf("live output is %d bytes starting %q; want exactly the %d bytes printed", len(got), got[:min(len(got), 80)], len(tc.want))
			}
		})
	}
}
