package eventbus

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestMaskReplacesSecretsInStringValues(t *testing.T) {
	m := newMasker(map[string]string{"tok": "s3cr3t", "pw": "hunter2", "empty": "", "long": "s3cr3t-and-more"})
	cases := []struct {
		name, in, want string
	}{
		{"nested object string", `{"extras":{"command":"echo s3cr3t"}}`, `{"extras":{"command":"echo <secret_hidden>"}}`},
		{"inside lists, unlike OpenHands", `{"args":{"argv":["a","hunter2",["x hunter2"]]}}`, `{"args":{"argv":["a","<secret_hidden>",["x <secret_hidden>"]]}}`},
		{"protected top-level keys untouched, message masked", `{"id":1,"timestamp":"s3cr3t","source":"hunter2","message":"Running s3cr3t","action":"hunter2","cause":2,"observation":"s3cr3t"}`,
			`{"id":1,"timestamp":"s3cr3t","source":"hunter2","message":"Running <secret_hidden>","action":"hunter2","cause":2,"observation":"s3cr3t"}`},
		{"protected names only protect at top level", `{"args":{"message":"s3cr3t"}}`, `{"args":{"message":"<secret_hidden>"}}`},
		{"top-level content is masked", `{"content":"out: s3cr3t\n"}`, `{"content":"out: <secret_hidden>\n"}`},
		{"longer secret wins over its prefix", `{"content":"s3cr3t-and-more"}`, `{"content":"<secret_hidden>"}`},
		{"escaped secret found after decoding", `{"content":"hunt\u0065r2 \"q\""}`, `{"content":"<secret_hidden> \"q\""}`},
		{"keys are not masked", `{"extras":{"s3cr3t":1}}`, `{"extras":{"s3cr3t":1}}`},
		{"numbers, bools, null untouched", `{"a":[1,-2.5e3,true,false,null],"b":{}}`, `{"a":[1,-2.5e3,true,false,null],"b":{}}`},
		{"several occurrences", `{"content":"s3cr3t s3cr3t"}`, `{"content":"<secret_hidden> <secret_hidden>"}`},
		{"whitespace between tokens", "{ \"content\" : [ \"hunter2\" ] }", "{ \"content\" : [ \"<secret_hidden>\" ] }"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, changed, err := m.mask([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Fatalf("mask(%s)\n got %s\nwant %s", tc.in, out, tc.want)
			}
			if changed != (tc.in != tc.want) {
				t.Fatalf("changed = %v", changed)
			}
			if !json.Valid(out) {
				t.Fatalf("output is not valid JSON: %s", out)
			}
		})
	}
}

func TestMaskRejectsMalformedJSONWithoutPanicking(t *testing.T) {
	m := newMasker(map[string]string{"a": "x"})
	for _, in := range []string{"", "{", `{"a":"x`, `{"a" "x"}`, `{"a":}`, `[1,2`, `{"a":"x"}}`, strings.Repeat("[", 20000)} {
		if _, _, err := m.mask([]byte(in)); err == nil {
			t.Fatalf("mask(%.30q) accepted malformed JSON", in)
		}
	}
}

func TestNoSecretsMeansNoMasker(t *testing.T) {
	if newMasker(nil) != nil || newMasker(map[string]string{"a": ""}) != nil {
		t.Fatal("a masker was built with nothing to mask")
	}
}

func TestStreamMasksBeforePersistAndFanOut(t *testing.T) {
	checkLeaks(t)
	s := openTestStream(t, nil)
	s.SetSecrets(map[string]string{"gh": "ghp_SECRET"})
	s.UpdateSecrets(map[string]string{"aws": "AKIA_SECRET"})
	sub, err := s.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	act := NewAction(SourceAgent, &CmdRunAction{Command: "export T=ghp_SECRET K=AKIA_SECRET", ConfirmationState: Confirmed, SecurityRisk: RiskUnknown})
	stored := mustAppend(t, s, act)
	obs := NewObservation(0, "token ghp_SECRET", &IPythonRunCellObservation{Code: "print(1)", ImageURLs: []string{"http://x/?k=AKIA_SECRET"}})
	mustAppend(t, s, obs)

	if got := stored.Action.(*CmdRunAction).Command; got != "export T=<secret_hidden> K=<secret_hidden>" {
		t.Fatalf("returned event not masked: %q", got)
	}
	if act.Action.(*CmdRunAction).Command != "export T=ghp_SECRET K=AKIA_SECRET" {
		t.Fatal("caller's event was modified")
	}
	live := collect(t, sub, 2)
	items, err := s.Search(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range append(live, items...) {
		// Unlike OpenHands, the derived message is masked too.
		if strings.Contains(string(it.JSON), "SECRET") {
			t.Fatalf("item %d leaks a secret: %s", i, it.JSON)
		}
		ev, _ := it.Event()
		if ev.IsAction() {
			if c := ev.Action.(*CmdRunAction).Command; strings.Contains(c, "SECRET") {
				t.Fatalf("decoded event leaks: %q", c)
			}
		} else if !reflect.DeepEqual(ev.Observation.(*IPythonRunCellObservation).ImageURLs, []string{"http://x/?k=<secret_hidden>"}) || ev.Content != "token <secret_hidden>" {
			t.Fatalf("observation not masked: %+v %q", ev.Observation, ev.Content)
		}
	}
	if !strings.Contains(string(items[0].JSON), `"message":"Running command: export T=<secret_hidden>`) {
		t.Fatalf("top-level message must be masked: %s", items[0].JSON)
	}
	s.SetSecrets(nil)
	plain := mustAppend(t, s, runAction("echo ghp_SECRET"))
	if plain.Action.(*CmdRunAction).Command != "echo ghp_SECRET" {
		t.Fatal("SetSecrets(nil) did not clear the secrets")
	}
}
