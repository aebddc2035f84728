package eventbus

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Observation is the payload of an observation event; the concrete types
// mirror OpenHands' observation classes and their "extras" (reference §7.3).
// The observation's text lives in Event.Content.
type Observation interface {
	// ObservationType is the "observation" string, e.g. "run".
	ObservationType() string
	cloneObservation() Observation
}

// CmdOutputMetadata is the metadata of a command's output, read from the
// shell's PS1 JSON block.
type CmdOutputMetadata struct {
	ExitCode          int     `json:"exit_code"`
	PID               int     `json:"pid"`
	Username          *string `json:"username"`
	Hostname          *string `json:"hostname"`
	WorkingDir        *string `json:"working_dir"`
	PyInterpreterPath *string `json:"py_interpreter_path"`
	Prefix            string  `json:"prefix"`
	Suffix            string  `json:"suffix"`
}

// DefaultMetadata returns OpenHands' default metadata (exit code and pid -1).
func DefaultMetadata() CmdOutputMetadata { return CmdOutputMetadata{ExitCode: -1, PID: -1} }

// CmdOutputObservation is a command's output ("run").
type CmdOutputObservation struct {
	Command  string            `json:"command"`
	Metadata CmdOutputMetadata `json:"metadata"`
	Hidden   bool              `json:"hidden"`
}

// IPythonRunCellObservation is a Python cell's output ("run_ipython").
type IPythonRunCellObservation struct {
	Code      string   `json:"code"`
	ImageURLs []string `json:"image_urls"`
}

// FileReadObservation is a file's content ("read").
type FileReadObservation struct {
	Path       string `json:"path"`
	ImplSource string `json:"impl_source"`
}

// FileWriteObservation confirms a write ("write").
type FileWriteObservation struct {
	Path string `json:"path"`
}

// FileEditObservation is an edit's result ("edit"). OldContent/NewContent
// carry the edit's strings, Diff the unified diff of the file.
type FileEditObservation struct {
	Path       string  `json:"path"`
	PrevExist  bool    `json:"prev_exist"`
	OldContent *string `json:"old_content"`
	NewContent *string `json:"new_content"`
	ImplSource string  `json:"impl_source"`
	Diff       *string `json:"diff"`
}

// BrowserOutputObservation is a browser's state ("browse"), the answer to
// browse and browse_interactive (runtimes/sandbox/browser).
type BrowserOutputObservation struct {
	URL                    string          `json:"url"`
	TriggerByAction        string          `json:"trigger_by_action"`
	Screenshot             string          `json:"screenshot"`
	ScreenshotPath         *string         `json:"screenshot_path"`
	SetOfMarks             string          `json:"set_of_marks"`
	Error                  bool            `json:"error"`
	GoalImageURLs          json.RawMessage `json:"goal_image_urls"`
	OpenPagesURLs          json.RawMessage `json:"open_pages_urls"`
	ActivePageIndex        int             `json:"active_page_index"`
	DomObject              json.RawMessage `json:"dom_object"`
	AxtreeObject           json.RawMessage `json:"axtree_object"`
	ExtraElementProperties json.RawMessage `json:"extra_element_properties"`
	LastBrowserAction      string          `json:"last_browser_action"`
	LastBrowserActionError string          `json:"last_browser_action_error"`
	FocusedElementBid      string          `json:"focused_element_bid"`
	FilterVisibleOnly      bool            `json:"filter_visible_only"`
}

// MCPObservation is an MCP tool's result ("mcp").
type MCPObservation struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// ErrorObservation reports an error ("error").
type ErrorObservation struct {
	ErrorID string `json:"error_id"`
}

// UserRejectObservation answers a rejected action ("user_rejected").
type UserRejectObservation struct{}

// NullObservation is an empty observation ("null").
type NullObservation struct{}

// AgentThinkObservation answers a think action ("think").
type AgentThinkObservation struct{}

// AgentStateChangedObservation reports an agent state ("agent_state_changed").
type AgentStateChangedObservation struct {
	AgentState string `json:"agent_state"`
	Reason     string `json:"reason"`
}

// AgentDelegateObservation is a delegate's result ("delegate").
type AgentDelegateObservation struct {
	Outputs json.RawMessage `json:"outputs"`
}

// SuccessObservation reports success ("success").
type SuccessObservation struct{}

