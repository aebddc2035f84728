package eventbus

import (
	"encoding/json"
	"fmt"
)

// Action is the payload of an action event. The concrete types below mirror
// OpenHands' action classes; their JSON field names and defaults are
// OpenHands' (reference §7.2).
type Action interface {
	// ActionType is the "action" string, e.g. "run".
	ActionType() string
	// Runnable reports whether a runtime must execute the action and answer it
	// with an observation (OpenHands' class-level `runnable`).
	Runnable() bool
	cloneAction() Action
}

// ConfirmationState is OpenHands' ActionConfirmationStatus.
type ConfirmationState string

// Confirmation states.
const (
	Confirmed            ConfirmationState = "confirmed"
	Rejected             ConfirmationState = "rejected"
	AwaitingConfirmation ConfirmationState = "awaiting_confirmation"
)

// SecurityRisk is OpenHands' ActionSecurityRisk, serialised as an int.
type SecurityRisk int

// RiskUnknown is the default security risk.
const RiskUnknown SecurityRisk = -1

// Confirmable is implemented by actions that carry a confirmation state.
type Confirmable interface {
	Action
	Confirmation() ConfirmationState
	SetConfirmation(ConfirmationState)
}

// CmdRunAction runs a bash command ("run").
type CmdRunAction struct {
	Command           string            `json:"command"`
	IsInput           bool              `json:"is_input"`
	Thought           string            `json:"thought"`
	Blocking          bool              `json:"blocking"`
	IsStatic          bool              `json:"is_static"`
	Cwd               *string           `json:"cwd"`
	Hidden            bool              `json:"hidden"`
	ConfirmationState ConfirmationState `json:"confirmation_state"`
	SecurityRisk      SecurityRisk      `json:"security_risk"`
}

// IPythonRunCellAction runs a Python cell ("run_ipython").
type IPythonRunCellAction struct {
	Code              string            `json:"code"`
	Thought           string            `json:"thought"`
	IncludeExtra      bool              `json:"include_extra"`
	ConfirmationState ConfirmationState `json:"confirmation_state"`
	SecurityRisk      SecurityRisk      `json:"security_risk"`
	KernelInitCode    string            `json:"kernel_init_code"`
}

// FileReadAction reads a file ("read").
type FileReadAction struct {
	Path         string       `json:"path"`
	Start        int          `json:"start"`
	End          int          `json:"end"`
	Thought      string       `json:"thought"`
	SecurityRisk SecurityRisk `json:"security_risk"`
	ImplSource   string       `json:"impl_source"`
	ViewRange    []int        `json:"view_range"`
}

// FileWriteAction writes a file ("write").
type FileWriteAction struct {
	Path         string       `json:"path"`
	Content      string       `json:"content"`
	Start        int          `json:"start"`
	End          int          `json:"end"`
	Thought      string       `json:"thought"`
	SecurityRisk SecurityRisk `json:"security_risk"`
}

// FileEditAction edits a file with the str_replace_editor commands ("edit").
// InsertLine is raw JSON because agents send both ints and strings.
type FileEditAction struct {
	Path         string          `json:"path"`
	Command      string          `json:"command"`
	FileText     *string         `json:"file_text"`
	OldStr       *string         `json:"old_str"`
	NewStr       *string         `json:"new_str"`
	InsertLine   json.RawMessage `json:"insert_line"`
	Content      string          `json:"content"`
	Start        int             `json:"start"`
	End          int             `json:"end"`
	Thought      string          `json:"thought"`
	SecurityRisk SecurityRisk    `json:"security_risk"`
	ImplSource   string          `json:"impl_source"`
}

// BrowseURLAction opens a URL ("browse").
type BrowseURLAction struct {
	URL          string       `json:"url"`
	Thought      string       `json:"thought"`
	SecurityRisk SecurityRisk `json:"security_risk"`
	ReturnAxtree bool         `json:"return_axtree"`
}

