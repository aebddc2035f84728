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
// In a cluster (WithRouter; cluster.go, route.go) any member serves any
// session: a session-scoped request whose owner is another member is
// reverse-proxied to that member's API unchanged (WebSocket upgrades and
// streams included, flushed at once, over one shared keep-alive
// transport), marked with X-Corral-Routed-By; POST /api/sessions assigns
// the id, asks Router.Place and forwards there; GET /api/sessions asks
// every member (a member that does not answer is named in "unreachable");
// GET /api/cluster lists the members; RouteRuntimeAPI does the same for
// OpenHands' Runtime API. Router errors wrapping ErrNotFound mean "no
// member owns it" (served here: the engine answers 404), ErrQueueFull,
// ErrInvalid, ErrConflict and ErrShuttingDown keep their statuses, any
// other error is a 503 asking to retry.
//
// This package must never run actions itself, touch sandboxes or event logs
// except through Engine, silently drop an event on a live stream (a client
// that falls behind is told the last id it got and closed), answer an error
// with anything but a JSON error body, or listen beyond loopback without an
// auth token. It must never forward a request that carries
// X-Corral-Routed-By (no routing loops), nor import actors/cluster (the
// Router interface is the seam).
package api
