package runtimeapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// Sandbox is what the Runtime API reports about one sandbox.
type Sandbox struct {
	RuntimeID      string
	SessionID      string
	Status         string // "running", "paused" or "stopped"
	PodStatus      string // "ready", "pending", "failed", ... (lower case)
	SessionAPIKey  string // the agent's token, sent back as X-Session-API-Key
	RestartCount   int
	RestartReasons []string
}

// StartRequest is the body of POST /start (OpenHands' RemoteRuntime fields).
type StartRequest struct {
	Image          string            `json:"image"`
	Command        []string          `json:"command"`
	WorkingDir     string            `json:"working_dir"`
	Environment    map[string]string `json:"environment"`
	SessionID      string            `json:"session_id"`
	ResourceFactor float64           `json:"resource_factor"`
	RuntimeClass   string            `json:"runtime_class"`
}

// Provisioner is what the Runtime API needs from the engine.
type Provisioner interface {
	// StartSandbox provisions (or, for a session that already has a live
	// sandbox, returns) the sandbox for req.SessionID. The image names an
	// image of the image runtime (docker, or kubernetes: a pod), or
	// "local" for the local backend.
	StartSandbox(ctx context.Context, req StartRequest) (Sandbox, error)
	// SandboxBySession and SandboxByRuntime look a sandbox up.
	SandboxBySession(ctx context.Context, sessionID string) (Sandbox, bool)
	SandboxByRuntime(ctx context.Context, runtimeID string) (Sandbox, bool)
	StopSandbox(ctx context.Context, runtimeID string) error
	PauseSandbox(ctx context.Context, runtimeID string) error
	ResumeSandbox(ctx context.Context, runtimeID string) error
	ImageExists(ctx context.Context, image string) (bool, error)
	// AgentHTTP runs do with a RoundTripper that reaches the sandbox's
	// agent HTTP API (OpenHands' action-execution endpoints; the request
	// URL's host is ignored) over the engine's own connection to it. do
	// must be done with the response before returning. AgentHTTP returns
	// only after do returned, and do never starts after AgentHTTP returned.
	AgentHTTP(ctx context.Context, runtimeID string, do func(ctx context.Context, rt http.RoundTripper) error) error
}

// StatusError is a refusal answered with Status and Message (as
// {"detail": Message}) instead of a 500.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// statusOf returns the status of a StatusError in err's chain, or def.
func statusOf(err error, def int) int {
	if se, ok := errors.AsType[*StatusError](err); ok {
		return se.Status
	}
	return def
}

// Handler serves OpenHands' Runtime API (reference §4.4) so an unmodified
// OpenHands with runtime = "remote" gets its sandboxes from Corral.
type Handler struct {
	prov    Provisioner
	apiKey  string
	baseURL func(r *http.Request) string
	logger  *slog.Logger
	mux     *http.ServeMux
}

// Option configures a Handler.
type Option func(*Handler)

// WithBaseURL sets how the sandbox `url` returned by /start is built: f
// receives the /start request and returns the scheme://host[:port] under
// which this server is reachable by OpenHands. Default: from the request's
// Host header (https when the request came over TLS).
func WithBaseURL(f func(r *http.Request) string) Option { return func(h *Handler) { h.baseURL = f } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.logger = l } }

// SandboxPathPrefix is where each sandbox's action-execution API is proxied:
// {base}/runtime-api/sandbox/{runtime_id}/execute_action etc.
const SandboxPathPrefix = "/sandbox/"

// proxiedHost is the host name proxied requests carry to the agent.
const proxiedHost = "sandbox"

// New returns the Runtime API handler; apiKey must be non-empty (without a
// key the Runtime API is off and callers should not mount it).
func New(prov Provisioner, apiKey string, opts ...Option) (*Handler, error) {
	if apiKey == "" {
		return nil, errors.New("runtime API: an api_key is required ([runtime_api] api_key or CORRAL_RUNTIME_API_KEY)")
	}
	h := &Handler{prov: prov, apiKey: apiKey, logger: slog.Default(), mux: http.NewServeMux()}
	h.baseURL = func(r *http.Request) string {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		return scheme + "://" + r.Host
	}
	for _, o := range opts {
		o(h)
	}
	h.mux.HandleFunc("POST /start", h.auth(h.start))
	h.mux.HandleFunc("POST /stop", h.auth(h.runtimeOp(h.prov.StopSandbox)))
	h.mux.HandleFunc("POST /pause", h.auth(h.runtimeOp(h.prov.PauseSandbox)))
	h.mux.HandleFunc("POST /resume", h.auth(h.runtimeOp(h.prov.ResumeSandbox)))
	h.mux.HandleFunc("GET /sessions/{sid}", h.auth(h.session))
	h.mux.HandleFunc("GET /runtime/{rid}", h.auth(h.runtime))
	h.mux.HandleFunc("GET /registry_prefix", h.auth(h.registryPrefix))
	h.mux.HandleFunc("GET /image_exists", h.auth(h.imageExists))
	h.mux.HandleFunc("POST /build", h.auth(h.build))
	h.mux.HandleFunc("GET /build_status", h.auth(h.build))
	// The sandbox's own API authenticates with X-Session-API-Key (checked by
	// the agent itself), not with the control-plane key.
	h.mux.HandleFunc(SandboxPathPrefix+"{rid}/{rest...}", h.proxy)
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-API-Key")
		if subtle.ConstantTimeCompare([]byte(key), []byte(h.apiKey)) != 1 {
			writeDetail(w, http.StatusUnauthorized, "Invalid or missing X-API-Key header")
			return
		}
		next(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeDetail answers with FastAPI's error shape, which OpenHands' client
// reads ({"detail": "..."}).
func writeDetail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"detail": msg})
}

