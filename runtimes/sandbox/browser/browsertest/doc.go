// Package browsertest helps tests outside package browser run the real
// browser: it finds Chromium (skipping, or failing under
// CORRAL_REQUIRE_DOCKER=1, when there is none), tags the Chromium
// processes a test starts so they can be counted after Close, and serves
// a small fixture site on 127.0.0.1.
//
// It is for tests only and must never be imported by non-test code.
package browsertest
