package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RoutedByHeader marks a request one cluster member forwarded to another:
// its value is the forwarding member's node id. A request carrying it is
// always served where it arrives, so two members that disagree about an
// owner never bounce a request between them.
const RoutedByHeader = "X-Corral-Routed-By"

// ownerMovedHeader is set on a 404 for a routed request: the member that
// forwarded it believed this one owned the session, so the owner moved
// (or the session is gone) and a retry finds the new owner.
const ownerMovedHeader = "X-Corral-Owner-Moved"

// memberTimeout bounds each member's answer to the GET /api/sessions fan-out.
const memberTimeout = 5 * time.Second

// WithRouter puts the server in a cluster: every session-scoped request
// (HTTP, WebSocket, files, logs, preview ports) whose session another
// member owns is reverse-proxied, unchanged, to that member's API; POST
// /api/sessions places new sessions with r.Place; GET /api/sessions lists
// every member's sessions; GET /api/cluster describes the members; session
// JSON names its owner in "node". Without it (nil) the server is the
// single node of today.
func WithRouter(r Router) Option {
	return func(s *Server) {
		if r != nil {
			s.cluster = newClusterRouting(r)
		}
	}
}

// clusterRouting is the server's cluster state: the router and one shared
// keep-alive transport for every forwarded request (a fresh connection per
// request would cost more than the routed hop's whole budget).
type clusterRouting struct {
	r         Router
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	client    *http.Client
}

func newClusterRouting(r Router) *clusterRouting {
	tr := &http.Transport{
		Proxy:                 nil, // members talk directly, never through $HTTP_PROXY
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true, // bodies pass through as the owner wrote them
		ExpectContinueTimeout: time.Second,
	}
	c := &clusterRouting{r: r, transport: tr, client: &http.Client{Transport: tr}}
	c.proxy = &httputil.ReverseProxy{
		Rewrite:       c.rewrite,
		Transport:     tr,
		FlushInterval: -1, // event streams, followed logs and waits go out at once
		ErrorHandler:  c.proxyError,
		// The entry member already answered CORS for this request; a
		// second Access-Control-Allow-Origin would make browsers refuse it.
		ModifyResponse: func(res *http.Response) error {
			res.Header.Del("Access-Control-Allow-Origin")
			return nil
		},
	}
	return c
}

// routeTarget is the member a request is forwarded to, carried in the
// request's context from the handler to the proxy's hooks.
type routeTarget struct {
	member ClusterMember
	api    *url.URL
	sid    string
}

type routeTargetKey struct{}

func (c *clusterRouting) rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(routeTargetKey{}).(*routeTarget)
	pr.SetURL(t.api)
	// Keep the Host the client used: the owner's origin checks and the
	// URLs it builds (Location, Runtime API sandbox urls) then name the
	// member the client talks to.
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	pr.Out.Header.Set(RoutedByHeader, c.r.Self().ID)
}

func (c *clusterRouting) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away; nobody reads an answer
	}
	t := r.Context().Value(routeTargetKey{}).(*routeTarget)
	w.Header().Set("Retry-After", "2")
	writeError(w, http.StatusServiceUnavailable, "owner_unreachable",
		fmt.Sprintf("session %q is owned by cluster member %s (%s), which did not answer: %v; retry in a few seconds (a dead member's sessions move to a live one)",
			t.sid, t.member.ID, t.member.API, err))
}

// forward proxies r to member m, which owns (or was placed for) sid.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, sid string, m ClusterMember) {
	u, err := url.Parse(m.API)
	if err != nil || u.Scheme == "" || u.Host == "" {
		writeError(w, http.StatusServiceUnavailable, "owner_unreachable",
			fmt.Sprintf("session %q is owned by cluster member %s, whose API address %q is not an http(s) URL; check that member's --listen and its cluster config, then retry", sid, m.ID, m.API))
		return
	}
	ctx := context.WithValue(r.Context(), routeTargetKey{}, &routeTarget{member: m, api: u, sid: sid})
	if r.Header.Get("Upgrade") != "" {
		// A relayed WebSocket outlives ServeHTTP's bookkeeping: Close ends
		// it like a local one and waits for it.
		if !s.trackWS() {
			writeError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down; reconnect to another member")
			return
		}
		defer s.wsWG.Done()
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(s.baseCtx, cancel)
		defer stop()
	}
	s.metrics.RoutedRequest(m.ID)
	s.cluster.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// routed wraps a session-scoped handler (its pattern has {id}): a request
