package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"corral/transport/agentwire"
)

// PortsEngine is the optional Engine capability behind the preview ports
// (/api/sessions/{id}/ports...): an http.RoundTripper to the session's
// agent, on the connection its runtime already holds (actors'
// AgentHTTP). An Engine without it is answered 501.
type PortsEngine interface {
	AgentHTTP(ctx context.Context, id string, do func(ctx context.Context, rt http.RoundTripper) error) error
}

// AgentHTTP implements PortsEngine.
func (a *EngineAdapter) AgentHTTP(ctx context.Context, id string, do func(ctx context.Context, rt http.RoundTripper) error) error {
	return mapErr(a.eng.AgentHTTP(ctx, id, do))
}

// Port is one listening port of a session's sandbox and the API URL that
// reaches it.
type Port struct {
	Port    int    `json:"port"`
	Address string `json:"address"`
	URL     string `json:"url"`
}

func (s *Server) portsEngine(w http.ResponseWriter) (PortsEngine, bool) {
	pe, ok := s.eng.(PortsEngine)
	if !ok {
		writeError(w, http.StatusNotImplemented, "not_supported", "this server's engine cannot reach sandbox ports")
	}
	return pe, ok
}

// listPorts answers the TCP ports listening on the sandbox's loopback (or
// every address), as the agent reads them from /proc/net/tcp{,6}.
func (s *Server) listPorts(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	pe, ok := s.portsEngine(w)
	if !ok {
		return
	}
	var listed struct {
		Ports []agentwire.ListeningPort `json:"ports"`
	}
	err := pe.AgentHTTP(r.Context(), id, func(ctx context.Context, rt http.RoundTripper) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+agentwire.PathPorts, nil)
		if err != nil {
			return err
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return fmt.Errorf("asking the agent for its ports: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the sandbox's agent answered HTTP %d to GET %s (an agent older than preview ports?)", resp.StatusCode, agentwire.PathPorts)
		}
		return json.NewDecoder(resp.Body).Decode(&listed)
	})
	if err != nil {
		s.engineError(w, r, fmt.Sprintf("ports of session %q", id), err)
		return
	}
	out := make([]Port, 0, len(listed.Ports))
	for _, p := range listed.Ports {
		out = append(out, Port{Port: p.Port, Address: p.Address, URL: fmt.Sprintf("/api/sessions/%s/ports/%d/", id, p.Port)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"ports": out})
}

// proxyPort forwards any request (WebSocket upgrades included) to
// 127.0.0.1:{port} inside the session's sandbox through its agent, which
// answers 502 when nothing listens there. Corral's own credential
// (Authorization or ?access_token=) is not passed on to the application.
func (s *Server) proxyPort(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	port, err := agentwire.ParsePort(r.PathValue("port"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_port", err.Error())
		return
	}
	pe, ok := s.portsEngine(w)
	if !ok {
		return
	}
	// The rest of the path as the client escaped it (an app may tell a/b
	// from a%2Fb): segments "", api, sessions, {id}, ports, {port}, rest.
	rest := "/"
	if parts := strings.SplitN(r.URL.EscapedPath(), "/", 7); len(parts) == 7 {
		rest += parts[6]
	}
	target := agentwire.PathPorts + "/" + strconv.Itoa(port) + rest
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.baseCtx, cancel) // the server is closing: end proxied WebSockets too
	defer stop()
	run := &proxyRun{done: make(chan struct{})}
	err = pe.AgentHTTP(ctx, id, func(ctx context.Context, rt http.RoundTripper) error {
		if !run.begin() {
			return ctx.Err() // the handler has returned: w is no longer ours
		}
		defer close(run.done)
		// ReverseProxy aborts a response cut while streaming with
		// panic(http.ErrAbortHandler); do runs on the engine's goroutine,
		// where nothing recovers it and the whole server would die: catch
		// it here and abort from the handler below (as runtimeapi does).
		defer func() {
			if p := recover(); p != nil {
				if p != http.ErrAbortHandler {
					panic(p)
				}
				run.aborted = true
			}
		}()
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", "agent", ""
				pr.Out.URL.RawPath = target
				pr.Out.URL.Path, _ = url.PathUnescape(target) // the mux already unescaped it once: it is valid
				if len(s.tokens) > 0 {
					pr.Out.Header.Del("Authorization")
					q := pr.Out.URL.Query()
					if q.Has("access_token") {
						q.Del("access_token")
						pr.Out.URL.RawQuery = q.Encode()
					}
				}
			},
			Transport:     rt,
			FlushInterval: -1,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				if r.Context().Err() != nil {
					return
				}
				writeError(w, http.StatusBadGateway, "agent_unreachable",
					fmt.Sprintf("port %d of session %q: the sandbox's agent could not be reached: %v", port, id, err))
			},
		}
		rp.ServeHTTP(w, r.WithContext(ctx))
		return nil
	})
	proxied, aborted := run.wait()
	if aborted {
		panic(http.ErrAbortHandler)
	}
	if err != nil && !proxied {
		s.engineError(w, r, fmt.Sprintf("port %d of session %q", port, id), err)
	}
}

// proxyRun keeps a proxied request's work on the engine's goroutine within
// its handler: AgentHTTP returns as soon as the request's context ends (a
// client leaving mid-download), possibly while that work still writes to
// the ResponseWriter, which the handler must not return under. wait marks
// the handler as leaving and waits for work that began; work that had not
// begun by then never does.
type proxyRun struct {
	mu      sync.Mutex
	started bool
	left    bool
	done    chan struct{} // closed when started work has ended
	aborted bool          // set before done closes
}

func (p *proxyRun) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started = !p.left
	return p.started
}

func (p *proxyRun) wait() (proxied, aborted bool) {
	p.mu.Lock()
	p.left = true
	started := p.started
	p.mu.Unlock()
	if !started {
		return false, false
	}
	<-p.done
	return true, p.aborted
}
