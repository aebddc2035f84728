package eventbus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// jsonSeeds are inputs for the scanner's differential fuzzers: valid and
// invalid JSON of every kind encoding/json tells apart.
var jsonSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `1E+2`, `true`, `false`, `null`,
	` {"a" : [1, 2.0, "x", null, {"b":{}}]} `, `{"a":1,"a":2}`,
	`"\u00e9\ud83d\ude00\ud800\udc00x\ud800"`, `"\"\\\/\b\f\n\r\t"`, "\"\xff\xfe\"", "\"é\"",
	`01`, `1.`, `.5`, `-`, `1e`, `+1`, `{"a"}`, `{"a":}`, `{,}`, `[1,]`, `[1 2]`, `"\x"`, `"\u12"`,
	"\"a\x01\"", `tru`, `nul`, `{"a":1}}`, `"unterminated`, ``, ` `,
}

// FuzzScannerAcceptsExactlyValidJSON checks the scanner's validation
// against encoding/json's: the same inputs are valid JSON for both.
func FuzzScannerAcceptsExactlyValidJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := scanner{data: data}
		_, err := s.skip(0)
		if err == nil {
			err = s.end()
		}
		if want := json.Valid(data); (err == nil) != want {
			t.Fatalf("scanner valid = %v (%v), encoding/json valid = %v, for %q", err == nil, err, want, data)
		}
	})
}

// FuzzScannerStringsDecodeLikeEncodingJSON checks string decoding (escapes,
// surrogates, invalid UTF-8) against encoding/json's.
func FuzzScannerStringsDecodeLikeEncodingJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		if strings.HasPrefix(s, `"`) {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want string
		werr := json.Unmarshal(data, &want)
		s := scanner{data: data}
		got, err := s.stringValue()
		if err == nil {
			err = s.end()
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("scanner err = %v, encoding/json err = %v, for %q", err, werr, data)
		}
		if err == nil && got != want {
			t.Fatalf("scanner decoded %q, encoding/json %q, from %q", got, want, data)
		}
	})
}

// payloadTypeNames lists every action and observation type, for the
// payload fuzzer to pick from.
func payloadTypeNames() []string {
	var names []string
	for _, n := range strings.Split(knownActions(), ", ") {
		names = append(names, "action:"+n)
	}
	for _, n := range strings.Split(knownObservations(), ", ") {
		names = append(names, "observation:"+n)
	}
	return names
}

func newPayload(name string) any {
	kind, t, _ := strings.Cut(name, ":")
	if kind == "action" {
		return newAction(t)
	}
	return newObservation(t)
}

// FuzzPayloadDecodesLikeEncodingJSON checks the payload decoder against
// json.Unmarshal into the same struct: whatever encoding/json accepts, the
// codec accepts with the same result (save OpenHands' rule that an
// out-of-range security_risk is unknown). Where encoding/json refuses, the
// codec may accept only integral floats in int fields and invalid risks.
func FuzzPayloadDecodesLikeEncodingJSON(f *testing.F) {
	names := payloadTypeNames()
	for i := range names {
		f.Add(uint8(i), []byte(`{}`))
	}
	f.Add(uint8(0), []byte(`{"command":"ls","is_input":true,"cwd":null,"Command":"pwd","security_risk":5,"x":{"y":[1]}}`))
	f.Add(uint8(2), []byte(`{"path":"/a","start":1.0,"view_range":[1,null,-1],"impl_source":null}`))
	f.Add(uint8(4), []byte(`{"insert_line":"3","file_text":"a\u00e9","old_str":null}`))
	f.Add(uint8(16), []byte(`{"forgotten_event_ids":[],"summary_offset":2,"forgotten_events_start_id":null}`))
	for i, n := range names {
		switch n {
		case "observation:run":
			f.Add(uint8(i), []byte(`{"command":"ls","metadata":{"exit_code":0,"pid":-1,"username":"u","prefix":""},"metadata":{"pid":7},"hidden":false}`))
		case "observation:browse":
			f.Add(uint8(i), []byte(`{"url":"u","dom_object":{"a":1},"active_page_index":2,"goal_image_urls":[]}`))
		case "action:message":
			f.Add(uint8(i), []byte(`{"content":"hi","image_urls":["a",null],"file_urls":null,"wait_for_response":true}`))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := names[int(which)%len(names)]
		want, got := newPayload(name), newPayload(name)
		werr := json.Unmarshal(data, want)
		_, err := payloadPlans[reflect.TypeOf(got).Elem()].decodeValue(data, reflect.ValueOf(got).Elem())
		if werr != nil {
			var ute *json.UnmarshalTypeError
			lenient := errors.As(werr, &ute) && (strings.HasPrefix(ute.Value, "number") || strings.HasSuffix(ute.Field, "security_risk"))
			if err == nil && !lenient {
				t.Fatalf("%s: codec accepted what encoding/json refuses (%v): %q", name, werr, data)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: codec refused what encoding/json decodes: %v\n%q", name, err, data)
		}
		resetInvalidRisk(want)
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%s: decoded differently from encoding/json\ninput:  %q\njson:   %+v\ncodec:  %+v", name, data, want, got)
		}
	})
}

