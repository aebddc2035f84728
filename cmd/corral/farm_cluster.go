package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"corral/cmd/corral/farm"
	"corral/eventbus"
)

// clusterFarm is a farm.Engine whose sessions live in a running cluster:
// every request goes to one of the given API addresses, round robin, and
// to the next one when an address does not answer (its node died). The
// cluster places sessions (spreading them over members) and moves a dead
// owner's sessions to survivors; a Run that loses its node mid-action
// waits for the same action's observation through another node, so an
// action is never sent twice and a job never runs twice.
type clusterFarm struct {
	bases  []string // http://host:port
	token  string
	next   atomic.Uint64
	client *http.Client
	log    *slog.Logger
}

// newClusterFarm parses --cluster HOST:PORT[,...] (API addresses).
func newClusterFarm(list, token string, logger *slog.Logger) (*clusterFarm, error) {
	cf := &clusterFarm{token: token, client: &http.Client{}, log: logger}
	for _, a := range splitList(list) {
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		u, err := url.Parse(a)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("--cluster %q: want HOST:PORT of a cluster member's API (what corral serve --listen binds)", a)
		}
		cf.bases = append(cf.bases, strings.TrimSuffix(u.String(), "/"))
	}
	if len(cf.bases) == 0 {
		return nil, errors.New("--cluster needs at least one HOST:PORT")
	}
	return cf, nil
}

// errNoNode: no address answered (every node tried is down).
var errNoNode = errors.New("no cluster member answered")

// do sends method path with body to the members, starting with the next in
// turn, until one answers or ctx ends. A refused connection or a 503 (the
// cluster is moving the session or electing a stream leader: nothing was
// done) goes to the next member. A connection that broke after sending, or
// a 502 (a node's proxy lost the owner mid-request), may have delivered
// the request: an idempotent one goes to the next member too; any other
// returns at once with sent (the caller finds out what happened).
func (cf *clusterFarm) do(ctx context.Context, method, path string, body []byte, idempotent bool) (code int, out []byte, sent bool, err error) {
	start := cf.next.Add(1)
	for try := 0; ; try++ {
		base := cf.bases[(start+uint64(try))%uint64(len(cf.bases))]
		code, out, err := cf.once(ctx, method, base+path, body)
		if err == nil && code != http.StatusServiceUnavailable && code != http.StatusBadGateway {
			return code, out, false, nil
		}
		if ctx.Err() != nil {
			return 0, nil, false, fmt.Errorf("%s %s: %w (%w)", method, path, errNoNode, ctx.Err())
		}
		ambiguous := code == http.StatusBadGateway || err != nil && !errors.Is(err, syscall.ECONNREFUSED)
		if ambiguous && !idempotent {
			return 0, nil, true, nil
		}
		cf.log.Info("farm --cluster: a member did not answer; trying the next", "url", base, "status", code, "err", err)
		if (try+1)%len(cf.bases) == 0 {
			select { // every member failed once: wait before the next round
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// once sends one request to u.
func (cf *clusterFarm) once(ctx context.Context, method, u string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if cf.token != "" {
		req.Header.Set("Authorization", "Bearer "+cf.token)
	}
	res, err := cf.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

// StartSession creates the job's session (id chosen here, so a create
// retried on another node after a connection broke is recognised as
// done: 409) and waits until it runs.
func (cf *clusterFarm) StartSession(ctx context.Context, spec farm.SessionSpec) (farm.Session, error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	sid := fmt.Sprintf("farm-%s-%d-%s", spec.JobID, spec.Attempt, hex.EncodeToString(rnd[:]))
	if eventbus.ValidateSessionID(sid) != nil {
		sid = "farm-" + hex.EncodeToString(rnd[:])
	}
	body, _ := json.Marshal(map[string]any{"id": sid, "runtime": spec.Runtime.Backend, "image": spec.Runtime.Image, "env": spec.Runtime.Env,
		"resources": map[string]int64{"memory_bytes": spec.Runtime.MemoryMB << 20, "nano_cpus": int64(spec.Runtime.CPUs * 1e9), "pids_limit": spec.Runtime.PidsLimit}})
	// Idempotent: the id is ours, so a create that reached a node which
	// died before answering is a 409 when sent again.
	code, out, _, err := cf.do(ctx, "POST", "/api/sessions", body, true)
	switch {
	case err != nil:
		return nil, err
	case code == http.StatusConflict:
	case code == http.StatusNotImplemented:
		return nil, fmt.Errorf("job %s: %s: %w", spec.JobID, apiMessage(out), farm.ErrPermanent)
	case code != http.StatusCreated:
		return nil, fmt.Errorf("create session: HTTP %d: %s", code, apiMessage(out))
	}
	s := &clusterSession{cf: cf, sid: sid, last: -1}
	if err := s.waitRunning(ctx); err != nil {
		return nil, errors.Join(err, s.Close(context.WithoutCancel(ctx)))
	}
	return s, nil
}

// clusterSession is one job's session in the cluster.
type clusterSession struct {
	cf   *clusterFarm
	sid  string
	mu   sync.Mutex
	node string // owner when last asked
	last int64  // highest event id this session has seen
}

// Node is the member that owned the session when it was last asked.
func (s *clusterSession) Node() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.node
}

// info is GET /api/sessions/{id}: status, owner node, error.
func (s *clusterSession) info(ctx context.Context) (status, errText string, err error) {
	code, out, _, err := s.cf.do(ctx, "GET", "/api/sessions/"+url.PathEscape(s.sid), nil, true)
	if err != nil {
		return "", "", err
	}
	if code != http.StatusOK {
		return "", "", fmt.Errorf("session %s: HTTP %d: %s", s.sid, code, apiMessage(out))
	}
	var v struct{ Status, Node, Error string }
	_ = json.Unmarshal(out, &v)
	if v.Node != "" {
		s.mu.Lock()
		s.node = v.Node
		s.mu.Unlock()
	}
	return v.Status, v.Error, nil
}

func (s *clusterSession) waitRunning(ctx context.Context) error {
	for {
		st, why, err := s.info(ctx)
		switch {
		case err != nil:
			return err
		case st == "RUNNING":
			return nil
		case st == "ERROR" || st == "STOPPED":
			return fmt.Errorf("session %s is %s: %s", s.sid, st, why)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("session %s not running (%s): %w", s.sid, st, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// apiMessage is the API's error message in out, else out itself.
func apiMessage(out []byte) string {
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if json.Unmarshal(out, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return strings.TrimSpace(string(out))
}
