package eventbus

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// FuzzUnmarshal checks that no input makes the decoder panic and that every
// event it accepts re-encodes to JSON it accepts again.
func FuzzUnmarshal(f *testing.F) {
	for _, file := range fixtureFiles(f) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var events []json.RawMessage
		if err := json.Unmarshal(data, &events); err != nil {
			f.Fatal(err)
		}
		for _, e := range events {
			f.Add([]byte(e))
		}
	}
	f.Add([]byte(`{"action":"run","args":{"command":"ls","is_confirmed":"rejected"},"timeout":1.5}`))
	f.Add([]byte(`{"observation":"run","extras":{"exit_code":1,"command_id":2}}`))
	f.Add([]byte(`{"action":"edit","args":{"translated_ipython_code":"print(file_editor(**{'command': 'create', 'path': '/a', 'file_text': '\\x41'}))"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Unmarshal(data)
		if err != nil {
			return
		}
		out, err := Marshal(e)
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		if _, err := Unmarshal(out); err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, out)
		}
	})
}

// FuzzWriteString checks the codec's string writer against encoding/json.
func FuzzWriteString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"uote\\", "\x00\x1f\n\r\t\b\f", "é😀", "\u2028\u2029", "\xff\xfe", "<a&b>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		writeString(&buf, s)
		want, err := marshalNoEscape(s)
		if err != nil {
			t.Fatal(err)
		}
		if buf.String() != string(want) {
			t.Fatalf("writeString(%q) = %s, encoding/json %s", s, buf.String(), want)
		}
	})
}
