package browser

import "strings"

// State is what the agent-facing text of one browser observation is made
// of; the fields mirror OpenHands' BrowserOutputObservation.
type State struct {
	URL            string
	FocusedBid     string // focused_element_bid, "" when nothing with a bid has focus
	ScreenshotPath string // screenshot_path; "" when no screenshot was saved
	// ActionError is last_browser_action_error; not empty means the
	// observation's error flag is set.
	ActionError string
	PageText    string // browse: the page as text (HTMLText)
	AXTree      string // browse_interactive: the tree as text (AXTreeText)
	// AXTreeError, when set, replaces the tree: OpenHands prints it when
	// flattening the tree failed.
	AXTreeError string
	VisibleOnly bool // filter_visible_only: the tree covers the viewport only
}

// The fixed texts of OpenHands' get_agent_obs_text
// (openhands/runtime/browser/utils.py).
const (
	errorBegin       = "================ BEGIN error message ===============\n"
	errorEnd         = "================ END error message ===============\n"
	axtreeBidNote    = "Note: [bid] is the unique alpha-numeric identifier at the beginning of lines for each element in the AXTree. Always use bid to refer to elements in your actions.\n"
	axtreeComplete   = "Accessibility tree of the COMPLETE webpage:\n"
	axtreeVisible    = "Accessibility tree of the VISIBLE portion of the webpage (accessibility tree of complete webpage is too large and you may need to scroll to view remaining portion of the webpage):\n"
	axtreeBegin      = "============== BEGIN accessibility tree ==============\n"
	axtreeEnd        = "============== END accessibility tree ==============\n"
	webpageBegin     = "============== BEGIN webpage content ==============\n"
	webpageEnd       = "\n============== END webpage content ==============\n"
	interactiveError = "The following error occurred when executing the last action:\n"
	browseError      = "The following error occurred when trying to visit the URL:\n"
)

// AgentText is the observation's content as OpenHands' get_agent_obs_text
// writes it: for trigger "browse_interactive" the URL, focused bid, outcome
// and accessibility tree; for any other trigger (OpenHands knows only
// "browse" besides) the URL, the error if any and the page text.
func AgentText(trigger string, s State) string {
	var b strings.Builder
	b.WriteString("[Current URL: " + s.URL + "]\n")
	if trigger != "browse_interactive" {
		if s.ActionError != "" {
			b.WriteString(errorBegin + browseError + s.ActionError + "\n" + errorEnd)
		}
		b.WriteString(webpageBegin + s.PageText + webpageEnd)
		return b.String()
	}
	b.WriteString("[Focused element bid: " + s.FocusedBid + "]\n")
	if s.ScreenshotPath != "" {
		b.WriteString("[Screenshot saved to: " + s.ScreenshotPath + "]\n")
	}
	b.WriteString("\n")
	if s.ActionError != "" {
		b.WriteString(errorBegin + interactiveError + s.ActionError + "\n" + errorEnd)
	} else {
		b.WriteString("[Action executed successfully.]\n")
	}
	if s.AXTreeError != "" {
		b.WriteString("\n[Error encountered when processing the accessibility tree: " + s.AXTreeError + "]")
		return b.String()
	}
	if s.VisibleOnly {
		b.WriteString(axtreeVisible)
	} else {
		b.WriteString(axtreeComplete)
	}
	b.WriteString(axtreeBidNote + axtreeBegin + s.AXTree + "\n" + axtreeEnd)
	return b.String()
}
