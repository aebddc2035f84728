package eventbus

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// writeOpenHandsSession lays out a trajectory fixture the way OpenHands'
// EventStream stores it: sessions/<sid>/events/<id>.json, json.dumps style.
func writeOpenHandsSession(t *testing.T, root, sid, fixture string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "openhands-trajs", fixture))
	if err != nil {
		t.Fatal(err)
	}
	var events []map[string]any
	if err := json.Unmarshal(data, &events); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "sessions", sid, "events")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		b, _ := json.MarshalIndent(e, "", " ")
		id := strconv.FormatInt(int64(e["id"].(float64)), 10)
		if err := os.WriteFile(filepath.Join(dir, id+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return events
}

func readOpenHandsSession(t *testing.T, root, sid string) map[string]map[string]any {
	t.Helper()
	dir := filepath.Join(root, "sessions", sid, "events")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		out[e.Name()] = m
	}
	return out
}

func TestImportExportRoundTripKeepsIDsAndGaps(t *testing.T) {
	checkLeaks(t)
	for _, fixture := range []string{"basic_interactions.json", "basic_gui_mode.json", "wrong_initial_state.json", "basic.json"} {
		t.Run(fixture, func(t *testing.T) {
			st, _ := newTestStore(t, nil)
			src := t.TempDir()
			events := writeOpenHandsSession(t, src, "oh-sid", fixture)
			if err := st.Import(context.Background(), src, "oh-sid", "imported"); err != nil {
				t.Fatal(err)
			}
			dst := t.TempDir()
			if err := st.Export(context.Background(), "imported", dst); err != nil {
				t.Fatal(err)
			}
			got := readOpenHandsSession(t, dst, "imported")
			if len(got) != len(events) {
				t.Fatalf("exported %d files, want %d", len(got), len(events))
			}
			maxID := int64(-1)
			for _, want := range events {
				id := int64(want["id"].(float64))
				maxID = max(maxID, id)
				name := strconv.FormatInt(id, 10) + ".json"
				if !reflect.DeepEqual(got[name], want) {
					a, _ := json.Marshal(want)
					b, _ := json.Marshal(got[name])
					t.Fatalf("event %d changed:\nwant %s\n got %s", id, a, b)
				}
			}
			// Appends continue after the highest imported id.
			s, err := st.Open("imported")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Len() != len(events) || s.LastID() != maxID {
				t.Fatalf("Len %d LastID %d, want %d and %d", s.Len(), s.LastID(), len(events), maxID)
			}
			if e := mustAppend(t, s, runAction("true")); e.ID != maxID+1 {
				t.Fatalf("append after import got id %d, want %d", e.ID, maxID+1)
			}
			// A subscription replays the gapped ids in order.
			sub, err := s.Subscribe(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			items := collect(t, sub, len(events)+1)
			for i, it := range items[:len(events)] {
				if it.ID != int64(events[i]["id"].(float64)) {
					t.Fatalf("replayed id %d at %d, want %v", it.ID, i, events[i]["id"])
				}
			}
		})
	}
}

func TestImportRejectsBadInputAndLeavesNoSession(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"file name is not an id", map[string]string{"x.json": `{}`}, "not <id>.json"},
		{"content is not an event", map[string]string{"0.json": `{"foo":1}`}, "0.json"},
		{"id disagrees with the file name", map[string]string{"3.json": `{"id":4,"source":"user","action":"message","args":{"content":"hi"}}`}, "holds event id 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newTestStore(t, nil)
			root := t.TempDir()
			dir := filepath.Join(root, "sessions", "x", "events")
			os.MkdirAll(dir, 0o755)
			for n, c := range tc.files {
				os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
			}
			err := st.Import(context.Background(), root, "x", "y")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import: err = %v, want it to mention %q", err, tc.want)
			}
			if ids, _ := st.Sessions(); len(ids) != 0 {
				t.Fatalf("failed import left sessions %v", ids)
			}
		})
	}
	st, _ := newTestStore(t, nil)
	s, _ := st.Open("taken")
	s.Close()
	root := t.TempDir()
	writeOpenHandsSession(t, root, "x", "basic.json")
	if err := st.Import(context.Background(), root, "x", "taken"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("import over an existing session: %v", err)
	}
}
