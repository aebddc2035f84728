package eventbus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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
	// Room for the envelope and a typical payload besides the long strings,
	// so that the buffer is allocated once.
	buf := bytes.NewBuffer(make([]byte, 0, 512+len(e.Content)+len(e.Message)))
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
	if msg != "" || (e.raw != nil && e.raw.hasMessage) {
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
		for _, f := range e.raw.unknown { // sorted by key when decoded
			if !first {
				buf.WriteByte(',')
			}
			first = false
			writeString(buf, f.key)
			buf.WriteByte(':')
			buf.Write(f.val)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func writePayload(buf *bytes.Buffer, payload any, raw *rawEvent) error {
	if raw == nil {
		if err := encodePayload(buf, payload); err != nil {
			return fmt.Errorf("encode event payload: %w", err)
		}
		return nil
	}
	if payloadEqual(payload, raw.base) {
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
	if len(raw.payloadRaw) > 0 && !isNullSpan(raw.payloadRaw) {
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

func knownActions() string {
	return "run, run_ipython, read, write, edit, browse, browse_interactive, call_tool_mcp, think, finish, reject, delegate, message, system, recall, change_agent_state, condensation, condensation_request, task_tracking, loop_recovery, null"
}

func knownObservations() string {
	return "run, run_ipython, read, write, edit, browse, mcp, error, user_rejected, null, think, agent_state_changed, delegate, success, condense, recall, download, task_tracking, loop_detection, runtime_status"
}
