package eventbus

import (
	"encoding/json"
	"time"
)

// Source says who produced an event, as OpenHands' EventSource.
type Source string

// The three sources OpenHands knows.
const (
	SourceAgent       Source = "agent"
	SourceUser        Source = "user"
	SourceEnvironment Source = "environment"
)

// InvalidID is the id of an event that has not been appended to a stream yet.
// OpenHands uses -1 for the same purpose and omits the key when serialising.
const InvalidID int64 = -1

// TimestampLayout is OpenHands' timestamp format: Python's datetime.isoformat()
// of a naive local time with microseconds.
const TimestampLayout = "2006-01-02T15:04:05.000000"

// Timestamp formats t the way OpenHands writes event timestamps.
func Timestamp(t time.Time) string { return t.Format(TimestampLayout) }

// Event is one OpenHands event: either an action (Action != nil) or an
// observation (Observation != nil), in the envelope OpenHands serialises.
//
// An Event decoded from JSON remembers the object it came from, so that keys
// this package does not know (or knows only as legacy input) are written back
// unchanged; see Marshal.
type Event struct {
	ID        int64  // InvalidID until a stream assigns one
	Timestamp string // OpenHands format; set by the stream on append when empty
	Source    Source
	Message   string // omitted when empty; derived from the payload when encoding a fresh event
	Cause     *int64 // id of the action an observation answers

	// Timeout is the action's hard timeout in seconds (top-level "timeout").
	Timeout *float64

	// ToolCallMetadata and LLMMetrics are carried verbatim.
	ToolCallMetadata json.RawMessage
	LLMMetrics       json.RawMessage

	Action      Action      // set for actions
	Observation Observation // set for observations

	// Content is an observation's top-level "content".
	Content string
	// Success is the top-level "success" of observations that define it
	// (run, run_ipython, mcp). Nil means "derive it" for fresh events.
	Success *bool

	raw *rawEvent // the decoded JSON, kept for lossless re-encoding
}

// IsAction reports whether e carries an action.
func (e *Event) IsAction() bool { return e.Action != nil }

// Type returns the action or observation type string ("run", "read", ...).
func (e *Event) Type() string {
	switch {
	case e.Action != nil:
		return e.Action.ActionType()
	case e.Observation != nil:
		return e.Observation.ObservationType()
	}
	return ""
}

// Hidden reports whether the event is marked hidden (OpenHands' `hidden`
// attribute on run actions and observations).
func (e *Event) Hidden() bool {
	switch v := e.Action.(type) {
	case *CmdRunAction:
		return v.Hidden
	}
	switch v := e.Observation.(type) {
	case *CmdOutputObservation:
		return v.Hidden
	}
	return false
}

// NewAction returns an unappended action event.
func NewAction(src Source, a Action) *Event {
	return &Event{ID: InvalidID, Source: src, Action: a}
}

// NewObservation returns an unappended observation event answering the action
// with id cause (pass InvalidID when there is none).
func NewObservation(cause int64, content string, o Observation) *Event {
	e := &Event{ID: InvalidID, Observation: o, Content: content}
	if cause != InvalidID {
		c := cause
		e.Cause = &c
	}
	return e
}

// NewError returns an `error` observation answering cause.
func NewError(cause int64, errorID, content string) *Event {
	return NewObservation(cause, content, &ErrorObservation{ErrorID: errorID})
}

// Clone returns a deep enough copy of e that the copy's envelope and payload
// can be changed without touching e. The payload is copied by value (its
// slices and maps are shared, which is fine for events treated as immutable
// once appended).
func (e *Event) Clone() *Event {
	c := *e
	if e.Cause != nil {
		v := *e.Cause
		c.Cause = &v
	}
	if e.Timeout != nil {
		v := *e.Timeout
		c.Timeout = &v
	}
	if e.Success != nil {
		v := *e.Success
		c.Success = &v
	}
	if e.Action != nil {
		c.Action = e.Action.cloneAction()
	}
	if e.Observation != nil {
		c.Observation = e.Observation.cloneObservation()
	}
	return &c
}

// SetHardTimeout sets the action's timeout; blocking is copied onto run
// actions as OpenHands' set_hard_timeout does.
func (e *Event) SetHardTimeout(seconds float64, blocking bool) {
	t := seconds
	e.Timeout = &t
	if a, ok := e.Action.(*CmdRunAction); ok {
		a.Blocking = blocking
	}
}

// IsCorralExtension reports whether e is one of Corral's own event types,
// which OpenHands does not know (its event_from_dict fails on them): today
// the runtime_status observation (RuntimeStatusObservation). Everything
// Corral calls OpenHands JSON (Export, `corral exec` output, the HTTP API's
// event listing and WebSocket) leaves such events out unless the caller
// asks for Corral extensions.
func (e *Event) IsCorralExtension() bool {
	return isCorralType(e.IsAction(), e.Type())
}

// isCorralType is the one rule for IsCorralExtension, by kind and type.
func isCorralType(action bool, typ string) bool {
	return !action && typ == "runtime_status"
}

// isCorralJSON applies IsCorralExtension to an encoded event without
// decoding its payload. JSON that is no event object is not an extension.
func isCorralJSON(js []byte) bool {
	var env envelope
	if scanEnvelope(js, &env) != nil {
		return false
	}
	typ := func(v []byte) (string, bool) {
		t, err := spanString("", v)
		return t, err == nil
	}
	switch {
	case env.action != nil:
		t, ok := typ(env.action)
		return ok && isCorralType(true, t)
	case env.observation != nil:
		t, ok := typ(env.observation)
		return ok && isCorralType(false, t)
	}
	return false
}