func (h *Handler) sandboxURL(r *http.Request, runtimeID string) string {
	return strings.TrimRight(h.baseURL(r), "/") + mountPrefix(r) + SandboxPathPrefix + url.PathEscape(runtimeID)
}

// mountPrefix recovers the path under which the handler is mounted (when
// served behind http.StripPrefix the original path is in RequestURI).
func mountPrefix(r *http.Request) string {
	orig := r.RequestURI
	if i := strings.IndexByte(orig, '?'); i >= 0 {
		orig = orig[:i]
	}
	if strings.HasSuffix(orig, r.URL.Path) {
		return strings.TrimSuffix(orig, r.URL.Path)
	}
	return ""
}

// OpenHands' DockerRuntime gives each sandbox one app port from each of
// these ranges and tells the agent to serve web apps on them.
const (
	appPortBase1 = 50000
	appPortBase2 = 55000
	appPortSpan  = 5000
)

// workHosts is OpenHands' work_hosts: URL -> the port inside the sandbox an
// app should listen on. The URLs are corral serve's preview-port proxy
// (/api/sessions/{id}/ports/{port}/, served beside this API), so no host
// port is published; they need the server's token when it has one. The
// ports come from the runtime id, so every answer about a sandbox names
// the same two.
func (h *Handler) workHosts(r *http.Request, runtimeID string) map[string]int {
	sum := fnv.New32a()
	_, _ = sum.Write([]byte(runtimeID))
	off := int(sum.Sum32() % appPortSpan)
	base := strings.TrimRight(h.baseURL(r), "/")
	hosts := make(map[string]int, 2)
	for _, first := range []int{appPortBase1, appPortBase2} {
		port := first + off
		hosts[fmt.Sprintf("%s/api/sessions/%s/ports/%d/", base, url.PathEscape(runtimeID), port)] = port
	}
	return hosts
}

func (h *Handler) start(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&req); err != nil {
		writeDetail(w, http.StatusBadRequest, "invalid /start body: "+err.Error())
		return
	}
	if req.SessionID == "" || req.Image == "" {
		writeDetail(w, http.StatusBadRequest, "/start needs session_id and image (an image for the docker or kubernetes runtime, or \"local\")")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	sb, err := h.prov.StartSandbox(ctx, req)
	if err != nil {
		h.logger.Warn("runtime api: start failed", "session", req.SessionID, "image", req.Image, "err", err)
		writeDetail(w, statusOf(err, http.StatusInternalServerError), "start sandbox: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"runtime_id":      sb.RuntimeID,
		"url":             h.sandboxURL(r, sb.RuntimeID),
		"work_hosts":      h.workHosts(r, sb.RuntimeID),
		"session_api_key": sb.SessionAPIKey,
		"status":          sb.Status,
		"pod_status":      sb.PodStatus,
	})
}

