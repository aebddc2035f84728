package agentwire

import (
	"encoding/json"
	"errors"
	"fmt"
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
)

// Error codes carried by error frames.
const (
	CodeBadFrame        = "bad_frame"        // the frame could not be decoded or is missing a field
	CodeBadAction       = "bad_action"       // exec carried something that is not an OpenHands action
	CodeVersionMismatch = "version_mismatch" // hello named another protocol version
	CodeUnknownRequest  = "unknown_request"  // resume/cancel named a request the agent does not know
	CodeResultExpired   = "result_expired"   // the request ran, but its stored result was dropped
	CodeShuttingDown    = "shutting_down"    // the agent is stopping and accepts no new work
	CodeInternal        = "internal"         // the agent failed; the message says how
)

// MaxReqIDLen bounds request ids; clients generate 32 hex digits.
const MaxReqIDLen = 128

// Frame is one agentwire message. Only the fields of its Type are set; the
// rest are zero and omitted on the wire.
type Frame struct {
	Type  string `json:"type"`
	ReqID string `json:"req_id,omitempty"`

	// hello
	Protocol int    `json:"protocol,omitempty"`
	Version  string `json:"version,omitempty"`

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

	// error
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// ErrBadFrame is wrapped by every DecodeFrame error.
var ErrBadFrame = errors.New("agentwire: bad frame")

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
	case TypeResume, TypeCancel, TypeListFiles, TypeFiles, TypeGap:
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
	for _, r := range f.ReqID {
		if r < 0x21 || r > 0x7e {
			return fmt.Errorf("%w: req_id must be printable ASCII without spaces", ErrBadFrame)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