// decodeValue (for the fuzzers) decodes data, which must be one JSON object (or null, which
// changes nothing) and nothing else, into struct v.
func (p *payloadPlan) decodeValue(data []byte, v reflect.Value) (seen uint64, err error) {
	s := scanner{data: data}
	switch c := s.peek(); {
	case c == 'n':
		_, err = s.null()
	case c != '{' && c != 0:
		return 0, fmt.Errorf("expected an object, got %s", s.kindAt())
	default:
		seen, err = p.decode(&s, v, 1, nil)
	}
	if err == nil {
		err = s.end()
	}
	return seen, err
}

// resetInvalidRisk applies OpenHands' rule to a payload encoding/json
// decoded: a security_risk outside -1..2 is unknown.
func resetInvalidRisk(p any) {
	v := reflect.ValueOf(p).Elem().FieldByName("SecurityRisk")
	if v.IsValid() && (v.Int() < -1 || v.Int() > 2) {
		v.SetInt(int64(RiskUnknown))
	}
}

func TestScannerRefusesNestingDeeperThanEncodingJSON(t *testing.T) {
	deep := strings.Repeat("[", maxJSONDepth+2) + strings.Repeat("]", maxJSONDepth+2)
	s := scanner{data: []byte(deep)}
	if _, err := s.skip(0); err == nil || !strings.Contains(err.Error(), "nesting deeper") {
		t.Fatalf("want a nesting error, got %v", err)
	}
	_, err := Unmarshal([]byte(`{"action":"run","x":` + deep + `}`))
	var de *DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "nesting deeper") {
		t.Fatalf("want a DecodeError about nesting, got %v", err)
	}
}

func TestDecodedEventOwnsItsBytes(t *testing.T) {
	in := []byte(`{"id":1,"observation":"mcp","content":"c","extras":{"name":"n","arguments":{"k":"v"}},"future":{"a":1},"tool_call_metadata":{"t":1}}`)
	e, err := Unmarshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Marshal(e)
	for i := range in {
		in[i] = ' ' // the caller reuses its buffer
	}
	got, _ := Marshal(e)
	if string(got) != string(want) {
		t.Fatalf("event changed with its input buffer:\nbefore %s\nafter  %s", want, got)
	}
	if args := string(e.Observation.(*MCPObservation).Arguments); args != `{"k":"v"}` {
		t.Fatalf("arguments = %s", args)
	}
}