func (h *Handler) runtimeOp(op func(context.Context, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			RuntimeID string `json:"runtime_id"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.RuntimeID == "" {
			writeDetail(w, http.StatusBadRequest, "body must be {\"runtime_id\": \"...\"}")
			return
		}
		if _, ok := h.prov.SandboxByRuntime(r.Context(), req.RuntimeID); !ok {
			writeDetail(w, http.StatusNotFound, fmt.Sprintf("runtime %s not found", req.RuntimeID))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
		defer cancel()
		if err := op(ctx, req.RuntimeID); err != nil {
			writeDetail(w, statusOf(err, http.StatusInternalServerError), err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"runtime_id": req.RuntimeID})
	}
}

func (h *Handler) session(w http.ResponseWriter, r *http.Request) {
	sb, ok := h.prov.SandboxBySession(r.Context(), r.PathValue("sid"))
	if !ok {
		writeDetail(w, http.StatusNotFound, "session not found")
		return
	}
	body := map[string]any{"session_id": sb.SessionID, "status": sb.Status}
	if sb.Status == "running" || sb.Status == "paused" {
		body["runtime_id"] = sb.RuntimeID
		body["url"] = h.sandboxURL(r, sb.RuntimeID)
		body["work_hosts"] = h.workHosts(r, sb.RuntimeID)
		body["session_api_key"] = sb.SessionAPIKey
	}
	writeJSON(w, http.StatusOK, body)
}

func (h *Handler) runtime(w http.ResponseWriter, r *http.Request) {
	sb, ok := h.prov.SandboxByRuntime(r.Context(), r.PathValue("rid"))
	if !ok {
		writeDetail(w, http.StatusNotFound, "runtime not found")
		return
	}
	reasons := sb.RestartReasons
	if reasons == nil {
		reasons = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"runtime_id":      sb.RuntimeID,
		"session_id":      sb.SessionID,
		"status":          sb.Status,
		"pod_status":      sb.PodStatus,
		"restart_count":   sb.RestartCount,
		"restart_reasons": reasons,
	})
}

func (h *Handler) registryPrefix(w http.ResponseWriter, r *http.Request) {
	// Corral builds no images: the prefix names the local engine's images.
	writeJSON(w, http.StatusOK, map[string]string{"registry_prefix": "local"})
}

func (h *Handler) imageExists(w http.ResponseWriter, r *http.Request) {
	img := r.URL.Query().Get("image")
	if img == "" {
		writeDetail(w, http.StatusBadRequest, "query parameter image is required")
		return
	}
	ok, err := h.prov.ImageExists(r.Context(), img)
	if err != nil {
		writeDetail(w, http.StatusInternalServerError, err.Error())
		return
	}
	body := map[string]any{"exists": ok}
	if ok {
		body["image"] = map[string]any{"upload_time": nil, "image_size_bytes": nil}
	}
	writeJSON(w, http.StatusOK, body)
}

func (h *Handler) build(w http.ResponseWriter, r *http.Request) {
	writeDetail(w, http.StatusNotImplemented,
		"not supported: Corral builds no runtime images; give an existing image (sandbox.runtime_container_image) — any local image works, the agent is injected")
}

// proxy forwards /sandbox/{rid}/... to the sandbox agent's HTTP API, on
// the connection the engine holds to it (the backend's: unix socket, TLS,
// SSH tunnel); the response is streamed back before AgentHTTP returns.
func (h *Handler) proxy(w http.ResponseWriter, r *http.Request) {
	rid := r.PathValue("rid")
	rest := "/" + r.PathValue("rest")
	public := mountPrefix(r) + SandboxPathPrefix + url.PathEscape(rid) // this sandbox's root as the client sees it
	proxied, aborted := false, false
	err := h.prov.AgentHTTP(r.Context(), rid, func(ctx context.Context, rt http.RoundTripper) error {
		proxied = true
		// ReverseProxy aborts a response cut while streaming (a client
		// leaving an event stream) with panic(http.ErrAbortHandler). do may
		// run on another goroutine than the server's, which would not
		// recover it: catch it there and abort from the handler below.
		defer func() {
			if p := recover(); p != nil {
				if p != http.ErrAbortHandler {
					panic(p)
				}
				aborted = true
			}
		}()
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme = "http"
				pr.Out.URL.Host = proxiedHost
				pr.Out.URL.Path = rest
				pr.Out.URL.RawPath = ""
				pr.Out.Host = proxiedHost
				// The agent names URLs of its own (the MCP SSE stream's
				// message endpoint) under the path the client sees.
				pr.Out.Header.Set("X-Forwarded-Prefix", public)
			},
			Transport: rt,
			// Every write is flushed at once: event streams (the agent's
			// /mcp/sse) reach the client event by event.
			FlushInterval: -1,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				writeDetail(w, http.StatusBadGateway, fmt.Sprintf("sandbox %s: %v", rid, err))
			},
		}
		rp.ServeHTTP(w, r.WithContext(ctx))
		return nil
	})
	if aborted {
		panic(http.ErrAbortHandler)
	}
	if err == nil || proxied {
		return
	}
	// OpenHands maps 404 to "runtime is not responding" and 503 to a
	// paused runtime it may resume.
	status := statusOf(err, http.StatusNotFound)
	if sb, ok := h.prov.SandboxByRuntime(r.Context(), rid); ok && sb.Status == "paused" {
		status = http.StatusServiceUnavailable
	}
	writeDetail(w, status, fmt.Sprintf("sandbox %s unavailable: %v", rid, err))
}