// BrowseInteractiveAction drives the browser ("browse_interactive").
type BrowseInteractiveAction struct {
	BrowserActions          string       `json:"browser_actions"`
	Thought                 string       `json:"thought"`
	BrowsergymSendMsgToUser string       `json:"browsergym_send_msg_to_user"`
	SecurityRisk            SecurityRisk `json:"security_risk"`
	ReturnAxtree            bool         `json:"return_axtree"`
}

// MCPAction calls an MCP tool ("call_tool_mcp").
type MCPAction struct {
	Name         string          `json:"name"`
	Arguments    json.RawMessage `json:"arguments"`
	Thought      string          `json:"thought"`
	SecurityRisk SecurityRisk    `json:"security_risk"`
}

// AgentThinkAction logs a thought ("think").
type AgentThinkAction struct {
	Thought string `json:"thought"`
}

// AgentFinishAction ends the task ("finish").
type AgentFinishAction struct {
	FinalThought string          `json:"final_thought"`
	Outputs      json.RawMessage `json:"outputs"`
	Thought      string          `json:"thought"`
}

// AgentRejectAction rejects the task ("reject").
type AgentRejectAction struct {
	Outputs json.RawMessage `json:"outputs"`
	Thought string          `json:"thought"`
}

// AgentDelegateAction delegates to another agent ("delegate").
type AgentDelegateAction struct {
	Agent   string          `json:"agent"`
	Inputs  json.RawMessage `json:"inputs"`
	Thought string          `json:"thought"`
}

// MessageAction is a chat message ("message").
type MessageAction struct {
	Content         string       `json:"content"`
	FileURLs        []string     `json:"file_urls"`
	ImageURLs       []string     `json:"image_urls"`
	WaitForResponse bool         `json:"wait_for_response"`
	SecurityRisk    SecurityRisk `json:"security_risk"`
}

// SystemMessageAction is the system prompt ("system").
type SystemMessageAction struct {
	Content          string          `json:"content"`
	Tools            json.RawMessage `json:"tools"`
	OpenhandsVersion *string         `json:"openhands_version"`
	AgentClass       *string         `json:"agent_class"`
}

// RecallAction asks for memory ("recall").
type RecallAction struct {
	RecallType string `json:"recall_type"`
	Query      string `json:"query"`
	Thought    string `json:"thought"`
}

// ChangeAgentStateAction changes the agent state ("change_agent_state").
type ChangeAgentStateAction struct {
	AgentState string `json:"agent_state"`
	Thought    string `json:"thought"`
}

// CondensationAction records a history condensation ("condensation").
type CondensationAction struct {
	ForgottenEventIDs      []int64 `json:"forgotten_event_ids"`
	ForgottenEventsStartID *int64  `json:"forgotten_events_start_id"`
	ForgottenEventsEndID   *int64  `json:"forgotten_events_end_id"`
	Summary                *string `json:"summary"`
	SummaryOffset          *int    `json:"summary_offset"`
}

// CondensationRequestAction asks for a condensation ("condensation_request").
type CondensationRequestAction struct{}

// TaskTrackingAction plans or views the task list ("task_tracking").
type TaskTrackingAction struct {
	Command  string          `json:"command"`
	TaskList json.RawMessage `json:"task_list"`
	Thought  string          `json:"thought"`
}

// LoopRecoveryAction picks a loop-recovery option ("loop_recovery").
type LoopRecoveryAction struct {
	Option int `json:"option"`
}

// NullAction does nothing ("null").
type NullAction struct{}

