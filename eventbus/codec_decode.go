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
	unknownIndex                                   map[string]int

	// early: decode in the same pass what can be (see decodeEarly).
	early                  bool
	earlyArgs, earlyExtras earlyPayload
	earlyContent           string
	earlyContentSpan       []byte
}

// earlyPayload is a payload decoded during the envelope's pass because its
// type came before it, as OpenHands writes events. It is used only if the
// type and payload spans it came from are the event's final ones (a
// repeated key replaces a value).
type earlyPayload struct {
	typ, span   []byte
	action      Action
	observation Observation
	raw         []byte
}

func (ep *earlyPayload) matches(typ, span []byte) bool {
	return ep.span != nil && sameSpan(ep.typ, typ) && sameSpan(ep.span, span)
}

// sameSpan reports whether a and b are the same bytes of the input.
func sameSpan(a, b []byte) bool { return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0] }

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
// as decoding into a map does. Past a few keys they are indexed, so that an
// event with very many keys costs linear time, not quadratic.
func (env *envelope) keep(key string, val []byte) {
	const scan = 16
	if env.unknownIndex == nil && len(env.unknown) >= scan {
		env.unknownIndex = make(map[string]int, 2*scan)
		for i, f := range env.unknown {
			env.unknownIndex[f.key] = i
		}
	}
	if env.unknownIndex != nil {
		if i, ok := env.unknownIndex[key]; ok {
			env.unknown[i].val = val
			return
		}
		env.unknownIndex[key] = len(env.unknown)
	} else {
		for i := range env.unknown {
			if env.unknown[i].key == key {
				env.unknown[i].val = val
				return
			}
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
	env := envelope{early: true}
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
		if ep := &env.earlyArgs; ep.matches(env.action, env.args) {
			e.Action, raw.payloadRaw = ep.action, ep.raw
		} else {
			e.Action, raw.payloadRaw, err = decodeActionPayload(env.action, spanScanner(env.args))
		}
		if err == nil {
			raw.base = e.Action.cloneAction()
		}
	} else {
		if env.args != nil {
			env.keep("args", env.args)
		}
		err = env.decodeObservationEnvelope(e)
		if ep := &env.earlyExtras; err == nil && ep.matches(env.observation, env.extras) {
			e.Observation, raw.payloadRaw = ep.observation, ep.raw
		} else if err == nil {
			e.Observation, raw.payloadRaw, err = decodeObservationPayload(env.observation, spanScanner(env.extras))
		}
		if err == nil {
			raw.base = e.Observation.cloneObservation()
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
		p := env.slot(key)
		if p == nil {
			name := string(key) // before anything else reads a string
			val, err := s.skip(1)
			if err == nil {
				env.keep(name, val)
			}
			return err
		}
		if env.early {
			if val, ok := env.decodeEarly(p, &s); ok {
				*p = val
				return nil
			}
		}
		val, err := s.skip(1)
		*p = val
		return err
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return &DecodeError{Err: fmt.Errorf("not a JSON object: %w", err)}
	}
	return nil
}

// decodeEarly decodes the value at s's cursor in the envelope's pass when
// its meaning is known already: an action's args or an observation's
// extras after their type, an observation's content, so that these (the
// bulk of an event) are read once, not validated first and decoded after.
// On any failure s is left where it was: the second pass decodes the
// value from its span and reports what is wrong.
func (env *envelope) decodeEarly(slot *[]byte, s *scanner) ([]byte, bool) {
	start := s.pos
	ok := false
	switch slot {
	case &env.args:
		if env.action != nil && env.observation == nil {
			a, raw, err := decodeActionPayload(env.action, s)
			ok = err == nil
			env.earlyArgs = earlyPayload{typ: env.action, action: a, raw: raw}
		}
	case &env.extras:
		if env.observation != nil && env.action == nil {
			o, raw, err := decodeObservationPayload(env.observation, s)
			ok = err == nil
			env.earlyExtras = earlyPayload{typ: env.observation, observation: o, raw: raw}
		}
	case &env.content:
		if env.action == nil && s.peek() == '"' {
			str, err := s.str()
			ok = err == nil
			env.earlyContent = str
		}
	}
	if !ok {
		s.pos = start
		return nil, false
	}
	span := s.data[start:s.pos]
	switch slot {
	case &env.args:
		env.earlyArgs.span = span
	case &env.extras:
		env.earlyExtras.span = span
	default:
		env.earlyContentSpan = span
	}
	return span, true
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
	if sameSpan(env.earlyContentSpan, env.content) {
		e.Content = env.earlyContent
	} else if e.Content, err = spanString("content", env.content); err != nil {
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

// spanScanner reads a copy of val, which the event may keep (nil when
// val is: the key was absent).
func spanScanner(val []byte) *scanner {
	if val == nil {
		return nil
	}
	return &scanner{data: bytes.Clone(val), owned: true}
}

// decodePayloadAt decodes the args/extras value at s's cursor (s nil: the
// key was absent) into v, and returns the value's bytes for Marshal, owned
// by the event: when s reads the caller's input rather than a copy, they
// are copied, and so are the payload's json.RawMessage fields.
func decodePayloadAt(field string, s *scanner, v any, other func(key, val []byte)) (payloadRaw []byte, plan *payloadPlan, seen uint64, err error) {
	plan = payloadPlans[reflect.TypeOf(v).Elem()]
	if s == nil {
		return nil, plan, 0, nil
	}
	s.ws()
	start := s.pos
	switch s.peek() {
	case 'n':
		_, err = s.null()
	case '{':
		seen, err = plan.decode(s, reflect.ValueOf(v).Elem(), 1, other)
	default:
		err = &DecodeError{Field: field, Err: fmt.Errorf("expected an object, got %s", s.kindAt())}
	}
	if err != nil {
		return nil, nil, 0, err
	}
	payloadRaw = s.data[start:s.pos]
	if !s.owned {
		payloadRaw = bytes.Clone(payloadRaw)
	}
	return payloadRaw, plan, seen, nil
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

// decodeActionPayload decodes an action of type typ (a span of the input)
// with its args read from s (nil: no args).
func decodeActionPayload(typ []byte, s *scanner) (Action, []byte, error) {
	t, err := payloadType("action", typ)
	if err != nil {
		return nil, nil, err
	}
	a := newAction(t)
	if a == nil {
		return nil, nil, &DecodeError{Field: "action", Err: fmt.Errorf("%w: action %q (known: %s)", ErrUnknownType, t, knownActions())}
	}
	var legacy actionLegacy
	payloadRaw, plan, seen, err := decodePayloadAt("args", s, a, legacy.note)
	if err == nil {
		err = legacy.apply(t, plan, reflect.ValueOf(a).Elem(), seen)
	}
	if err != nil {
		return nil, nil, payloadError("args", t+" action", err)
	}
	return a, payloadRaw, nil
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

// decodeObservationPayload decodes an observation of type typ (a span of
// the input) with its extras read from s (nil: no extras).
func decodeObservationPayload(typ []byte, s *scanner) (Observation, []byte, error) {
	t, err := payloadType("observation", typ)
	if err != nil {
		return nil, nil, err
	}
	o := newObservation(t)
	if o == nil {
		return nil, nil, &DecodeError{Field: "observation", Err: fmt.Errorf("%w: observation %q (known: %s)", ErrUnknownType, t, knownObservations())}
	}
	var legacy obsLegacy
	payloadRaw, _, _, err := decodePayloadAt("extras", s, o, legacy.note)
	if run, ok := o.(*CmdOutputObservation); ok && err == nil {
		err = legacy.fold(&run.Metadata)
	}
	if err != nil {
		return nil, nil, payloadError("extras", t+" observation", err)
	}
	return o, payloadRaw, nil
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