// AgentCondensationObservation is a condensation summary ("condense").
type AgentCondensationObservation struct{}

// RecallObservation carries recalled context ("recall").
type RecallObservation struct {
	RecallType                  string          `json:"recall_type"`
	RepoName                    string          `json:"repo_name"`
	RepoDirectory               string          `json:"repo_directory"`
	RepoBranch                  string          `json:"repo_branch"`
	RepoInstructions            string          `json:"repo_instructions"`
	RuntimeHosts                json.RawMessage `json:"runtime_hosts"`
	AdditionalAgentInstructions string          `json:"additional_agent_instructions"`
	Date                        string          `json:"date"`
	CustomSecretsDescriptions   json.RawMessage `json:"custom_secrets_descriptions"`
	ConversationInstructions    string          `json:"conversation_instructions"`
	WorkingDir                  string          `json:"working_dir"`
	MicroagentKnowledge         json.RawMessage `json:"microagent_knowledge"`
}

// FileDownloadObservation names a downloaded file ("download").
type FileDownloadObservation struct {
	FilePath string `json:"file_path"`
}

// TaskTrackingObservation answers task_tracking ("task_tracking").
type TaskTrackingObservation struct {
	Command  string          `json:"command"`
	TaskList json.RawMessage `json:"task_list"`
}

// LoopDetectionObservation reports a detected loop ("loop_detection").
type LoopDetectionObservation struct{}

// RuntimeStatusObservation is Corral's own event: a change of the session's
// runtime status (OpenHands sends these out of band; Corral records them on
// the stream so they replay). Status is an OpenHands RuntimeStatus id such as
// "STATUS$READY".
type RuntimeStatusObservation struct {
	Status string `json:"status"`
	Level  string `json:"level"`
}

// Runtime statuses (OpenHands RuntimeStatus values).
const (
	StatusStopped                  = "STATUS$STOPPED"
	StatusBuildingRuntime          = "STATUS$BUILDING_RUNTIME"
	StatusStartingRuntime          = "STATUS$STARTING_RUNTIME"
	StatusRuntimeStarted           = "STATUS$RUNTIME_STARTED"
	StatusSettingUpWorkspace       = "STATUS$SETTING_UP_WORKSPACE"
	StatusSettingUpGitHooks        = "STATUS$SETTING_UP_GIT_HOOKS"
	StatusReady                    = "STATUS$READY"
	StatusError                    = "STATUS$ERROR"
	StatusErrorRuntimeDisconnected = "STATUS$ERROR_RUNTIME_DISCONNECTED"
	StatusErrorMemory              = "STATUS$ERROR_MEMORY"
)

func (*CmdOutputObservation) ObservationType() string         { return "run" }
func (*IPythonRunCellObservation) ObservationType() string    { return "run_ipython" }
func (*FileReadObservation) ObservationType() string          { return "read" }
func (*FileWriteObservation) ObservationType() string         { return "write" }
func (*FileEditObservation) ObservationType() string          { return "edit" }
func (*BrowserOutputObservation) ObservationType() string     { return "browse" }
func (*MCPObservation) ObservationType() string               { return "mcp" }
func (*ErrorObservation) ObservationType() string             { return "error" }
func (*UserRejectObservation) ObservationType() string        { return "user_rejected" }
func (*NullObservation) ObservationType() string              { return "null" }
func (*AgentThinkObservation) ObservationType() string        { return "think" }
func (*AgentStateChangedObservation) ObservationType() string { return "agent_state_changed" }
func (*AgentDelegateObservation) ObservationType() string     { return "delegate" }
func (*SuccessObservation) ObservationType() string           { return "success" }
func (*AgentCondensationObservation) ObservationType() string { return "condense" }
func (*RecallObservation) ObservationType() string            { return "recall" }
func (*FileDownloadObservation) ObservationType() string      { return "download" }
func (*TaskTrackingObservation) ObservationType() string      { return "task_tracking" }
func (*LoopDetectionObservation) ObservationType() string     { return "loop_detection" }
func (*RuntimeStatusObservation) ObservationType() string     { return "runtime_status" }

