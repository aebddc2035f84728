package eventbus

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// rawEvent keeps what Unmarshal saw, so Marshal can write unknown and legacy
// keys back unchanged. base holds a copy of the typed payload right after
// decoding: while the payload still equals it, Marshal writes payloadRaw as
// the input had it; otherwise it merges the changed fields into it.
type rawEvent struct {
	unknown    []rawField // top-level keys the codec does not own, sorted by key
	hasMessage bool       // the input had a "message" key (even null)
	payloadRaw []byte     // the args/extras value as given (nil when absent)
	base       any        // a copy of the typed payload right after decoding
}

// rawField is one top-level key/value pair kept verbatim.
type rawField struct {
	key string
	val []byte
}

// envelope holds the spans of an event object's top-level values, read in
// one pass over the input; nil means the key was absent.
type envelope struct {
	id, timestamp, source, message, cause, timeout []byte
	content, success, toolCall, llmMetrics         []byte
	action, observation, args, extras              []byte
	unknown                                        []rawField // spans into the input, keys copied
}

// slot returns where the value of top-level key goes, nil for keys the
// codec does not own.
func (env *envelope) slot(key []byte) *[]byte {
	switch string(key) {
	case "id":
		return &env.id
	case "timestamp":
		return &env.timestamp
	case "source":
		return &env.source
	case "message":
		return &env.message
	case "cause":
		return &env.cause
	case "timeout":
		return &env.timeout
	case "content":
		return &env.content
	case "success":
		return &env.success
	case "tool_call_metadata":
		return &env.toolCall
	case "llm_metrics":
		return &env.llmMetrics
	case "action":
		return &env.action
	case "observation":
		return &env.observation
	case "args":
		return &env.args
	case "extras":
		return &env.extras
	}
	return nil
}

// keep records an unknown key; a repeated key replaces the earlier value,
// as decoding into a map does.
func (env *envelope) keep(key string, val []byte) {
	for i := range env.unknown {
		if env.unknown[i].key == key {
			env.unknown[i].val = val
			return
		}
	}
	env.unknown = append(env.unknown, rawField{key: key, val: val})
}

