package agentwire

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestFramesKeepShellTextLiteral(t *testing.T) {
	obs := json.RawMessage(`{"observation":"run","content":"a && b < c > d","extras":{"command":"x && y"}}`)
	b, err := encodeFrame(&Frame{Type: TypeResult, ReqID: "r1", Observation: obs})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`a && b < c > d`)) || bytes.Contains(b, []byte(`\u0026`)) {
		t.Fatalf("frame escapes shell text: %s", b)
	}
	f, err := DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Observation, obs) {
		t.Fatalf("observation changed: %s", f.Observation)
	}
}
