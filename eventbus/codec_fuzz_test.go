package eventbus

import (
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
