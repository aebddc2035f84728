// Package api is Corral's public HTTP + WebSocket API and the embedded web
// UI: sessions (create, list, inspect, pause, resume, delete), actions in
// OpenHands' JSON format (submit, wait for the observation, confirm,
// reject), the paged event log, a WebSocket that replays a session's events
// from an id and then follows it live together with the output of running
// commands, a session's files, its preview ports (HTTP and WebSocket
// proxied to 127.0.0.1:{port} inside the sandbox through its agent, with
// no host port published), health and readiness probes, Prometheus
// metrics, and the OpenAPI document that describes all of it.
//
// The server talks to the engine only through the small Engine interface
// defined here; NewEngineAdapter binds it to corral/actors.
//
// This package must never run actions itself, touch sandboxes or event logs
// except through Engine, silently drop an event on a live stream (a client
// that falls behind is told the last id it got and closed), answer an error
// with anything but a JSON error body, or listen beyond loopback without an
// auth token.
package api
