package eventbus

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixtureFiles are real OpenHands trajectories (copied from
// shared/fixtures/openhands-trajs so the repository tests itself).
func fixtureFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/openhands-trajs/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no trajectory fixtures found: %v", err)
	}
	return files
}

func semanticEqual(t *testing.T, want, got []byte) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("re-encoded event is not JSON: %v\n%s", err, got)
	}
	if !reflect.DeepEqual(w, g) {
		t.Fatalf("round trip changed the event\nwant: %s\ngot:  %s", want, got)
	}
}

func TestEveryFixtureEventRoundTripsToSemanticallyEqualJSON(t *testing.T) {
	for _, f := range fixtureFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var events []json.RawMessage
			if err := json.Unmarshal(data, &events); err != nil {
				t.Fatal(err)
			}
			for i, raw := range events {
				e, err := Unmarshal(raw)
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				out, err := Marshal(e)
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				semanticEqual(t, raw, out)
				// A second trip is stable too.
				e2, err := Unmarshal(out)
				if err != nil {
					t.Fatalf("event %d second decode: %v", i, err)
				}
				out2, _ := Marshal(e2)
				semanticEqual(t, out, out2)
			}
		})
	}
}

func TestLegacyTranslatedIPythonCodeFillsEditArgs(t *testing.T) {
	data, err := os.ReadFile("testdata/openhands-trajs/basic.json")
	if err != nil {
		t.Fatal(err)
	}
	var events []json.RawMessage
	_ = json.Unmarshal(data, &events)
	e, err := Unmarshal(events[1])
	if err != nil {
		t.Fatal(err)
	}
	a, ok := e.Action.(*FileEditAction)
	if !ok {
		t.Fatalf("want *FileEditAction, got %T", e.Action)
	}
	if a.Command != "create" || a.FileText == nil || !strings.HasPrefix(*a.FileText, "import random\nimport keyboard\n") {
		t.Fatalf("legacy args not applied: command=%q file_text=%v", a.Command, a.FileText)
	}
	if a.Path != "/workspace/game_2048.py" {
		t.Fatalf("path = %q", a.Path)
	}
}