func (o *CmdOutputObservation) cloneObservation() Observation         { c := *o; return &c }
func (o *IPythonRunCellObservation) cloneObservation() Observation    { c := *o; return &c }
func (o *FileReadObservation) cloneObservation() Observation          { c := *o; return &c }
func (o *FileWriteObservation) cloneObservation() Observation         { c := *o; return &c }
func (o *FileEditObservation) cloneObservation() Observation          { c := *o; return &c }
func (o *BrowserOutputObservation) cloneObservation() Observation     { c := *o; return &c }
func (o *MCPObservation) cloneObservation() Observation               { c := *o; return &c }
func (o *ErrorObservation) cloneObservation() Observation             { c := *o; return &c }
func (o *UserRejectObservation) cloneObservation() Observation        { c := *o; return &c }
func (o *NullObservation) cloneObservation() Observation              { c := *o; return &c }
func (o *AgentThinkObservation) cloneObservation() Observation        { c := *o; return &c }
func (o *AgentStateChangedObservation) cloneObservation() Observation { c := *o; return &c }
func (o *AgentDelegateObservation) cloneObservation() Observation     { c := *o; return &c }
func (o *SuccessObservation) cloneObservation() Observation           { c := *o; return &c }
func (o *AgentCondensationObservation) cloneObservation() Observation { c := *o; return &c }
func (o *RecallObservation) cloneObservation() Observation            { c := *o; return &c }
func (o *FileDownloadObservation) cloneObservation() Observation      { c := *o; return &c }
func (o *TaskTrackingObservation) cloneObservation() Observation      { c := *o; return &c }
func (o *LoopDetectionObservation) cloneObservation() Observation     { c := *o; return &c }
func (o *RuntimeStatusObservation) cloneObservation() Observation     { c := *o; return &c }

// newObservation returns the observation type named t with OpenHands'
// defaults, or nil when there is no such observation.
func newObservation(t string) Observation {
	switch t {
	case "run":
		return &CmdOutputObservation{Metadata: DefaultMetadata()}
	case "run_ipython":
		return &IPythonRunCellObservation{}
	case "read":
		return &FileReadObservation{ImplSource: "default"}
	case "write":
		return &FileWriteObservation{}
	case "edit":
		return &FileEditObservation{ImplSource: "oh_aci"}
	case "browse":
		return &BrowserOutputObservation{ActivePageIndex: -1}
	case "mcp":
		return &MCPObservation{Arguments: json.RawMessage(`{}`)}
	case "error":
		return &ErrorObservation{}
	case "user_rejected":
		return &UserRejectObservation{}
	case "null":
		return &NullObservation{}
	case "think":
		return &AgentThinkObservation{}
	case "agent_state_changed":
		return &AgentStateChangedObservation{}
	case "delegate":
		return &AgentDelegateObservation{}
	case "success":
		return &SuccessObservation{}
	case "condense":
		return &AgentCondensationObservation{}
	case "recall":
		return &RecallObservation{}
	case "download":
		return &FileDownloadObservation{}
	case "task_tracking":
		return &TaskTrackingObservation{TaskList: json.RawMessage(`[]`)}
	case "loop_detection":
		return &LoopDetectionObservation{}
	case "runtime_status":
		return &RuntimeStatusObservation{}
	}
	return nil
}

// observationMessage is OpenHands' `message` property of an observation.
func observationMessage(o Observation, content string) string {
	switch v := o.(type) {
	case *CmdOutputObservation:
		return "Command `" + v.Command + "` executed with exit code " + strconv.Itoa(v.Metadata.ExitCode) + "."
	case *IPythonRunCellObservation:
		return "Code executed in IPython cell."
	case *FileReadObservation:
		return "I read the file " + v.Path + "."
	case *FileWriteObservation:
		return "I wrote to the file " + v.Path + "."
	case *FileEditObservation:
		return "I edited the file " + v.Path + "."
	case *NullObservation:
		return "No observation"
	case *UserRejectObservation, *ErrorObservation, *AgentThinkObservation, *SuccessObservation:
		return content
	case *AgentStateChangedObservation:
		return ""
	case *RuntimeStatusObservation:
		return fmt.Sprintf("Runtime status: %s", v.Status)
	}
	return content
}

// successOf returns the derived top-level "success" for observation types
// that define it in OpenHands, and ok=false for the others.
func successOf(o Observation) (success bool, ok bool) {
	switch v := o.(type) {
	case *CmdOutputObservation:
		return v.Metadata.ExitCode == 0, true
	case *IPythonRunCellObservation:
		return true, true
	}
	return false, false
}
