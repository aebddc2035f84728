package eventbus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"unicode/utf8"
)

// DecodeError says which part of an event could not be decoded.
type DecodeError struct {
	Field string // JSON path of the offending field, e.g. "args.command"; "" for the whole event
	Err   error
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return "decode event: " + e.Err.Error()
	}
	return fmt.Sprintf("decode event: field %q: %v", e.Field, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// ErrUnknownType is wrapped by decode errors for an action or observation
// type OpenHands does not define.
var ErrUnknownType = errors.New("unknown event type")

// rawEvent keeps what Unmarshal saw, so Marshal can write unknown and legacy
// keys back unchanged. basePayload holds the encodings of the typed payload
// fields right after decoding: a field whose encoding still equals its base
// was not changed by the program and is written as the input had it (or
// left out, if the input lacked it).
type rawEvent struct {
	top        map[string]json.RawMessage
	payloadRaw json.RawMessage // the args/extras object as given (nil when absent)
	base       any             // a copy of the typed payload right after decoding
}

// ownedKey reports whether the codec writes top-level key k itself for an
// event of the given kind; every other key is carried through verbatim.
func ownedKey(k string, isAction bool) bool {
	switch k {
	case "id", "timestamp", "source", "message", "cause", "timeout", "tool_call_metadata", "llm_metrics":
		return true
	case "action", "args":
		return isAction
	case "observation", "content", "extras", "success":
		return !isAction
	}
	return false
}

// Unmarshal decodes one OpenHands event (the output of OpenHands'
// event_to_dict). Legacy fields of older OpenHands versions are understood
// (reference §7.4) and, like any key this package does not know, written back
// unchanged by Marshal.
func Unmarshal(data []byte) (*Event, error) {
	countDecode()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, &DecodeError{Err: fmt.Errorf("not a JSON object: %w", err)}
	}
	if top == nil {
		return nil, &DecodeError{Err: errors.New("not a JSON object: got null")}
	}
	e := &Event{ID: InvalidID}
	if err := decodeEnvelope(top, e); err != nil {
		return nil, err
	}
	_, isAction := top["action"]
	_, isObs := top["observation"]
	var err error
	switch {
	case isAction && isObs:
		return nil, &DecodeError{Err: errors.New(`has both "action" and "observation"; an event is one or the other`)}
	case isAction:
		err = decodeAction(top, e)
	case isObs:
		err = decodeObservation(top, e)
	default:
		return nil, &DecodeError{Err: errors.New(`has neither "action" nor "observation"`)}
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

func decodeEnvelope(top map[string]json.RawMessage, e *Event) error {
	if v, ok := top["id"]; ok && !isNull(v) {
		id, err := decodeInt(v)
		if err != nil {
			return &DecodeError{Field: "id", Err: err}
		}
		e.ID = id
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"timestamp", &e.Timestamp}, {"message", &e.Message}} {
		if v, ok := top[f.key]; ok && !isNull(v) {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return &DecodeError{Field: f.key, Err: fmt.Errorf("expected a string, got %s", jsonKind(v))}
			}
		}
	}
	if v, ok := top["source"]; ok && !isNull(v) {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return &DecodeError{Field: "source", Err: fmt.Errorf("expected a string, got %s", jsonKind(v))}
		}
		e.Source = Source(s)
	}
	if v, ok := top["cause"]; ok && !isNull(v) {
		c, err := decodeInt(v)
		if err != nil {
			return &DecodeError{Field: "cause", Err: err}
		}
		e.Cause = &c
	}
	if v, ok := top["timeout"]; ok && !isNull(v) {
		var t float64
		if err := json.Unmarshal(v, &t); err != nil {
			return &DecodeError{Field: "timeout", Err: fmt.Errorf("expected a number of seconds, got %s", jsonKind(v))}
		}
		e.Timeout = &t
	}
	_, isAction := top["action"]
	if v, ok := top["content"]; ok && !isNull(v) && !isAction {
		if err := json.Unmarshal(v, &e.Content); err != nil {
			return &DecodeError{Field: "content", Err: fmt.Errorf("expected a string, got %s", jsonKind(v))}
		}
	}
	if v, ok := top["success"]; ok && !isNull(v) && !isAction {
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return &DecodeError{Field: "success", Err: fmt.Errorf("expected a boolean, got %s", jsonKind(v))}
		}
		e.Success = &b
	}
	if v, ok := top["tool_call_metadata"]; ok && !isNull(v) {
		e.ToolCallMetadata = v
	}
	if v, ok := top["llm_metrics"]; ok && !isNull(v) {
		e.LLMMetrics = v
	}
	return nil
}