// for a session another member owns goes there, the rest is served here.
func (s *Server) routed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cluster == nil || r.Header.Get(RoutedByHeader) != "" {
			h(w, r)
			return
		}
		sid := r.PathValue("id")
		owner, err := s.cluster.r.Owner(r.Context(), sid)
		switch {
		case errors.Is(err, ErrNotFound):
			h(w, r) // no member owns it: the local engine answers (404 unless it knows it)
		case err != nil:
			s.routerError(w, r, fmt.Sprintf("find the owner of session %q", sid), err)
		case owner.ID == s.cluster.r.Self().ID:
			h(w, r)
		default:
			s.forward(w, r, sid, owner)
		}
	}
}

// routerError answers a failed Owner or Place: the router's own sentinels
// keep their status, anything else means the cluster could not answer now.
func (s *Server) routerError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrQueueFull) || errors.Is(err, ErrInvalid) ||
		errors.Is(err, ErrConflict) || errors.Is(err, ErrShuttingDown) || r.Context().Err() != nil {
		s.engineError(w, r, what, err)
		return
	}
	w.Header().Set("Retry-After", "2")
	writeError(w, http.StatusServiceUnavailable, "cluster_unavailable",
		fmt.Sprintf("%s: %v; the cluster could not answer now, retry in a few seconds", what, err))
}

// newSessionID makes an id the way corral/actors does when a request has
// none (8 random bytes, hex), so a routed create can place it first.
func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// placeSession decides where POST /api/sessions runs in a cluster. It
// returns true when it answered (forwarded or failed); false means create
// here with req (its ID set).
func (s *Server) placeSession(w http.ResponseWriter, r *http.Request, body []byte, req *SessionRequest) bool {
	if s.cluster == nil || r.Header.Get(RoutedByHeader) != "" {
		return false // the forwarding member already placed it here
	}
	if req.ID == "" {
		req.ID = newSessionID()
	}
	m, err := s.cluster.r.Place(r.Context(), req.ID)
	if err != nil {
		s.routerError(w, r, fmt.Sprintf("place new session %q", req.ID), err)
		return true
	}
	if m.ID == s.cluster.r.Self().ID {
		return false
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		writeError(w, http.StatusBadRequest, "malformed_json", "session request: "+err.Error())
		return true
	}
	obj["id"], _ = json.Marshal(req.ID)
	nb, err := json.Marshal(obj)
	if err != nil {
		s.engineError(w, r, "encode the session request for its member", err)
		return true
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(nb))
	r2.ContentLength = int64(len(nb))
	r2.Header.Set("Content-Length", strconv.Itoa(len(nb)))
	r2.Header.Set("Content-Type", "application/json")
	s.forward(w, r2, req.ID, m)
	return true
}

// stampNode names this member as a local session's owner in cluster mode.
func (s *Server) stampNode(sess *Session) {
	if s.cluster != nil {
		sess.Node = s.cluster.r.Self().ID
	}
}

// notOwnedNote adds to a 404 of a forwarded request that the forwarding
// member thought this one owned the session.
func notOwnedNote(w http.ResponseWriter, r *http.Request, msg string) string {
	by := r.Header.Get(RoutedByHeader)
	if by == "" {
		return msg
	}
	w.Header().Set(ownerMovedHeader, "true")
	return fmt.Sprintf("%s (member %s routed this request here as the session's owner, but this member does not have it: the owner moved or the session is gone; retry to reach its owner)", msg, by)
}