func (*CmdRunAction) ActionType() string              { return "run" }
func (*IPythonRunCellAction) ActionType() string      { return "run_ipython" }
func (*FileReadAction) ActionType() string            { return "read" }
func (*FileWriteAction) ActionType() string           { return "write" }
func (*FileEditAction) ActionType() string            { return "edit" }
func (*BrowseURLAction) ActionType() string           { return "browse" }
func (*BrowseInteractiveAction) ActionType() string   { return "browse_interactive" }
func (*MCPAction) ActionType() string                 { return "call_tool_mcp" }
func (*AgentThinkAction) ActionType() string          { return "think" }
func (*AgentFinishAction) ActionType() string         { return "finish" }
func (*AgentRejectAction) ActionType() string         { return "reject" }
func (*AgentDelegateAction) ActionType() string       { return "delegate" }
func (*MessageAction) ActionType() string             { return "message" }
func (*SystemMessageAction) ActionType() string       { return "system" }
func (*RecallAction) ActionType() string              { return "recall" }
func (*ChangeAgentStateAction) ActionType() string    { return "change_agent_state" }
func (*CondensationAction) ActionType() string        { return "condensation" }
func (*CondensationRequestAction) ActionType() string { return "condensation_request" }
func (*TaskTrackingAction) ActionType() string        { return "task_tracking" }
func (*LoopRecoveryAction) ActionType() string        { return "loop_recovery" }
func (*NullAction) ActionType() string                { return "null" }

func (*CmdRunAction) Runnable() bool              { return true }
func (*IPythonRunCellAction) Runnable() bool      { return true }
func (*FileReadAction) Runnable() bool            { return true }
func (*FileWriteAction) Runnable() bool           { return true }
func (*FileEditAction) Runnable() bool            { return true }
func (*BrowseURLAction) Runnable() bool           { return true }
func (*BrowseInteractiveAction) Runnable() bool   { return true }
func (*MCPAction) Runnable() bool                 { return true }
func (*AgentThinkAction) Runnable() bool          { return false }
func (*AgentFinishAction) Runnable() bool         { return false }
func (*AgentRejectAction) Runnable() bool         { return false }
func (*AgentDelegateAction) Runnable() bool       { return false }
func (*MessageAction) Runnable() bool             { return false }
func (*SystemMessageAction) Runnable() bool       { return false }
func (*RecallAction) Runnable() bool              { return false }
func (*ChangeAgentStateAction) Runnable() bool    { return false }
func (*CondensationAction) Runnable() bool        { return false }
func (*CondensationRequestAction) Runnable() bool { return false }
func (*TaskTrackingAction) Runnable() bool        { return false }
func (*LoopRecoveryAction) Runnable() bool        { return false }
func (*NullAction) Runnable() bool                { return false }

func (a *CmdRunAction) cloneAction() Action              { c := *a; return &c }
func (a *IPythonRunCellAction) cloneAction() Action      { c := *a; return &c }
func (a *FileReadAction) cloneAction() Action            { c := *a; return &c }
func (a *FileWriteAction) cloneAction() Action           { c := *a; return &c }
func (a *FileEditAction) cloneAction() Action            { c := *a; return &c }
func (a *BrowseURLAction) cloneAction() Action           { c := *a; return &c }
func (a *BrowseInteractiveAction) cloneAction() Action   { c := *a; return &c }
func (a *MCPAction) cloneAction() Action                 { c := *a; return &c }
func (a *AgentThinkAction) cloneAction() Action          { c := *a; return &c }
func (a *AgentFinishAction) cloneAction() Action         { c := *a; return &c }
func (a *AgentRejectAction) cloneAction() Action         { c := *a; return &c }
func (a *AgentDelegateAction) cloneAction() Action       { c := *a; return &c }
func (a *MessageAction) cloneAction() Action             { c := *a; return &c }
func (a *SystemMessageAction) cloneAction() Action       { c := *a; return &c }
func (a *RecallAction) cloneAction() Action              { c := *a; return &c }
func (a *ChangeAgentStateAction) cloneAction() Action    { c := *a; return &c }
func (a *CondensationAction) cloneAction() Action        { c := *a; return &c }
func (a *CondensationRequestAction) cloneAction() Action { c := *a; return &c }
func (a *TaskTrackingAction) cloneAction() Action        { c := *a; return &c }
func (a *LoopRecoveryAction) cloneAction() Action        { c := *a; return &c }
func (a *NullAction) cloneAction() Action                { c := *a; return &c }

