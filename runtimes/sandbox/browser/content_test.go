package browser

import "testing"

// The expected texts below are written out by hand from OpenHands'
// get_agent_obs_text (openhands/runtime/browser/utils.py), so a change of
// any fixed line shows up as a diff here.
func TestAgentText(t *testing.T) {
	tree := "RootWebArea 'Two', focused\n\t[13] link 'Go two'"
	tests := []struct {
		name    string
		trigger string
		state   State
		want    string
	}{
		{"browse shows the page text", "browse",
			State{URL: "http://a.test/", PageText: "# Title\n\nHello", AXTree: "ignored"},
			"[Current URL: http://a.test/]\n" +
				"============== BEGIN webpage content ==============\n" +
				"# Title\n\nHello\n" +
				"============== END webpage content ==============\n"},
		{"browse error comes before the (possibly empty) page text", "browse",
			State{URL: "http://nope.test/", ActionError: "net::ERR_NAME_NOT_RESOLVED"},
			"[Current URL: http://nope.test/]\n" +
				"================ BEGIN error message ===============\n" +
				"The following error occurred when trying to visit the URL:\n" +
				"net::ERR_NAME_NOT_RESOLVED\n" +
				"================ END error message ===============\n" +
				"============== BEGIN webpage content ==============\n" +
				"\n============== END webpage content ==============\n"},
		{"interactive success shows the complete tree", "browse_interactive",
			State{URL: "http://a.test/two", FocusedBid: "13", AXTree: tree, PageText: "ignored"},
			"[Current URL: http://a.test/two]\n" +
				"[Focused element bid: 13]\n" +
				"\n" +
				"[Action executed successfully.]\n" +
				"Accessibility tree of the COMPLETE webpage:\n" +
				"Note: [bid] is the unique alpha-numeric identifier at the beginning of lines for each element in the AXTree. Always use bid to refer to elements in your actions.\n" +
				"============== BEGIN accessibility tree ==============\n" +
				tree + "\n" +
				"============== END accessibility tree ==============\n"},
		{"interactive error with a screenshot path and the visible tree", "browse_interactive",
			State{URL: "about:blank", ScreenshotPath: "/w/.browser_screenshots/s.png", ActionError: "ValueError: Could not find element with bid \"99\"",
				AXTree: "RootWebArea ''", VisibleOnly: true},
			"[Current URL: about:blank]\n" +
				"[Focused element bid: ]\n" +
				"[Screenshot saved to: /w/.browser_screenshots/s.png]\n" +
				"\n" +
				"================ BEGIN error message ===============\n" +
				"The following error occurred when executing the last action:\n" +
				"ValueError: Could not find element with bid \"99\"\n" +
				"================ END error message ===============\n" +
				"Accessibility tree of the VISIBLE portion of the webpage (accessibility tree of complete webpage is too large and you may need to scroll to view remaining portion of the webpage):\n" +
				"Note: [bid] is the unique alpha-numeric identifier at the beginning of lines for each element in the AXTree. Always use bid to refer to elements in your actions.\n" +
				"============== BEGIN accessibility tree ==============\n" +
				"RootWebArea ''\n" +
				"============== END accessibility tree ==============\n"},
		{"interactive tree failure replaces the tree", "browse_interactive",
			State{URL: "", ActionError: "browser died", AXTreeError: "'nodes'"},
			"[Current URL: ]\n" +
				"[Focused element bid: ]\n" +
				"\n" +
				"================ BEGIN error message ===============\n" +
				"The following error occurred when executing the last action:\n" +
				"browser died\n" +
				"================ END error message ===============\n" +
				"\n[Error encountered when processing the accessibility tree: 'nodes']"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AgentText(tt.trigger, tt.state); got != tt.want {
				t.Errorf("AgentText(%q)\n got %q\nwant %q", tt.trigger, got, tt.want)
			}
		})
	}
}
