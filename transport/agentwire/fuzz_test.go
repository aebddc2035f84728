package agentwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeFrame: DecodeFrame never panics, rejects with ErrBadFrame, and
// every frame it accepts survives an encode/decode round trip unchanged.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","protocol":1,"version":"dev"}`,
		`{"type":"exec","req_id":"0123456789abcdef0123456789abcdef","action":{"action":"run","args":{"command":"ls"}}}`,
		`{"type":"exec","req_id":"r","action":{"action":"run","args":{}},"after_seq":3,"after_offset":120}`,
		`{"type":"chunk","req_id":"r","seq":1,"offset":0,"data":"aGkK"}`,
		`{"type":"gap","req_id":"r","after_seq":0,"next_seq":5,"next_offset":4096,"lost_bytes":4096}`,
		`{"type":"result","req_id":"r","observation":{"observation":"run","content":"hi"},"last_seq":1}`,
		`{"type":"resume","req_id":"r","after_seq":2}`,
		`{"type":"cancel","req_id":"r"}`,
		`{"type":"list_files","req_id":"r","path":"/workspace"}`,
		`{"type":"files","req_id":"r","files":["a/","b"]}`,
		`{"type":"ping"}`, `{"type":"pong","req_id":"x"}`,
		`{"type":"hello","protocol":1,"version":"v1","instance":"i","features":["interrupt"]}`,
		`{"type":"hello","protocol":1,"features":[]}`, `{"type":"hello","protocol":1,"features":"interrupt"}`,
		`{"type":"interrupt","req_id":"i-1"}`, `{"type":"interrupt"}`, `{"type":"interrupt","req_id":"a b"}`,
		`{"type":"interrupted","req_id":"i-1","running":true}`, `{"type":"interrupted","req_id":"i-1","running":"yes"}`,
		`{"type":"error","req_id":"i-1","code":"interrupt_failed","message":"m"}`,
		`{"type":"error","req_id":"r","code":"bad_frame","message":"m"}`,
		`{"type":"chunk","req_id":"r","seq":0}`, `{"type":"exec","req_id":"a b","action":{}}`,
		`{"type":"chunk","req_id":"r","seq":1,"data":"!!notbase64"}`, `[]`, `null`, `{"type":7}`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, fastOK := decodeChunkFast(data)
		fr, err := DecodeFrame(data)
		if fastOK {
			if err != nil {
				t.Fatalf("fast path accepted what the generic decoder rejects (%v): %q", err, data)
			}
			if len(fast.Data) == 0 && len(fr.Data) == 0 {
				fast.Data, fr.Data = nil, nil
			}
			if !reflect.DeepEqual(fast, fr) {
				t.Fatalf("fast path %+v, generic %+v", fast, fr)
			}
		}
		if err == nil && fr.Type == TypeChunk {
			want, _ := json.Marshal(fr)
			if got := appendChunk(nil, fr.ReqID, fr.Seq, fr.Offset, fr.Data); !bytes.Equal(got, want) {
				t.Fatalf("appendChunk %s, json.Marshal %s", got, want)
			}
			if g, ok := decodeChunkFast(want); !ok || g.Seq != fr.Seq || !bytes.Equal(g.Data, fr.Data) {
				t.Fatalf("fast path rejects encoder output %s", want)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error does not wrap ErrBadFrame: %v", err)
			}
			return
		}
		b, err := json.Marshal(fr)
		if err != nil {
			t.Fatalf("accepted frame does not encode: %v", err)
		}
		again, err := DecodeFrame(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		b2, _ := json.Marshal(again)
		if !reflect.DeepEqual(b, b2) {
			t.Fatalf("round trip changed the frame:\n%s\n%s", b, b2)
		}
	})
}
