package agentwire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ProtocolVersion is the agentwire protocol spoken by this package. Both ends
// send it in their hello frame; a peer speaking another version is refused.
const ProtocolVersion = 1

// Frame types. PROTOCOL.md documents each one.
const (
	TypeHello     = "hello"
	TypeExec      = "exec"
	TypeResume    = "resume"
	TypeCancel    = "cancel"
	TypeChunk     = "chunk"
	TypeGap       = "gap"
	TypeResult    = "result"
	TypeListFiles = "list_files"
	TypeFiles     = "files"
	TypePing      = "ping"
	TypePong      = "pong"
	TypeError     = "error"
	// TypeInterrupt asks the agent to interrupt what runs in the sandbox
	// now (Ctrl-C to the running command); TypeInterrupted acknowledges it.
	TypeInterrupt   = "interrupt"
	TypeInterrupted = "interrupted"
)

// Features an agent announces in its hello (Frame.Features). A client
// checks them before sending a frame that older agents do not know, so it
// can say "upgrade the agent" instead of waiting for an answer that never
// comes.
const (
	FeatureInterrupt = "interrupt" // the agent answers interrupt frames
)

// Error codes carried by error frames.
const (
	CodeBadFrame        = "bad_frame"        // the frame could not be decoded or is missing a field
	CodeBadAction       = "bad_action"       // exec carried something that is not an OpenHands action
	CodeVersionMismatch = "version_mismatch" // hello named another protocol version
	CodeUnknownRequest  = "unknown_request"  // resume/cancel named a request the agent does not know
	CodeResultExpired   = "result_expired"   // the request ran, but its stored result was dropped
	CodeShuttingDown    = "shutting_down"    // the agent is stopping and accepts no new work
	CodeInterruptFailed = "interrupt_failed" // the agent could not deliver an interrupt
)

// MaxReqIDLen bounds request ids (letters, digits and . _ : -); clients
// generate 32 hex digits.
const MaxReqIDLen = 128