func TestLegacyFieldsAreInterpretedAndKept(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, e *Event)
	}{
		{"is_confirmed becomes confirmation_state",
			`{"id":1,"action":"run","args":{"command":"ls","is_confirmed":"rejected"}}`,
			func(t *testing.T, e *Event) {
				if got := e.Action.(*CmdRunAction).ConfirmationState; got != Rejected {
					t.Fatalf("confirmation_state = %q", got)
				}
			}},
		{"images_urls becomes image_urls",
			`{"action":"message","args":{"content":"hi","images_urls":["a.png"]}}`,
			func(t *testing.T, e *Event) {
				if got := e.Action.(*MessageAction).ImageURLs; len(got) != 1 || got[0] != "a.png" {
					t.Fatalf("image_urls = %v", got)
				}
			}},
		{"legacy exit_code and command_id fold into metadata",
			`{"observation":"run","content":"x","extras":{"command":"ls","exit_code":3,"command_id":42}}`,
			func(t *testing.T, e *Event) {
				md := e.Observation.(*CmdOutputObservation).Metadata
				if md.ExitCode != 3 || md.PID != 42 {
					t.Fatalf("metadata = %+v", md)
				}
			}},
		{"invalid security_risk is dropped",
			`{"action":"run","args":{"command":"ls","security_risk":"high"}}`,
			func(t *testing.T, e *Event) {
				if got := e.Action.(*CmdRunAction).SecurityRisk; got != RiskUnknown {
					t.Fatalf("security_risk = %d", got)
				}
			}},
		{"float ints are accepted",
			`{"id":3.0,"action":"read","args":{"path":"/a","start":1.0,"end":-1}}`,
			func(t *testing.T, e *Event) {
				if e.ID != 3 || e.Action.(*FileReadAction).Start != 1 {
					t.Fatalf("id=%d start=%d", e.ID, e.Action.(*FileReadAction).Start)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Unmarshal([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, e)
			out, err := Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			semanticEqual(t, []byte(tc.in), out)
		})
	}
}

func TestUnknownFieldsSurviveARoundTrip(t *testing.T) {
	in := `{"id":7,"source":"agent","action":"run","args":{"command":"ls","future_flag":{"x":[1,2]}},"future_top":"kept","timeout":30}`
	e, err := Unmarshal([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := Marshal(e)
	semanticEqual(t, []byte(in), out)
}

func TestChangedTypedFieldsWinOverTheDecodedInput(t *testing.T) {
	e, err := Unmarshal([]byte(`{"id":1,"action":"run","args":{"command":"ls","is_confirmed":"awaiting_confirmation"}}`))
	if err != nil {
		t.Fatal(err)
	}
	e.Action.(*CmdRunAction).SetConfirmation(Confirmed)
	out, _ := Marshal(e)
	e2, err := Unmarshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := e2.Action.(*CmdRunAction).ConfirmationState; got != Confirmed {
		t.Fatalf("confirmation_state after change = %q; output %s", got, out)
	}
}

func TestFreshEventsEncodeLikeOpenHands(t *testing.T) {
	cwd := "/workspace"
	user, host, py := "openhands", "h", "/usr/bin/python"
	a := NewAction(SourceAgent, &CmdRunAction{Command: "mv a b", ConfirmationState: Confirmed, SecurityRisk: RiskUnknown})
	a.ID = 5
	a.Timestamp = "2025-01-27T23:16:56.951967"
	a.SetHardTimeout(120, false)
	got, err := Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":5,"timestamp":"2025-01-27T23:16:56.951967","source":"agent","message":"Running command: mv a b","action":"run","args":{"command":"mv a b","is_input":false,"thought":"","blocking":false,"is_static":false,"cwd":null,"hidden":false,"confirmation_state":"confirmed","security_risk":-1},"timeout":120}`
	semanticEqual(t, []byte(want), got)

	o := NewObservation(5, "", &CmdOutputObservation{Command: "mv a b", Metadata: CmdOutputMetadata{
		ExitCode: 0, PID: -1, Username: &user, Hostname: &host, WorkingDir: &cwd, PyInterpreterPath: &py,
		Suffix: "\n[The command completed with exit code 0.]"}})
	o.ID, o.Source, o.Timestamp = 6, SourceAgent, "2025-01-27T23:16:57.600730"
	got, _ = Marshal(o)
	want = `{"id":6,"timestamp":"2025-01-27T23:16:57.600730","source":"agent","message":"Command ` + "`mv a b`" + ` executed with exit code 0.","cause":5,"observation":"run","content":"","extras":{"command":"mv a b","metadata":{"exit_code":0,"pid":-1,"username":"openhands","hostname":"h","working_dir":"/workspace","py_interpreter_path":"/usr/bin/python","prefix":"","suffix":"\n[The command completed with exit code 0.]"},"hidden":false},"success":true}`
	semanticEqual(t, []byte(want), got)

	n := NewAction(SourceAgent, &CmdRunAction{Command: "x"})
	got, _ = Marshal(n)
	if strings.Contains(string(got), `"id"`) {
		t.Fatalf("unassigned id must be omitted: %s", got)
	}
}

func TestMarshalDoesNotEscapeHTMLLikePython(t *testing.T) {
	e := NewObservation(InvalidID, "a <b> & c", &NullObservation{})
	got, _ := Marshal(e)
	if !strings.Contains(string(got), `"a <b> & c"`) {
		t.Fatalf("content escaped: %s", got)
	}
}

func TestBadInputGivesErrorsNamingTheField(t *testing.T) {
	tests := []struct {
		name, in, field string
		unknown         bool
	}{
		{"not json", `{"id":`, "", false},
		{"array", `[1,2]`, "", false},
		{"null", `null`, "", false},
		{"neither kind", `{"id":1}`, "", false},
		{"both kinds", `{"action":"run","observation":"run"}`, "", false},
		{"unknown action", `{"action":"teleport","args":{}}`, "action", true},
		{"unknown observation", `{"observation":"teleport"}`, "observation", true},
		{"id string", `{"id":"x","action":"null"}`, "id", false},
		{"id fraction", `{"id":1.5,"action":"null"}`, "id", false},
		{"cause object", `{"cause":{},"observation":"null"}`, "cause", false},
		{"timeout string", `{"timeout":"soon","action":"null"}`, "timeout", false},
		{"args not object", `{"action":"run","args":"ls"}`, "args", false},
		{"wrong arg type", `{"action":"run","args":{"command":5}}`, "args.command", false},
		{"extras wrong type", `{"observation":"run","extras":{"metadata":"x"}}`, "extras.metadata", false},
		{"nested field wrong type", `{"observation":"run","extras":{"metadata":{"exit_code":"0"}}}`, "extras.metadata.exit_code", false},
		{"int field fraction", `{"action":"read","args":{"start":1.5}}`, "args.start", false},
		{"int field out of range", `{"action":"read","args":{"start":99999999999999999999}}`, "args.start", false},
		{"list element wrong type", `{"action":"message","args":{"image_urls":["a",3]}}`, "args.image_urls", false},
		{"list wrong type", `{"action":"read","args":{"view_range":{}}}`, "args.view_range", false},
		{"legacy exit_code wrong type", `{"observation":"run","extras":{"exit_code":"x"}}`, "extras.exit_code", false},
		{"legacy is_confirmed wrong type", `{"action":"run","args":{"is_confirmed":1}}`, "args.confirmation_state", false},
		{"bool field wrong type", `{"action":"run","args":{"blocking":"yes"}}`, "args.blocking", false},
		{"success wrong type", `{"observation":"run","success":"yes"}`, "success", false},
		{"content wrong type", `{"observation":"run","content":1}`, "content", false},
		{"timestamp wrong type", `{"timestamp":1,"action":"null"}`, "timestamp", false},
		{"action type not a string", `{"action":1}`, "action", false},
		{"trailing data", `{"action":"null"} x`, "", false},
		{"invalid escape", `{"action":"null","message":"\q"}`, "", false},
		{"control character in string", "{\"action\":\"null\",\"message\":\"a\x01\"}", "", false},
		{"leading zero", `{"action":"null","id":01}`, "", false},
		{"unterminated object", `{"action":"null"`, "", false},
		{"empty input", ``, "", false},
		{"source number", `{"source":1,"action":"null"}`, "source", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal([]byte(tc.in))
			if err == nil {
				t.Fatal("want an error")
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("want *DecodeError, got %T %v", err, err)
			}
			if de.Field != tc.field {
				t.Fatalf("field = %q, want %q (%v)", de.Field, tc.field, err)
			}
			if errors.Is(err, ErrUnknownType) != tc.unknown {
				t.Fatalf("ErrUnknownType = %v, want %v", errors.Is(err, ErrUnknownType), tc.unknown)
			}
		})
	}
}

func TestParseFileEditorCall(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]any
		bad  bool
	}{
		{"view", `print(file_editor(**{'command': 'view', 'path': '/workspace'}))`, map[string]any{"command": "view", "path": "/workspace"}, false},
		{"escapes", `print(file_editor(**{'file_text': 'a\nb\'c\\d\x41\u00e9', 'insert_line': 3, 'view_range': [1, -1], 'x': None, 'y': True}))`,
			map[string]any{"file_text": "a\nb'c\\dAé", "insert_line": float64(3), "view_range": []any{float64(1), float64(-1)}, "x": nil, "y": true}, false},
		{"double quoted", `print(file_editor(**{"path": "/a'b"}))`, map[string]any{"path": "/a'b"}, false},
		{"no call", `print(1)`, nil, true},
		{"code not literal", `print(file_editor(**{'path': open('/etc/passwd').read()}))`, nil, true},
		{"unterminated", `print(file_editor(**{'path': '/a`, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFileEditorCall(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("want error, got %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			var g map[string]any
			_ = json.Unmarshal(b, &g)
			if !reflect.DeepEqual(g, tc.want) {
				t.Fatalf("got %v want %v", g, tc.want)
			}
		})
	}
}

func TestCloneIsIndependent(t *testing.T) {
	e := NewAction(SourceAgent, &CmdRunAction{Command: "a"})
	e.SetHardTimeout(3, true)
	c := e.Clone()
	c.Action.(*CmdRunAction).Command = "b"
	*c.Timeout = 9
	if e.Action.(*CmdRunAction).Command != "a" || *e.Timeout != 3 {
		t.Fatal("clone shares state with the original")
	}
}
