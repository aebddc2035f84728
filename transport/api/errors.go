package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"

	"corral/eventbus"
)

// errorBody is every error response: {"error": {"code": ..., "message": ...}}.
type errorBody struct {
	Error apiError `json:"error"`
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{apiError{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"the response could not be encoded; please report it"}}`)
	}
	writeRawJSON(w, status, b)
}

func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}

// engineError answers err from the engine with the status its sentinel
// names; what says what was being done ("pause session x").
func (s *Server) engineError(w http.ResponseWriter, r *http.Request, what string, err error) {
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, ErrNotRunning):
		status, code = http.StatusConflict, "not_running"
	case errors.Is(err, ErrConflict):
		status, code = http.StatusConflict, "conflict"
	case errors.Is(err, ErrInvalid):
		status, code = http.StatusBadRequest, "invalid_request"
	case errors.Is(err, ErrUnknownRuntime):
		status, code = http.StatusBadRequest, "unknown_runtime"
	case errors.Is(err, ErrQueueFull):
		status, code = http.StatusServiceUnavailable, "queue_full"
		w.Header().Set("Retry-After", "5")
	case errors.Is(err, ErrShuttingDown):
		status, code = http.StatusServiceUnavailable, "shutting_down"
	case errors.Is(err, ErrUnavailable):
		status, code = http.StatusServiceUnavailable, "unavailable"
		w.Header().Set("Retry-After", "2")
	case errors.Is(err, ErrNotSupported):
		status, code = http.StatusNotImplemented, "not_supported"
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		status, code = 499, "client_closed"
	}
	if status == http.StatusInternalServerError {
		s.logger.Error("api: engine call failed", "what", what, "err", err)
	}
	msg := fmt.Sprintf("%s: %v", what, err)
	if status == http.StatusNotFound {
		msg = notOwnedNote(w, r, msg)
	}
	writeError(w, status, code, msg)
}

// readBody reads a request body of at most limit bytes. On failure it has
// already answered (413 or 400) and returns false.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("request body is larger than %d bytes (max_body_bytes); send less (upload big files with POST /api/sessions/{id}/files)", mbe.Limit))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "bad_body", fmt.Sprintf("reading the request body failed: %v", err))
		return nil, false
	}
	return body, true
}

// decodeJSON decodes body into v strictly (unknown fields, trailing data and
// type mismatches are errors) and describes failures with their byte offset.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err, body)
	}
	if dec.More() {
		return fmt.Errorf("malformed JSON: unexpected data after the object at byte offset %d; send exactly one JSON object", dec.InputOffset())
	}
	return nil
}

// jsonFieldPath drops the Go names of embedded structs that encoding/json
// puts in an UnmarshalTypeError's path ("SessionRequest.env" for a request
// wrapped around an embedded SessionRequest): the client sent "env". The
// API's JSON fields are all lower case, Go's embedded names are not.
func jsonFieldPath(field string) string {
	parts := strings.Split(field, ".")
	for len(parts) > 1 && parts[0] != "" && unicode.IsUpper(rune(parts[0][0])) {
		parts = parts[1:]
	}
	return strings.Join(parts, ".")
}

func describeJSONError(err error, body []byte) error {
	var se *json.SyntaxError
	var ese *eventbus.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("malformed JSON at byte offset %d (line %d): %v", se.Offset, lineOf(body, se.Offset), se)
	case errors.As(err, &ese):
		return fmt.Errorf("malformed JSON at byte offset %d (line %d): %s", ese.Offset, lineOf(body, ese.Offset), ese.Msg)
	case errors.As(err, &te):
		return fmt.Errorf("malformed JSON at byte offset %d: field %q must be %s, not a JSON %s", te.Offset, jsonFieldPath(te.Field), te.Type, te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("malformed JSON: the body ends at byte offset %d in the middle of a value; send a complete JSON object", len(body))
	}
	return fmt.Errorf("malformed JSON: %v", err)
}

func lineOf(b []byte, off int64) int {
	off = min(max(off, 0), int64(len(b)))
	return bytes.Count(b[:off], []byte("\n")) + 1
}