func decodeAction(top map[string]json.RawMessage, e *Event) error {
	var t string
	if err := json.Unmarshal(top["action"], &t); err != nil {
		return &DecodeError{Field: "action", Err: fmt.Errorf("expected a string, got %s", jsonKind(top["action"]))}
	}
	a := newAction(t)
	if a == nil {
		return &DecodeError{Field: "action", Err: fmt.Errorf("%w: action %q (known: %s)", ErrUnknownType, t, knownActions())}
	}
	rawArgs := top["args"]
	if err := decodePayload(rawArgs, "args", a, legacyActionKeys, func(norm map[string]json.RawMessage) {
		normalizeActionArgs(t, norm)
	}); err != nil {
		return &DecodeError{Field: "args", Err: fmt.Errorf("%s action: %w", t, err)}
	}
	fixSecurityRisk(a)
	e.Action = a
	e.raw = &rawEvent{top: top, payloadRaw: rawArgs, base: a.cloneAction()}
	return nil
}

// legacyActionKeys and legacyObservationKeys are the keys whose presence
// sends a payload through the slow, key-by-key decode.
var (
	legacyActionKeys      = []string{`"timestamp"`, `"is_confirmed"`, `"images_urls"`, `"translated_ipython_code"`}
	legacyObservationKeys = []string{`"exit_code"`, `"command_id"`}
)

// decodePayload decodes the args/extras object raw into v. Payloads with
// none of the legacy keys are decoded directly; the others are normalised
// key by key first.
func decodePayload(raw json.RawMessage, field string, v any, legacy []string, normalize func(map[string]json.RawMessage)) error {
	if len(raw) == 0 || isNull(raw) {
		return nil
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &DecodeError{Field: field, Err: fmt.Errorf("expected an object, got %s", jsonKind(raw))}
	}
	slow := false
	for _, k := range legacy {
		if bytes.Contains(raw, []byte(k)) {
			slow = true
			break
		}
	}
	if !slow {
		if err := json.Unmarshal(raw, v); err == nil {
			return nil
		}
		// Fall through: the key-by-key path names the offending field and
		// accepts integral floats and invalid security risks.
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return &DecodeError{Field: field, Err: fmt.Errorf("expected an object, got %s", jsonKind(raw))}
	}
	normalize(m)
	return decodeInto(m, v)
}

// normalizeActionArgs applies OpenHands' legacy rules for action args.
func normalizeActionArgs(t string, norm map[string]json.RawMessage) {
	delete(norm, "timestamp")
	if rv, ok := norm["security_risk"]; ok {
		if r, err := decodeInt(rv); err != nil || r < -1 || r > 2 {
			delete(norm, "security_risk") // OpenHands drops an invalid risk
		}
	}
	if v, ok := norm["is_confirmed"]; ok {
		if _, has := norm["confirmation_state"]; !has {
			norm["confirmation_state"] = v
		}
	}
	if v, ok := norm["images_urls"]; ok {
		if _, has := norm["image_urls"]; !has {
			norm["image_urls"] = v
		}
	}
	if v, ok := norm["translated_ipython_code"]; ok {
		var code string
		if json.Unmarshal(v, &code) == nil {
			if kw, err := parseFileEditorCall(code); err == nil {
				for k, val := range kw {
					if k == "command" && t == "read" {
						continue // the read action is itself the `view`
					}
					if k == "view_range" && t != "read" {
						continue
					}
					if _, has := norm[k]; !has {
						norm[k] = val
					}
				}
			}
		}
	}
}

// fixSecurityRisk resets a decoded risk outside OpenHands' range.
func fixSecurityRisk(a Action) {
	v := reflect.ValueOf(a).Elem().FieldByName("SecurityRisk")
	if v.IsValid() {
		if r := v.Int(); r < -1 || r > 2 {
			v.SetInt(int64(RiskUnknown))
		}
	}
}

func decodeObservation(top map[string]json.RawMessage, e *Event) error {
	var t string
	if err := json.Unmarshal(top["observation"], &t); err != nil {
		return &DecodeError{Field: "observation", Err: fmt.Errorf("expected a string, got %s", jsonKind(top["observation"]))}
	}
	o := newObservation(t)
	if o == nil {
		return &DecodeError{Field: "observation", Err: fmt.Errorf("%w: observation %q (known: %s)", ErrUnknownType, t, knownObservations())}
	}
	rawExtras := top["extras"]
	if err := decodePayload(rawExtras, "extras", o, legacyObservationKeys, func(norm map[string]json.RawMessage) {
		if t == "run" {
			_ = foldLegacyMetadata(norm)
		}
	}); err != nil {
		return &DecodeError{Field: "extras", Err: fmt.Errorf("%s observation: %w", t, err)}
	}
	e.Observation = o
	e.raw = &rawEvent{top: top, payloadRaw: rawExtras, base: o.cloneObservation()}
	return nil
}