func TestUnknownKeysNeedingEscapesReEncodeAsValidJSON(t *testing.T) {
	in := `{"action":"think","args":{"thought":"t"},"a\"b\n":1,"\u00e9":2}`
	e, err := Unmarshal([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	semanticEqual(t, []byte(in), out)
}

func TestRepeatedKeysTakeTheLastValueLikeEncodingJSON(t *testing.T) {
	e, err := Unmarshal([]byte(`{"id":1,"id":2,"action":"run","args":{"command":"a","command":"b"},"x":1,"x":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != 2 || e.Action.(*CmdRunAction).Command != "b" {
		t.Fatalf("id=%d command=%q", e.ID, e.Action.(*CmdRunAction).Command)
	}
	out, _ := Marshal(e)
	if strings.Count(string(out), `"x"`) != 1 || !strings.Contains(string(out), `"x":2`) {
		t.Fatalf("repeated unknown key not collapsed to its last value: %s", out)
	}
}

// FuzzPayloadEncodesLikeEncodingJSON checks the payload encoder against
// encoding/json (HTML escaping off) on payloads filled by encoding/json
// from the fuzzer's bytes: the same output, byte for byte.
func FuzzPayloadEncodesLikeEncodingJSON(f *testing.F) {
	names := payloadTypeNames()
	for i := range names {
		f.Add(uint8(i), []byte(`{}`))
	}
	f.Add(uint8(0), []byte(`{"command":"ls <a> & \u2028 \ud800","cwd":"/w","security_risk":2,"hidden":true}`))
	f.Add(uint8(2), []byte(`{"path":"/a","start":-3,"view_range":[1,-1]}`))
	f.Add(uint8(4), []byte(`{"insert_line":  { "a" : [ 1 , 2 ] } ,"file_text":"\u00e9\n"}`))
	f.Add(uint8(12), []byte(`{"image_urls":[],"file_urls":["x"]}`))
	f.Add(uint8(16), []byte(`{"forgotten_event_ids":[1,2],"summary_offset":2,"forgotten_events_start_id":-1}`))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := names[int(which)%len(names)]
		p := newPayload(name)
		if json.Unmarshal(data, p) != nil {
			return
		}
		want, werr := marshalNoEscape(p)
		var got bytes.Buffer
		err := encodePayload(&got, p)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%s: codec err %v, encoding/json err %v, for %+v", name, err, werr, p)
		}
		if err == nil && got.String() != string(want) {
			t.Fatalf("%s: codec wrote\n%s\nencoding/json\n%s", name, got.String(), want)
		}
	})
}

func TestPayloadEncoderRefusesAnEmptyRawMessageLikeEncodingJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := encodePayload(&buf, &MCPObservation{Name: "n", Arguments: json.RawMessage{}}); err == nil {
		t.Fatalf("want an error for an empty (non-nil) RawMessage, got %s", buf.String())
	}
	if _, err := Marshal(NewObservation(InvalidID, "", &MCPObservation{Arguments: json.RawMessage(`{"a":`)})); err == nil {
		t.Fatal("Marshal accepted invalid raw JSON in a payload")
	}
}

// FuzzPayloadEqualAgreesWithDeepEqual checks the plan's equality (Marshal's
// "was the payload changed?") against reflect.DeepEqual on two payloads of
// one type filled by encoding/json from the two halves of the input.
func FuzzPayloadEqualAgreesWithDeepEqual(f *testing.F) {
	names := payloadTypeNames()
	f.Add(uint8(0), []byte(`{"command":"a","cwd":"/w"}`), []byte(`{"command":"a","cwd":"/w"}`))
	f.Add(uint8(0), []byte(`{"command":"a","cwd":"/w"}`), []byte(`{"command":"a","cwd":"/x"}`))
	f.Add(uint8(0), []byte(`{"cwd":null}`), []byte(`{"cwd":""}`))
	f.Add(uint8(2), []byte(`{"view_range":[]}`), []byte(`{"view_range":null}`))
	f.Add(uint8(2), []byte(`{"view_range":[1,2]}`), []byte(`{"view_range":[1,3]}`))
	f.Add(uint8(7), []byte(`{"arguments":{}}`), []byte(`{"arguments":{ }}`))
	f.Fuzz(func(t *testing.T, which uint8, da, db []byte) {
		name := names[int(which)%len(names)]
		a, b := newPayload(name), newPayload(name)
		if json.Unmarshal(da, a) != nil || json.Unmarshal(db, b) != nil {
			return
		}
		if got, want := payloadEqual(a, b), reflect.DeepEqual(a, b); got != want {
			t.Fatalf("%s: payloadEqual = %v, reflect.DeepEqual = %v\n%+v\n%+v", name, got, want, a, b)
		}
	})
}

func TestEscapedKeysSurviveTheirValuesBeingRead(t *testing.T) {
	// The key is decoded into the scanner's scratch buffer; reading its
	// value (with escaped keys of its own) must not overwrite it.
	in := `{"action":"message","k\u00e9y":{"n\u00e9sted":{"d\u00e9eper":1}},"args":{"content":"c","\u00e9x":{"\u00e9y":2}}}`
	e, err := Unmarshal([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := Marshal(e)
	semanticEqual(t, []byte(in), out)
}

func TestAPayloadDecodedInTheFirstPassIsDroppedWhenARepeatedKeyReplacesItsType(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"type repeated after args", `{"action":"run","args":{"path":"/p","command":"c"},"action":"read"}`, "read"},
		{"args repeated", `{"action":"run","args":{"command":"a"},"args":{"command":"b"}}`, "run:b"},
		{"invalid first args", `{"action":"run","args":{"command":5},"args":{"command":"x"}}`, "run:x"},
		{"type after args", `{"args":{"command":"a"},"action":"run"}`, "run:a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Unmarshal([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got := e.Type()
			if a, ok := e.Action.(*CmdRunAction); ok {
				got += ":" + a.Command
			}
			if got != tc.want {
				t.Fatalf("decoded %s, want %s", got, tc.want)
			}
			if r, ok := e.Action.(*FileReadAction); ok && r.Path != "/p" {
				t.Fatalf("read path = %q", r.Path)
			}
		})
	}
}

func TestManyUnknownKeysDecodeAndRepeatedOnesKeepTheirLastValue(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"action":"null"`)
	const n = 200000 // quadratic bookkeeping would take minutes here
	for i := range n {
		fmt.Fprintf(&b, `,"k%d":%d`, i, i)
	}
	b.WriteString(`,"k7":"last"}`)
	e, err := Unmarshal([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.raw.unknown) != n {
		t.Fatalf("%d unknown keys kept, want %d", len(e.raw.unknown), n)
	}
	out, err := Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"k7":"last"`) || strings.Contains(string(out), `"k7":7`) {
		t.Fatal("the repeated key does not keep its last value")
	}
}