// memberFailure is a member that did not answer the GET /api/sessions fan-out.
type memberFailure struct {
	Node  string `json:"node"`
	API   string `json:"api"`
	Error string `json:"error"`
}

// clusterSessions lists every member's sessions: this member's from the
// engine, the others' by asking them with RoutedByHeader (so each answers
// with its own only). A member that fails is named in failures; its
// sessions are missing from the list.
func (s *Server) clusterSessions(r *http.Request, local []Session) ([]Session, []memberFailure) {
	self := s.cluster.r.Self().ID
	for i := range local {
		local[i].Node = self
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		all      = local
		failures []memberFailure
	)
	for _, m := range s.cluster.r.Members(r.Context()) {
		if m.ID == self {
			continue
		}
		wg.Go(func() {
			list, err := s.memberSessions(r, m)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, memberFailure{Node: m.ID, API: m.API, Error: err.Error()})
				return
			}
			all = append(all, list...)
		})
	}
	wg.Wait()
	return dedupeSessions(all), failures
}

func (s *Server) memberSessions(r *http.Request, m ClusterMember) ([]Session, error) {
	ctx, cancel := context.WithTimeout(r.Context(), memberTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(m.API, "/")+"/api/sessions", nil)
	if err != nil {
		return nil, fmt.Errorf("member %s API %q: %w", m.ID, m.API, err)
	}
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	req.Header.Set(RoutedByHeader, s.cluster.r.Self().ID)
	res, err := s.cluster.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("member %s did not answer: %w", m.ID, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("member %s: reading its sessions: %w", m.ID, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("member %s answered %d: %s", m.ID, res.StatusCode, bytes.TrimSpace(b))
	}
	var body struct {
		Sessions []Session `json:"sessions"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, fmt.Errorf("member %s sent a malformed session list: %w", m.ID, err)
	}
	for i := range body.Sessions {
		if body.Sessions[i].Node == "" {
			body.Sessions[i].Node = m.ID
		}
	}
	return body.Sessions, nil
}

// dedupeSessions keeps one entry per id. Two members may both list a
// session for a moment while it moves (the old owner's stopped copy): the
// entry that is not STOPPED wins, else the first.
func dedupeSessions(list []Session) []Session {
	seen := make(map[string]int, len(list))
	out := list[:0:0]
	for _, x := range list {
		i, ok := seen[x.ID]
		if !ok {
			seen[x.ID] = len(out)
			out = append(out, x)
			continue
		}
		if out[i].Status == "STOPPED" && x.Status != "STOPPED" {
			out[i] = x
		}
	}
	return out
}

// clusterBody is GET /api/cluster.
type clusterBody struct {
	Self    string          `json:"self"`
	Members []ClusterMember `json:"members"`
}

func (s *Server) clusterInfo(w http.ResponseWriter, r *http.Request) {
	if s.cluster == nil {
		writeError(w, http.StatusNotFound, "not_a_cluster", "not a cluster: start serve with --join to run this server as a cluster member")
		return
	}
	members := s.cluster.r.Members(r.Context())
	if members == nil {
		members = []ClusterMember{}
	}
	writeJSON(w, http.StatusOK, clusterBody{Self: s.cluster.r.Self().ID, Members: members})
}

// drainNode moves a member's sessions to the others (corral node drain).
func (s *Server) drainNode(w http.ResponseWriter, r *http.Request) {
	if s.cluster == nil {
		writeError(w, http.StatusNotFound, "not_a_cluster", "not a cluster: start serve with --join to run this server as a cluster member")
		return
	}
	node := r.PathValue("node")
	if err := s.cluster.r.Drain(r.Context(), node); err != nil {
		s.engineError(w, r, "drain node "+strconv.Quote(node), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": node, "drained": true})
}

// closeCluster drops the forwarding transport's idle connections.
func (s *Server) closeCluster() {
	if s.cluster != nil {
		s.cluster.transport.CloseIdleConnections()
	}
}