// Frame is one agentwire message. Only the fields of its Type are set; the
// rest are zero and omitted on the wire.
type Frame struct {
	Type  string `json:"type"`
	ReqID string `json:"req_id,omitempty"`

	// hello. Instance (agent's hello only) is random per agent process: a
	// client that reconnects to another instance knows the agent restarted
	// and that requests it had in flight are gone.
	Protocol int    `json:"protocol,omitempty"`
	Version  string `json:"version,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Features (agent's hello only) lists optional frames the agent
	// understands (FeatureInterrupt); agents older than a feature omit it.
	Features []string `json:"features,omitempty"`

	// exec: the OpenHands action (eventbus.Marshal output).
	Action json.RawMessage `json:"action,omitempty"`
	// exec, resume: stream chunks after this seq (0 = from the start);
	// AfterOffset is the number of output bytes the client already has,
	// used to report exactly how many bytes a gap lost.
	AfterSeq    uint64 `json:"after_seq,omitempty"`
	AfterOffset uint64 `json:"after_offset,omitempty"`

	// chunk: Seq counts from 1; Offset is the byte offset of Data in the
	// request's whole output. Data is base64 in JSON (output may be any bytes).
	Seq    uint64 `json:"seq,omitempty"`
	Offset uint64 `json:"offset,omitempty"`
	Data   []byte `json:"data,omitempty"`

	// gap: chunks after AfterSeq up to NextSeq-1 were evicted; LostBytes of
	// output are gone. Streaming continues at NextSeq / NextOffset.
	NextSeq    uint64 `json:"next_seq,omitempty"`
	NextOffset uint64 `json:"next_offset,omitempty"`
	LostBytes  uint64 `json:"lost_bytes,omitempty"`

	// result: the OpenHands observation and the seq of the last chunk.
	Observation json.RawMessage `json:"observation,omitempty"`
	LastSeq     uint64          `json:"last_seq,omitempty"`

	// list_files: Path (nil = the working directory); files: the listing.
	Path  *string  `json:"path,omitempty"`
	Files []string `json:"files,omitempty"`

	// interrupted: Running says something was running and was sent the
	// interrupt (false: nothing ran, nothing was sent).
	Running bool `json:"running,omitempty"`

	// error
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// ErrBadFrame is wrapped by every DecodeFrame error.
var ErrBadFrame = errors.New("agentwire: bad frame")

// requestIDOf returns the valid req_id of a frame DecodeFrame refused, if
// it has one, so that the error frame can name the request it answers (a
// client waiting on it then fails at once instead of timing out).
func requestIDOf(data []byte) string {
	var f struct {
		ReqID string `json:"req_id"`
	}
	if json.Unmarshal(data, &f) != nil || len(f.ReqID) > MaxReqIDLen || !validReqID(f.ReqID) {
		return ""
	}
	return f.ReqID
}

// DecodeFrame parses and validates one frame. It never panics; the error
// names what is wrong so that the peer can be told.
func DecodeFrame(data []byte) (*Frame, error) {
	var f Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object with agentwire fields: %v", ErrBadFrame, err)
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

func (f *Frame) validate() error {
	needID := false
	switch f.Type {
	case TypeHello:
		if f.Protocol <= 0 {
			return fmt.Errorf("%w: hello needs a positive \"protocol\"", ErrBadFrame)
		}
	case TypeExec:
		needID = true
		if len(f.Action) == 0 || string(f.Action) == "null" {
			return fmt.Errorf("%w: exec %q needs an \"action\" object", ErrBadFrame, f.ReqID)
		}
	case TypeResume, TypeCancel, TypeListFiles, TypeFiles, TypeGap, TypeInterrupt, TypeInterrupted:
		needID = true
	case TypeChunk:
		needID = true
		if f.Seq == 0 {
			return fmt.Errorf("%w: chunk %q needs \"seq\" >= 1", ErrBadFrame, f.ReqID)
		}
	case TypeResult:
		needID = true
		if len(f.Observation) == 0 {
			return fmt.Errorf("%w: result %q needs an \"observation\"", ErrBadFrame, f.ReqID)
		}
	case TypePing, TypePong, TypeError:
	case "":
		return fmt.Errorf("%w: missing \"type\"", ErrBadFrame)
	default:
		return fmt.Errorf("%w: unknown type %q (this end speaks protocol %d)", ErrBadFrame, truncate(f.Type, 40), ProtocolVersion)
	}
	if len(f.ReqID) > MaxReqIDLen {
		return fmt.Errorf("%w: req_id is %d bytes, at most %d allowed", ErrBadFrame, len(f.ReqID), MaxReqIDLen)
	}
	if needID && f.ReqID == "" {
		return fmt.Errorf("%w: %s needs a \"req_id\"", ErrBadFrame, f.Type)
	}
	if !validReqID(f.ReqID) {
		return fmt.Errorf("%w: req_id may hold only letters, digits and . _ : -", ErrBadFrame)
	}
	return nil
}

func validReqID(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// Output chunks dominate the traffic, so they have a hand-written encoder
// and decoder for the exact layout json.Marshal produces; FuzzDecodeFrame
// checks both against encoding/json. Anything else takes the generic path.

const chunkPrefix = `{"type":"chunk","req_id":"`

// appendChunk appends the chunk frame's JSON, byte-identical to
// json.Marshal(&Frame{Type: TypeChunk, ...}). id must satisfy validReqID.
func appendChunk(dst []byte, id string, seq, offset uint64, data []byte) []byte {
	dst = append(dst, chunkPrefix...)
	dst = append(dst, id...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	if offset != 0 {
		dst = append(dst, `,"offset":`...)
		dst = strconv.AppendUint(dst, offset, 10)
	}
	if len(data) > 0 {
		dst = append(dst, `,"data":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, data)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// decodeFrame is DecodeFrame with the chunk fast path.
func decodeFrame(b []byte) (*Frame, error) {
	if f, ok := decodeChunkFast(b); ok {
		return f, nil
	}
	return DecodeFrame(b)
}

// decodeChunkFast parses exactly what appendChunk writes; ok is false for
// anything else (the caller then uses the generic decoder).
func decodeChunkFast(b []byte) (*Frame, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(chunkPrefix))
	if !ok {
		return nil, false
	}
	i := bytes.IndexByte(rest, '"')
	if i <= 0 || i > MaxReqIDLen || !validReqID(string(rest[:i])) {
		return nil, false
	}
	f := &Frame{Type: TypeChunk, ReqID: string(rest[:i])}
	rest = rest[i+1:]
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"seq":`)); !ok {
		return nil, false
	}
	if f.Seq, rest, ok = cutUint(rest); !ok || f.Seq == 0 {
		return nil, false
	}
	if r, found := bytes.CutPrefix(rest, []byte(`,"offset":`)); found {
		if f.Offset, rest, ok = cutUint(r); !ok {
			return nil, false
		}
	}
	if r, found := bytes.CutPrefix(rest, []byte(`,"data":"`)); found {
		j := bytes.IndexByte(r, '"')
		if j < 0 {
			return nil, false
		}
		enc := r[:j]
		if bytes.IndexByte(enc, '\\') >= 0 || bytes.IndexByte(enc, '\r') >= 0 || bytes.IndexByte(enc, '\n') >= 0 {
			return nil, false
		}
		d := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
		n, err := base64.StdEncoding.Decode(d, enc)
		if err != nil {
			return nil, false
		}
		f.Data = d[:n]
		rest = r[j+1:]
	}
	if len(rest) != 1 || rest[0] != '}' {
		return nil, false
	}
	return f, true
}

// cutUint parses a JSON unsigned integer (no leading zeros) at the start of b.
func cutUint(b []byte) (uint64, []byte, bool) {
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n == 0 || n > 1 && b[0] == '0' {
		return 0, nil, false
	}
	v, err := strconv.ParseUint(string(b[:n]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	return v, b[n:], true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// encodeFrame is json.Marshal(f) without HTML escaping: observations carry
// shell text full of `&&` and `<`, and Python's json.dumps (OpenHands)
// writes them literally, so the stored events should too.
func encodeFrame(f *Frame) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