func (a *CmdRunAction) Confirmation() ConfirmationState { return a.ConfirmationState }
func (a *CmdRunAction) SetConfirmation(s ConfirmationState) {
	a.ConfirmationState = s
}
func (a *IPythonRunCellAction) Confirmation() ConfirmationState { return a.ConfirmationState }
func (a *IPythonRunCellAction) SetConfirmation(s ConfirmationState) {
	a.ConfirmationState = s
}

// newAction returns the action type named t with OpenHands' defaults set, or
// nil when OpenHands has no such action.
func newAction(t string) Action {
	switch t {
	case "run":
		return &CmdRunAction{ConfirmationState: Confirmed, SecurityRisk: RiskUnknown}
	case "run_ipython":
		return &IPythonRunCellAction{IncludeExtra: true, ConfirmationState: Confirmed, SecurityRisk: RiskUnknown}
	case "read":
		return &FileReadAction{End: -1, SecurityRisk: RiskUnknown, ImplSource: "default"}
	case "write":
		return &FileWriteAction{End: -1, SecurityRisk: RiskUnknown}
	case "edit":
		return &FileEditAction{Start: 1, End: -1, SecurityRisk: RiskUnknown, ImplSource: "oh_aci"}
	case "browse":
		return &BrowseURLAction{SecurityRisk: RiskUnknown}
	case "browse_interactive":
		return &BrowseInteractiveAction{SecurityRisk: RiskUnknown}
	case "call_tool_mcp":
		return &MCPAction{Arguments: json.RawMessage(`{}`), SecurityRisk: RiskUnknown}
	case "think":
		return &AgentThinkAction{}
	case "finish":
		return &AgentFinishAction{Outputs: json.RawMessage(`{}`)}
	case "reject":
		return &AgentRejectAction{Outputs: json.RawMessage(`{}`)}
	case "delegate":
		return &AgentDelegateAction{}
	case "message":
		return &MessageAction{SecurityRisk: RiskUnknown}
	case "system":
		return &SystemMessageAction{}
	case "recall":
		return &RecallAction{}
	case "change_agent_state":
		return &ChangeAgentStateAction{}
	case "condensation":
		return &CondensationAction{}
	case "condensation_request":
		return &CondensationRequestAction{}
	case "task_tracking":
		return &TaskTrackingAction{Command: "view", TaskList: json.RawMessage(`[]`)}
	case "loop_recovery":
		return &LoopRecoveryAction{Option: 1}
	case "null":
		return &NullAction{}
	}
	return nil
}

// NewActionOf returns a fresh action of OpenHands type t with its defaults,
// or an error naming t when OpenHands has no such action.
func NewActionOf(t string) (Action, error) {
	if a := newAction(t); a != nil {
		return a, nil
	}
	return nil, fmt.Errorf("unknown action type %q", t)
}

// actionMessage is OpenHands' `message` property of an action.
func actionMessage(a Action) string {
	switch v := a.(type) {
	case *CmdRunAction:
		return "Running command: " + v.Command
	case *IPythonRunCellAction:
		return "Running Python code interactively: " + v.Code
	case *FileReadAction:
		return "Reading file: " + v.Path
	case *FileWriteAction:
		return "Writing file: " + v.Path
	case *FileEditAction:
		return "Editing file: " + v.Path
	case *BrowseURLAction:
		return "Browsing URL: " + v.URL
	case *BrowseInteractiveAction:
		return "Executing browser actions: " + v.BrowserActions
	case *MCPAction:
		return "I am interacting with the MCP server with name: " + v.Name
	case *AgentThinkAction:
		return "I am thinking...: " + v.Thought
	case *AgentFinishAction:
		if v.FinalThought != "" {
			return v.FinalThought
		}
		return "All done! What's next on the agenda?"
	case *AgentRejectAction:
		return "Task is rejected by the agent."
	case *AgentDelegateAction:
		return "I'm asking " + v.Agent + " for help with this task."
	case *MessageAction:
		return v.Content
	case *SystemMessageAction:
		return v.Content
	case *ChangeAgentStateAction:
		return "Agent state changed to " + v.AgentState
	case *RecallAction:
		return "Retrieving content for: " + v.Query
	case *NullAction:
		return "No action"
	}
	return ""
}