// foldLegacyMetadata moves the legacy extras exit_code / command_id into
// metadata, as OpenHands' observation_from_dict does.
func foldLegacyMetadata(extras map[string]json.RawMessage) error {
	ec, hasEC := extras["exit_code"]
	cid, hasCID := extras["command_id"]
	if !hasEC && !hasCID {
		return nil
	}
	md := map[string]json.RawMessage{}
	if v, ok := extras["metadata"]; ok && !isNull(v) {
		if err := json.Unmarshal(v, &md); err != nil {
			return fmt.Errorf("expected an object, got %s", jsonKind(v))
		}
	}
	if hasEC {
		md["exit_code"] = ec
	}
	if hasCID {
		md["pid"] = cid
	}
	b, err := json.Marshal(md)
	if err != nil {
		return err
	}
	extras["metadata"] = b
	return nil
}

// decodeInto decodes the fields of m into the struct v field by field, so an
// error names the field. Numbers written as floats with integral values are
// accepted for int fields (Python writes 120.0 for some ints).
func decodeInto(m map[string]json.RawMessage, v any) error {
	if len(m) == 0 {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			if fixed, ok := coerceIntegralFloats(m); ok {
				if b2, err2 := json.Marshal(fixed); err2 == nil && json.Unmarshal(b2, v) == nil {
					return nil
				}
			}
			return fmt.Errorf("field %q: expected %s, got JSON %s", ute.Field, ute.Type, ute.Value)
		}
		return err
	}
	return nil
}

// coerceIntegralFloats rewrites top-level numbers like 3.0 to 3.
func coerceIntegralFloats(m map[string]json.RawMessage) (map[string]json.RawMessage, bool) {
	out := make(map[string]json.RawMessage, len(m))
	changed := false
	for k, v := range m {
		out[k] = v
		if len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) && bytes.ContainsAny(v, ".eE") {
			if f, err := strconv.ParseFloat(string(v), 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
				out[k] = json.RawMessage(strconv.FormatInt(int64(f), 10))
				changed = true
			}
		}
	}
	return out, changed
}

