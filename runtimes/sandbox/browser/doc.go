// Package browser is the sandbox's browser tool: it runs OpenHands'
// `browse` and `browse_interactive` actions in a real Chromium and returns
// the observation an OpenHands agent expects.
//
// Its pure half turns text into text and never touches a browser:
// ParseActions reads BrowserGym's high-level action language (the
// browser_actions string of browse_interactive: click('12'), fill(...),
// several calls per string) into typed, signature-checked Calls;
// AXTreeText flattens Chromium's accessibility tree into BrowserGym's
// flatten_axtree_to_str text with bids; HTMLText is the page text of
// `browse` as OpenHands' html2text settings produce it; AgentText wraps
// them into the observation's content exactly as OpenHands'
// get_agent_obs_text does.
//
// It must never panic or hang on any input (a bad action string is an
// *ActionError naming the call and byte offset, shown to the agent), never
// run a call it could not fully parse and check, and never import anything
// above eventbus: it is embedded in corral-agent.
package browser
