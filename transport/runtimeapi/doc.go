// Package runtimeapi serves OpenHands' Runtime API (the control plane that
// OpenHands' RemoteRuntime talks to: /start, /stop, /pause, /resume,
// /sessions/{sid}, /runtime/{id}, /registry_prefix, /image_exists) on top of
// Corral's engine, and proxies each sandbox's action-execution API under
// /sandbox/{runtime_id}/ so OpenHands' client reaches the agent through the
// returned url with its X-Session-API-Key.
//
// It must never serve a control-plane call without a valid X-API-Key, and
// never build images: /build answers "not supported".
package runtimeapi
