package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The OpenHands Runtime API answers on every member: /start through one
// node, the sandbox's action-execution API and /sessions through another,
// /stop through a third path, whoever owns the session.
func TestClusterRuntimeAPIServesASandboxThroughEveryNode(t *testing.T) {
	const apiKey = "cluster-rt-key"
	cr := newClusterRig(t, "local", 2, "\n[runtime_api]\napi_key = \""+apiKey+"\"\n")
	cr.start()
	a, b := cr.nodes[0], cr.nodes[1]
	call := func(method, url string, hdr map[string]string, body any, want int) map[string]any {
		t.Helper()
		var rd *bytes.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		c := &http.Client{Timeout: 60 * time.Second}
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		if res.StatusCode != want {
			t.Fatalf("%s %s = %d, want %d: %v", method, url, res.StatusCode, want, m)
		}
		return m
	}
	ctl := map[string]string{"X-API-Key": apiKey}
	started := call("POST", a.base+"runtime-api/start", ctl, map[string]any{"image": "local", "session_id": "oh-cluster"}, 200)
	rid, _ := started["runtime_id"].(string)
	key, _ := started["session_api_key"].(string)
	if rid == "" || key == "" {
		t.Fatalf("/start gave no runtime_id or session_api_key: %v", started)
	}
	owner := a.ownerOf("oh-cluster")
	if owner == "" {
		t.Fatal("the started runtime's session has no owner in the cluster")
	}
	for _, nd := range []*clusterNode{a, b} {
		got := call("GET", nd.base+"runtime-api/sessions/oh-cluster", ctl, nil, 200)
		if got["runtime_id"] != rid {
			t.Fatalf("GET /sessions/oh-cluster through %s = %v, want runtime %s", nd.name, got, rid)
		}
		action := map[string]any{"action": map[string]any{"action": "run", "args": map[string]any{"command": "echo via-" + nd.name}}}
		obs := call("POST", nd.base+"runtime-api/sandbox/"+rid+"/execute_action", map[string]string{"X-Session-API-Key": key}, action, 200)
		if c, _ := obs["content"].(string); !strings.Contains(c, "via-"+nd.name) {
			t.Fatalf("execute_action through %s (owner %s) = %v", nd.name, owner, obs)
		}
	}
	call("POST", b.base+"runtime-api/stop", ctl, map[string]string{"runtime_id": rid}, 200)
}
