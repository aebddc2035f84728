package eventbus

import (
	"encoding/json"
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
