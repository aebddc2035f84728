package eventbus

import (
	"encoding/json"
)

// rawEvent keeps what Unmarshal saw, so Marshal can write unknown and legacy
// keys back unchanged. base* are the encodings of the typed values right
// after decoding: a typed field whose encoding still equals its base value
// was not changed by the program and is written as the input had it.
type rawEvent struct {
	top         map[string]json.RawMessage
	payload     map[string]json.RawMessage
	basePayload map[string]json.RawMessage
}

// Unmarshal decodes one OpenHands event (event_to_dict output).
func Unmarshal(data []byte) (*Event, error) {
	panic("codec: being written")
}

// Marshal encodes e as OpenHands JSON.
func Marshal(e *Event) ([]byte, error) {
	panic("codec: being written")
}