// fieldsOf returns the JSON encoding of each field of a payload struct.
func fieldsOf(v any) (map[string]json.RawMessage, error) {
	b, err := marshalNoEscape(v)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Marshal encodes e as OpenHands JSON: top-level keys only when set (id
// omitted when InvalidID), an action's "args" with all of its fields, an
// observation's "content", "extras" and, for the types that define it,
// "success". An event that came from Unmarshal is written back with every key
// it had, changed only where the program changed the typed value.
func Marshal(e *Event) ([]byte, error) {
	countEncode()
	if (e.Action == nil) == (e.Observation == nil) {
		return nil, errors.New("encode event: exactly one of Action and Observation must be set")
	}
	buf := bytes.NewBuffer(make([]byte, 0, 256))
	buf.WriteByte('{')
	first := true
	key := func(k string) {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		buf.WriteByte('"')
		buf.WriteString(k)
		buf.WriteString(`":`)
	}
	if e.ID != InvalidID {
		key("id")
		buf.WriteString(strconv.FormatInt(e.ID, 10))
	}
	if e.Timestamp != "" {
		key("timestamp")
		writeString(buf, e.Timestamp)
	}
	if e.Source != "" {
		key("source")
		writeString(buf, string(e.Source))
	}
	msg := e.Message
	if msg == "" && e.raw == nil {
		if e.Action != nil {
			msg = actionMessage(e.Action)
		} else {
			msg = observationMessage(e.Observation, e.Content)
		}
	}
	if msg != "" || (e.raw != nil && e.raw.top["message"] != nil) {
		key("message")
		writeString(buf, msg)
	}
	if e.Cause != nil {
		key("cause")
		buf.WriteString(strconv.FormatInt(*e.Cause, 10))
	}
	var err error
	if e.Action != nil {
		key("action")
		writeString(buf, e.Action.ActionType())
		key("args")
		err = writePayload(buf, e.Action, e.raw)
		if e.Timeout != nil {
			key("timeout")
			writeFloat(buf, *e.Timeout)
		}
	} else {
		key("observation")
		writeString(buf, e.Observation.ObservationType())
		key("content")
		writeString(buf, e.Content)
		key("extras")
		err = writePayload(buf, e.Observation, e.raw)
		if e.Timeout != nil {
			key("timeout")
			writeFloat(buf, *e.Timeout)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(e.ToolCallMetadata) > 0 {
		key("tool_call_metadata")
		buf.Write(e.ToolCallMetadata)
	}
	if len(e.LLMMetrics) > 0 {
		key("llm_metrics")
		buf.Write(e.LLMMetrics)
	}
	if e.Observation != nil {
		if e.Success != nil {
			key("success")
			buf.WriteString(strconv.FormatBool(*e.Success))
		} else if s, ok := successOf(e.Observation); ok && e.raw == nil {
			key("success")
			buf.WriteString(strconv.FormatBool(s))
		}
	}
	if e.raw != nil {
		unknown := make([]string, 0)
		for k := range e.raw.top {
			if !ownedKey(k, e.Action != nil) {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		for _, k := range unknown {
			key(k)
			buf.Write(e.raw.top[k])
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func writePayload(buf *bytes.Buffer, payload any, raw *rawEvent) error {
	if raw == nil {
		b, err := marshalNoEscape(payload)
		if err != nil {
			return fmt.Errorf("encode event payload: %w", err)
		}
		buf.Write(b)
		return nil
	}
	if reflect.DeepEqual(payload, raw.base) {
		// Unchanged since decoding: the input's bytes are the answer.
		if len(raw.payloadRaw) == 0 {
			buf.WriteString("{}")
		} else {
			buf.Write(raw.payloadRaw)
		}
		return nil
	}
	// Changed: start from the input's keys and overwrite the fields whose
	// encoding differs from their decoded value.
	in := map[string]json.RawMessage{}
	if len(raw.payloadRaw) > 0 && !isNull(raw.payloadRaw) {
		if err := json.Unmarshal(raw.payloadRaw, &in); err != nil {
			return fmt.Errorf("encode event payload: %w", err)
		}
	}
	cur, err := fieldsOf(payload)
	if err != nil {
		return fmt.Errorf("encode event payload: %w", err)
	}
	base, err := fieldsOf(raw.base)
	if err != nil {
		return fmt.Errorf("encode event payload: %w", err)
	}
	for k, v := range cur {
		if b, ok := base[k]; !ok || !bytes.Equal(b, v) {
			in[k] = v
		}
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(buf, k)
		buf.WriteByte(':')
		buf.Write(in[k])
	}
	buf.WriteByte('}')
	return nil
}

var encoderPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// marshalNoEscape is json.Marshal without HTML escaping, as Python's
// json.dumps writes <, > and & literally.
func marshalNoEscape(v any) ([]byte, error) {
	b := encoderPool.Get().(*bytes.Buffer)
	b.Reset()
	defer encoderPool.Put(b)
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
	return append([]byte(nil), out...), nil
}

// writeString writes s as a JSON string the way encoding/json does with
// HTML escaping off: invalid UTF-8 becomes U+FFFD, U+2028/U+2029 are
// escaped, control characters use \n-style or \u00XX escapes.
func writeString(buf *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			case '\b':
				buf.WriteString(`\b`)
			case '\f':
				buf.WriteString(`\f`)
			default:
				buf.WriteString(`\u00`)
				buf.WriteByte(hex[c>>4])
				buf.WriteByte(hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(s[start:i])
			buf.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf.WriteString(s[start:i])
			buf.WriteString(`\u202`)
			buf.WriteByte(hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}

func writeFloat(buf *bytes.Buffer, f float64) {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		buf.WriteString(strconv.FormatInt(int64(f), 10))
		return
	}
	buf.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
}

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

func decodeInt(v json.RawMessage) (int64, error) {
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		return 0, fmt.Errorf("expected an integer, got %s", jsonKind(v))
	}
	if i, err := n.Int64(); err == nil {
		return i, nil
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
		return 0, fmt.Errorf("expected an integer, got %s", n)
	}
	return int64(f), nil
}

func jsonKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func knownActions() string {
	return "run, run_ipython, read, write, edit, browse, browse_interactive, call_tool_mcp, think, finish, reject, delegate, message, system, recall, change_agent_state, condensation, condensation_request, task_tracking, loop_recovery, null"
}

func knownObservations() string {
	return "run, run_ipython, read, write, edit, browse, mcp, error, user_rejected, null, think, agent_state_changed, delegate, success, condense, recall, download, task_tracking, loop_detection, runtime_status"
}
