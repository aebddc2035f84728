package sandbox

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"corral/eventbus"
)

// TestExecuteOpenHandsJSONRoundTrip drives the executor with action JSON as
// OpenHands sends it and checks the observation JSON it would answer with.
func TestExecuteOpenHandsJSONRoundTrip(t *testing.T) {
	x, dir := newTestExecutor(t)
	f := filepath.Join(dir, "a.txt")
	steps := []struct {
		action string
		check  func(t *testing.T, obs map[string]any)
	}{
		{`{"id":5,"source":"agent","action":"write","args":{"path":"a.txt","content":"one\ntwo","thought":""},"timeout":120}`,
			func(t *testing.T, o map[string]any) {
				if o["observation"] != "write" || o["extras"].(map[string]any)["path"] != f || o["content"] != "" {
					t.Fatalf("write: %v", o)
				}
			}},
		{`{"id":6,"source":"agent","action":"read","args":{"path":"a.txt"}}`,
			func(t *testing.T, o map[string]any) {
				if o["observation"] != "read" || o["content"] != "one\ntwo\n" {
					t.Fatalf("read with default start/end: %v", o)
				}
			}},
		{`{"id":7,"source":"agent","action":"edit","args":{"path":"` + f + `","command":"insert","insert_line":"1","new_str":"mid","impl_source":"oh_aci"},"tool_call_metadata":{"function_name":"str_replace_editor","tool_call_id":"call_1","model_response":{},"total_calls_in_response":1}}`,
			func(t *testing.T, o map[string]any) {
				ex := o["extras"].(map[string]any)
				if o["observation"] != "edit" || ex["diff"] != "--- "+f+"\n+++ "+f+"\n@@ -1,0 +2 @@\n+mid" || ex["new_content"] != "mid" || ex["old_content"] != nil {
					t.Fatalf("edit: %v", o)
				}
				if tc, ok := o["tool_call_metadata"].(map[string]any); !ok || tc["tool_call_id"] != "call_1" {
					t.Fatalf("tool_call_metadata not copied: %v", o["tool_call_metadata"])
				}
			}},
	}
	for _, s := range steps {
		ev, err := eventbus.Unmarshal([]byte(s.action))
		if err != nil {
			t.Fatalf("decode %s: %v", s.action, err)
		}
		obs := x.Execute(context.Background(), ev, nil)
		raw, err := eventbus.Marshal(obs)
		if err != nil {
			t.Fatalf("encode observation: %v", err)
		}
		var o map[string]any
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		if o["cause"] != float64(ev.ID) {
			t.Fatalf("cause %v for action %d: %s", o["cause"], ev.ID, raw)
		}
		s.check(t, o)
	}
}
