package eventbus

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// openHandsActionTypes and openHandsObservationTypes are OpenHands' own
// type strings (ActionType and ObservationType of the OpenHands release
// Corral follows): what its event_from_dict decodes.
func openHandsActionTypes() []string {
	return strings.Split("run, run_ipython, read, write, edit, browse, browse_interactive, call_tool_mcp, think, finish, reject, delegate, message, system, recall, change_agent_state, condensation, condensation_request, task_tracking, loop_recovery, null", ", ")
}

func openHandsObservationTypes() []string {
	return strings.Split("run, run_ipython, read, write, edit, browse, mcp, error, user_rejected, null, think, agent_state_changed, delegate, success, condense, recall, download, task_tracking, loop_detection", ", ")
}

// checkOpenHandsJSON fails unless js is an event OpenHands decodes: it
// decodes here and its type is one of OpenHands' own.
func checkOpenHandsJSON(t *testing.T, js []byte) {
	t.Helper()
	e, err := Unmarshal(js)
	if err != nil {
		t.Fatalf("does not decode: %v: %s", err, js)
	}
	types := openHandsObservationTypes()
	if e.IsAction() {
		types = openHandsActionTypes()
	}
	if !slices.Contains(types, e.Type()) {
		t.Fatalf("type %q is not an OpenHands type: %s", e.Type(), js)
	}
}

func TestOnlyCorralTypesAreCorralExtensions(t *testing.T) {
	var fixtureTypes []string
	for _, f := range []string{"basic.json", "basic_gui_mode.json", "basic_interactions.json", "wrong_initial_state.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "openhands-trajs", f))
		if err != nil {
			t.Fatal(err)
		}
		var raws []json.RawMessage
		if err := json.Unmarshal(b, &raws); err != nil {
			t.Fatal(err)
		}
		for _, r := range raws {
			e, err := Unmarshal(r)
			if err != nil {
				t.Fatal(err)
			}
			fixtureTypes = append(fixtureTypes, e.Type())
			if e.IsCorralExtension() || isCorralJSON(r) {
				t.Fatalf("%s: OpenHands' own %q event counted as a Corral extension", f, e.Type())
			}
		}
	}
	if len(fixtureTypes) == 0 {
		t.Fatal("no fixture events")
	}
	tests := []struct {
		name string
		ev   *Event
		want bool
	}{
		{"runtime_status observation", NewObservation(InvalidID, "", &RuntimeStatusObservation{Status: StatusReady, Level: "info"}), true},
		{"run observation", runObs(0, 1), false},
		{"run action", NewAction(SourceAgent, &CmdRunAction{Command: "ls"}), false},
		{"agent_state_changed observation", NewObservation(InvalidID, "", &AgentStateChangedObservation{AgentState: "running"}), false},
		{"error observation", NewError(0, "X", "boom"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			js, err := Marshal(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.ev.IsCorralExtension(); got != tc.want {
				t.Errorf("Event.IsCorralExtension() = %v, want %v", got, tc.want)
			}
			if got := (&Item{JSON: js}).IsCorralExtension(); got != tc.want {
				t.Errorf("Item.IsCorralExtension() of the JSON = %v, want %v", got, tc.want)
			}
			if !tc.want {
				checkOpenHandsJSON(t, js)
			}
		})
	}
	for _, typ := range append(openHandsActionTypes(), openHandsObservationTypes()...) {
		if isCorralType(true, typ) || isCorralType(false, typ) {
			t.Errorf("OpenHands type %q counted as a Corral extension", typ)
		}
	}
}

// sessionWithRuntimeStatus stores a session whose runtime status events
// come first, in the middle and last, as a real session's do.
func sessionWithRuntimeStatus(t *testing.T, st *Store, sid string) *Stream {
	t.Helper()
	s, err := st.Open(sid)
	if err != nil {
		t.Fatal(err)
	}
	status := func(st string) *Event {
		return NewObservation(InvalidID, "", &RuntimeStatusObservation{Status: st, Level: "info"})
	}
	mustAppend(t, s, status(StatusStartingRuntime)) // 0
	mustAppend(t, s, status(StatusReady))           // 1
	a := mustAppend(t, s, NewAction(SourceAgent, &CmdRunAction{Command: "echo hi"}))
	mustAppend(t, s, status(StatusErrorRuntimeDisconnected)) // 3
	mustAppend(t, s, runObs(a.ID, 0))                        // 4, cause 2
	mustAppend(t, s, NewAction(SourceAgent, &AgentFinishAction{}))
	mustAppend(t, s, status(StatusStopped)) // 6
	return s
}

func TestExportWritesOnlyOpenHandsEventsUnderTheirStoredIDsUnlessAskedForCorralExtensions(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name     string
		opts     []ExportOption
		wantIDs  []string
		wantLast int64 // last id after importing the export back
	}{
		{name: "default leaves runtime_status out", wantIDs: []string{"2.json", "4.json", "5.json"}, wantLast: 5},
		{name: "ExportCorralExtensions keeps them", opts: []ExportOption{ExportCorralExtensions()}, wantIDs: []string{"0.json", "1.json", "2.json", "3.json", "4.json", "5.json", "6.json"}, wantLast: 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newTestStore(t, nil)
			sessionWithRuntimeStatus(t, st, "s").Close()
			root := t.TempDir()
			// A stale file of an event the export leaves out must go.
			dir := filepath.Join(root, "sessions", "s", "events")
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "6.json"), []byte(`{"id":6,"observation":"runtime_status"}`), 0o644)
			if err := st.Export(context.Background(), "s", root, tc.opts...); err != nil {
				t.Fatal(err)
			}
			got := readOpenHandsSession(t, root, "s")
			var names []string
			for n := range got {
				names = append(names, n)
			}
			slices.Sort(names)
			if strings.Join(names, ",") != strings.Join(tc.wantIDs, ",") {
				t.Fatalf("exported %v, want %v", names, tc.wantIDs)
			}
			if len(tc.opts) == 0 {
				for _, n := range names {
					b, _ := os.ReadFile(filepath.Join(dir, n))
					checkOpenHandsJSON(t, b)
				}
				if got["4.json"]["cause"] != float64(2) {
					t.Fatalf("the run observation's cause is %v, want 2 (its action's stored id)", got["4.json"]["cause"])
				}
			}
			// What was exported imports back with the same ids.
			if err := st.Import(context.Background(), root, "s", "back"); err != nil {
				t.Fatal(err)
			}
			s, err := st.Open("back")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Len() != len(tc.wantIDs) || s.LastID() != tc.wantLast {
				t.Fatalf("imported back: %d events, last id %d", s.Len(), s.LastID())
			}
		})
	}
}

func TestSearchCanExcludeCorralExtensions(t *testing.T) {
	st, _ := newTestStore(t, nil)
	s := sessionWithRuntimeStatus(t, st, "s")
	defer s.Close()
	items, err := s.Search(context.Background(), Filter{ExcludeCorralExtensions: true, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].ID != 2 || items[1].ID != 4 {
		t.Fatalf("Search = %d items starting %v, want ids 2 and 4 (the limit counts kept events)", len(items), items)
	}
}