// Unmarshal decodes one OpenHands event (the output of OpenHands'
// event_to_dict). Legacy fields of older OpenHands versions are understood
// (reference §7.4) and, like any key this package does not know, written back
// unchanged by Marshal. The input is read in one pass and not retained: the
// event keeps copies of what it needs.
func Unmarshal(data []byte) (*Event, error) {
	countDecode()
	var env envelope
	if err := scanEnvelope(data, &env); err != nil {
		return nil, err
	}
	isAction, isObs := env.action != nil, env.observation != nil
	switch {
	case isAction && isObs:
		return nil, &DecodeError{Err: errors.New(`has both "action" and "observation"; an event is one or the other`)}
	case !isAction && !isObs:
		return nil, &DecodeError{Err: errors.New(`has neither "action" nor "observation"`)}
	}
	// The event and its rawEvent are allocated together.
	both := &struct {
		ev  Event
		raw rawEvent
	}{ev: Event{ID: InvalidID}, raw: rawEvent{hasMessage: env.message != nil}}
	e, raw := &both.ev, &both.raw
	if err := env.decodeCommon(e); err != nil {
		return nil, err
	}
	var err error
	if isAction {
		// An action owns neither "content", "success" nor "extras".
		for _, k := range [...]struct {
			name string
			val  []byte
		}{{"content", env.content}, {"success", env.success}, {"extras", env.extras}} {
			if k.val != nil {
				env.keep(k.name, k.val)
			}
		}
		err = decodeAction(env.action, env.args, e, raw)
	} else {
		if env.args != nil {
			env.keep("args", env.args)
		}
		if err = env.decodeObservationEnvelope(e); err == nil {
			err = decodeObservation(env.observation, env.extras, e, raw)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(env.unknown) > 0 {
		raw.unknown = make([]rawField, len(env.unknown))
		for i, f := range env.unknown {
			raw.unknown[i] = rawField{key: f.key, val: bytes.Clone(f.val)}
		}
		slices.SortFunc(raw.unknown, func(a, b rawField) int { return strings.Compare(a.key, b.key) })
	}
	e.raw = raw
	return e, nil
}

// scanEnvelope validates data as one JSON object and returns the spans of
// its top-level values.
func scanEnvelope(data []byte, env *envelope) error {
	s := scanner{data: data}
	switch c := s.peek(); {
	case c == 'n' && bytes.Equal(bytes.TrimSpace(data), []byte("null")):
		return &DecodeError{Err: errors.New("not a JSON object: got null")}
	case c != '{' && c != 0:
		if _, err := s.skip(0); err != nil {
			return &DecodeError{Err: fmt.Errorf("not a JSON object: %w", err)}
		}
		return &DecodeError{Err: fmt.Errorf("not a JSON object: got %s", (&scanner{data: data}).kindAt())}
	}
	err := s.object(0, func(key []byte) error {
		val, err := s.skip(1)
		if err != nil {
			return err
		}
		if p := env.slot(key); p != nil {
			*p = val
		} else {
			env.keep(string(key), val)
		}
		return nil
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return &DecodeError{Err: fmt.Errorf("not a JSON object: %w", err)}
	}
	return nil
}

func isNullSpan(v []byte) bool { return len(v) > 0 && v[0] == 'n' }

// decodeCommon reads the envelope keys every event has.
func (env *envelope) decodeCommon(e *Event) error {
	if v := env.id; v != nil && !isNullSpan(v) {
		id, err := (&scanner{data: v}).integer()
		if err != nil {
			return &DecodeError{Field: "id", Err: err}
		}
		e.ID = id
	}
	var err error
	if e.Timestamp, err = spanString("timestamp", env.timestamp); err != nil {
		return err
	}
	if e.Message, err = spanString("message", env.message); err != nil {
		return err
	}
	var src string
	if src, err = spanString("source", env.source); err != nil {
		return err
	}
	e.Source = internSource(src)
	if v := env.cause; v != nil && !isNullSpan(v) {
		c, err := (&scanner{data: v}).integer()
		if err != nil {
			return &DecodeError{Field: "cause", Err: err}
		}
		e.Cause = &c
	}
	if v := env.timeout; v != nil && !isNullSpan(v) {
		t, err := (&scanner{data: v}).float()
		if err != nil {
			return &DecodeError{Field: "timeout", Err: fmt.Errorf("%w (seconds)", err)}
		}
		e.Timeout = &t
	}
	if v := env.toolCall; v != nil && !isNullSpan(v) {
		e.ToolCallMetadata = bytes.Clone(v)
	}
	if v := env.llmMetrics; v != nil && !isNullSpan(v) {
		e.LLMMetrics = bytes.Clone(v)
	}
	return nil
}

// decodeObservationEnvelope reads the keys only observations own.
func (env *envelope) decodeObservationEnvelope(e *Event) error {
	var err error
	if e.Content, err = spanString("content", env.content); err != nil {
		return err
	}
	if v := env.success; v != nil && !isNullSpan(v) {
		b, err := (&scanner{data: v}).boolean()
		if err != nil {
			return &DecodeError{Field: "success", Err: err}
		}
		e.Success = &b
	}
	return nil
}

// spanString decodes an optional string value; null or absent is "".
func spanString(field string, v []byte) (string, error) {
	if v == nil || isNullSpan(v) {
		return "", nil
	}
	str, err := (&scanner{data: v}).stringValue()
	if err != nil {
		return "", &DecodeError{Field: field, Err: err}
	}
	return str, nil
}

// internSource returns the constant for OpenHands' three sources, so
// decoding them allocates nothing.
func internSource(s string) Source {
	switch Source(s) {
	case SourceAgent:
		return SourceAgent
	case SourceUser:
		return SourceUser
	case SourceEnvironment:
		return SourceEnvironment
	}
	return Source(s)
}

// payloadType reads the "action"/"observation" value; null reads as "",
// which names no type.
func payloadType(field string, v []byte) (string, error) {
	if isNullSpan(v) {
		return "", nil
	}
	return spanString(field, v)
}

// decodePayloadObject decodes the args/extras value (already validated)
// into v. The value is copied first: Marshal writes it back, and
// json.RawMessage fields of the payload point into the copy.
func decodePayloadObject(field string, val []byte, v any, other func(key, val []byte)) (copied []byte, plan *payloadPlan, seen uint64, err error) {
	plan = payloadPlans[reflect.TypeOf(v).Elem()]
	if val == nil || isNullSpan(val) {
		return bytes.Clone(val), plan, 0, nil
	}
	if val[0] != '{' {
		return nil, nil, 0, &DecodeError{Field: field, Err: fmt.Errorf("expected an object, got %s", (&scanner{data: val}).kindAt())}
	}
	copied = bytes.Clone(val)
	seen, err = plan.decode(&scanner{data: copied}, reflect.ValueOf(v).Elem(), 1, other)
	return copied, plan, seen, err
}

// payloadError turns a payload decode error into a DecodeError naming the
// full path ("args.command").
func payloadError(field, what string, err error) error {
	var de *DecodeError
	if errors.As(err, &de) {
		return err
	}
	if fe, ok := err.(*fieldError); ok {
		return &DecodeError{Field: field + "." + fe.field, Err: fmt.Errorf("%s: %w", what, fe.err)}
	}
	return &DecodeError{Field: field, Err: fmt.Errorf("%s: %w", what, err)}
}

// actionLegacy holds the spans of the legacy keys of old OpenHands action
// args (reference §7.4).
type actionLegacy struct {
	isConfirmed, imagesURLs, translatedCode []byte
}

func (l *actionLegacy) note(key, val []byte) {
	switch string(key) {
	case "is_confirmed":
		l.isConfirmed = val
	case "images_urls":
		l.imagesURLs = val
	case "translated_ipython_code":
		l.translatedCode = val
	}
}

func decodeAction(typ, args []byte, e *Event, raw *rawEvent) error {
	t, err := payloadType("action", typ)
	if err != nil {
		return err
	}
	a := newAction(t)
	if a == nil {
		return &DecodeError{Field: "action", Err: fmt.Errorf("%w: action %q (known: %s)", ErrUnknownType, t, knownActions())}
	}
	var legacy actionLegacy
	copied, plan, seen, err := decodePayloadObject("args", args, a, legacy.note)
	if err == nil {
		err = legacy.apply(t, plan, reflect.ValueOf(a).Elem(), seen)
	}
	if err != nil {
		return payloadError("args", t+" action", err)
	}
	e.Action = a
	raw.payloadRaw, raw.base = copied, a.cloneAction()
	return nil
}

// apply moves legacy keys onto the modern fields the input did not set,
// as OpenHands' action_from_dict does: is_confirmed -> confirmation_state,
// images_urls -> image_urls, and the file_editor(...) keyword arguments of
// translated_ipython_code -> the edit/read args.
func (l *actionLegacy) apply(t string, plan *payloadPlan, v reflect.Value, seen uint64) error {
	for _, alias := range [...]struct {
		to  string
		val []byte
	}{{"confirmation_state", l.isConfirmed}, {"image_urls", l.imagesURLs}} {
		i, ok := plan.byName[alias.to]
		if alias.val == nil || !ok || seen&(1<<i) != 0 {
			continue
		}
		if err := plan.decodeSpan(i, v, alias.val); err != nil {
			return err
		}
		seen |= 1 << i
	}
	if l.translatedCode == nil || l.translatedCode[0] != '"' {
		return nil
	}
	code, err := (&scanner{data: l.translatedCode}).str()
	if err != nil {
		return err
	}
	kw, err := parseFileEditorCall(code)
	if err != nil {
		return nil // not a file_editor call: nothing to take from it
	}
	for k, val := range kw {
		if (k == "command" && t == "read") || (k == "view_range" && t != "read") {
			continue // the read action is itself the `view`
		}
		i := plan.lookup([]byte(k))
		if i < 0 || seen&(1<<i) != 0 {
			continue
		}
		if err := plan.decodeSpan(i, v, val); err != nil {
			return err
		}
	}
	return nil
}

// obsLegacy holds the legacy exit_code/command_id of old run observations.
type obsLegacy struct {
	exitCode, commandID []byte
}

func (l *obsLegacy) note(key, val []byte) {
	switch string(key) {
	case "exit_code":
		l.exitCode = val
	case "command_id":
		l.commandID = val
	}
}

func decodeObservation(typ, extras []byte, e *Event, raw *rawEvent) error {
	t, err := payloadType("observation", typ)
	if err != nil {
		return err
	}
	o := newObservation(t)
	if o == nil {
		return &DecodeError{Field: "observation", Err: fmt.Errorf("%w: observation %q (known: %s)", ErrUnknownType, t, knownObservations())}
	}
	var legacy obsLegacy
	copied, _, _, err := decodePayloadObject("extras", extras, o, legacy.note)
	if run, ok := o.(*CmdOutputObservation); ok && err == nil {
		err = legacy.fold(&run.Metadata)
	}
	if err != nil {
		return payloadError("extras", t+" observation", err)
	}
	e.Observation = o
	raw.payloadRaw, raw.base = copied, o.cloneObservation()
	return nil
}

// fold moves the legacy extras exit_code / command_id into metadata, as
// OpenHands' observation_from_dict does; they win over metadata's own.
func (l *obsLegacy) fold(md *CmdOutputMetadata) error {
	for _, f := range [...]struct {
		key string
		val []byte
		dst *int
	}{{"exit_code", l.exitCode, &md.ExitCode}, {"command_id", l.commandID, &md.PID}} {
		if f.val == nil || isNullSpan(f.val) {
			continue
		}
		n, err := (&scanner{data: f.val}).integer()
		if err != nil {
			return &fieldError{field: f.key, err: err}
		}
		*f.dst = int(n)
	}
	return nil
}
