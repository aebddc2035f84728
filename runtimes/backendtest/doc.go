// Package backendtest is the conformance suite every sandbox backend runs:
// one set of actions (bash, files, the str_replace editor, Python cells,
// file list/upload/download, long output) with the exact observations
// OpenHands gives, driven through the connection a session uses:
// Backend.Connect, the one way to reach a sandbox. Each backend package
// calls Run from a _test.go file with a Harness naming the backend, how to
// start a sandbox, and which optional capabilities it has.
//
// It must never be imported by non-test code, never depend on one
// backend's internals (a difference between backends is a finding, not
// something to paper over here), and never relax an expectation for one
// backend except through a documented Harness capability.
package backendtest
