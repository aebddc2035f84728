package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"corral/runtimes/kubernetes"
)

// k8sEnvFile is where `make k8s-up` writes the cluster's env file.
const k8sEnvFile = "/var/tmp/corral-k8s/env"

// kubeCluster is the cluster the Kubernetes tests of corral's commands use.
type kubeCluster struct {
	kubeconfig string
	client     k8s.Interface
}

// needKubeCluster finds the test cluster as the kubernetes package's tests
// do (the env file named by CORRAL_K8S_ENV, then make k8s-up's, then
// $KUBECONFIG) and checks the API server answers. Without one the test
// skips, saying how to get one, unless CORRAL_REQUIRE_K8S=1 (CI), where it
// fails.
func needKubeCluster(t *testing.T) kubeCluster {
	t.Helper()
	unavailable := func(format string, args ...any) kubeCluster {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CORRAL_REQUIRE_K8S") == "1" {
			t.Fatalf("Kubernetes cluster required (CORRAL_REQUIRE_K8S=1): %s", msg)
		}
		t.Skipf("no Kubernetes cluster: %s; run `make k8s-up` (or set CORRAL_K8S_ENV or KUBECONFIG), and CORRAL_REQUIRE_K8S=1 to make this a failure", msg)
		return kubeCluster{}
	}
	kc, from := "", ""
	for _, f := range []string{os.Getenv("CORRAL_K8S_ENV"), k8sEnvFile} {
		if kc == "" && f != "" {
			kc, from = envFileValue(f, "KUBECONFIG"), "env file "+f
		}
	}
	if kc == "" {
		kc, from = os.Getenv("KUBECONFIG"), "$KUBECONFIG"
	}
	if kc == "" {
		return unavailable("no env file (%s) and no $KUBECONFIG", k8sEnvFile)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return unavailable("kubeconfig %s (from %s): %v", kc, from, err)
	}
	rc.Timeout = 10 * time.Second
	client, err := k8s.NewForConfig(rc)
	if err != nil {
		return unavailable("client for %s: %v", kc, err)
	}
	if _, err := client.Discovery().ServerVersion(); err != nil {
		return unavailable("the API server of %s (from %s) does not answer: %v", kc, from, err)
	}
	return kubeCluster{kubeconfig: kc, client: client}
}

// envFileValue reads KEY=VALUE from an env file ("" when absent).
func envFileValue(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), key+"="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// config writes a corral config for this cluster whose pods carry a
// corral.node of their own, so the test can find them (and only them).
func (kc kubeCluster) config(t *testing.T, node, extra string) string {
	t.Helper()
	return writeServeConfig(t, fmt.Sprintf(`
[engine]
skip_git_config = true
[events]
store_dir = %q
[runtime.kubernetes]
kubeconfig = %q
node_id = %q
%s`, t.TempDir(), kc.kubeconfig, node, extra))
}

// waitNoPods waits (on a watch, up to a deadline) until no pod labelled
// corral.node=node is left in namespace.
func (kc kubeCluster) waitNoPods(t *testing.T, namespace, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sel := metav1.ListOptions{LabelSelector: kubernetes.LabelNode + "=" + node}
	for {
		list, err := kc.client.CoreV1().Pods(namespace).List(ctx, sel)
		if err != nil {
			t.Fatalf("list the test's pods: %v", err)
		}
		if len(list.Items) == 0 {
			return
		}
		opts := sel
		opts.ResourceVersion = list.ResourceVersion
		w, err := kc.client.CoreV1().Pods(namespace).Watch(ctx, opts)
		if err != nil {
			t.Fatalf("watch the test's pods: %v", err)
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted || ev.Type == watch.Error {
				break // list again
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			t.Fatalf("pods of node %s still exist %v after the command ended: %d left", node, 90*time.Second, len(list.Items))
		}
	}
}

func testNode() string {
	return fmt.Sprintf("corral-cmd-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
}

// TestExecOnKubernetes runs `corral exec --runtime kubernetes --image
// corral-sandbox:minimal` as the README shows: the command's observation
// comes from a pod, and no pod is left afterwards.
func TestExecOnKubernetes(t *testing.T) {
	kc := needKubeCluster(t)
	node := testNode()
	cfg := kc.config(t, node, "")
	in := `{"action":"run","args":{"command":"echo hi from $(hostname)"}}
{"action":"write","args":{"path":"/workspace/a.txt","content":"written in a pod"}}
{"action":"run","args":{"command":"cat /workspace/a.txt; (exit 3)"}}
`
	code, stdout, stderr := runCLI(t, in, "exec", "--runtime", "kubernetes", "--image", "corral-sandbox:minimal", "--config", cfg)
	if code != exitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	var runs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("output line is not JSON: %q", line)
		}
		if ev["observation"] == "run" {
			runs = append(runs, ev)
		}
	}
	if len(runs) != 2 {
		t.Fatalf("%d run observations, want 2:\n%s", len(runs), stdout)
	}
	if c := runs[0]["content"].(string); !strings.HasPrefix(c, "hi from corral-") {
		t.Errorf("first command printed %q, want \"hi from\" a pod named corral-...", c)
	}
	if c := runs[1]["content"].(string); !strings.Contains(c, "written in a pod") || !strings.Contains(stdout, `"exit_code":3`) {
		t.Errorf("second command: %q, want the written file and exit code 3:\n%s", c, stdout)
	}
	kc.waitNoPods(t, kubernetes.DefaultNamespace, node)
}

// TestExecOnKubernetesBadInput: what a user gets wrong is reported with
// exit 3 (the sandbox did not start) and a message saying what to fix.
func TestExecOnKubernetesBadInput(t *testing.T) {
	kc := needKubeCluster(t)
	node := testNode()
	tests := []struct {
		name  string
		extra string
		args  []string
		want  []string
	}{
		{"namespace that does not exist", "namespace = \"corral-no-such-ns\"\n", nil, []string{`namespace "corral-no-such-ns" does not exist`}},
		{"image the node does not have", "image_pull_policy = \"Never\"\n", []string{"--image", "corral-no-such-image:1"}, []string{"corral-no-such-image:1"}},
		{"bad value names its key", "connect = \"telnet\"\n", nil, []string{`[runtime.kubernetes]: connect = "telnet"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"exec", "--runtime", "kubernetes", "--config", kc.config(t, node, tc.extra)}, tc.args...)
			code, _, stderr := runCLI(t, `{"action":"run","args":{"command":"true"}}`+"\n", args...)
			wantCode := exitNoSandbox
			if strings.HasPrefix(tc.name, "bad value") {
				wantCode = exitUsage
			}
			if code != wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, wantCode, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
		})
	}
	kc.waitNoPods(t, kubernetes.DefaultNamespace, node)
}

// TestRuntimeAPIStartsKubernetesPods: with only kubernetes enabled, the
// Runtime API's /start runs OpenHands' image as a pod, its
// action-execution API answers through the proxy, /image_exists knows the
// node's images, /pause is refused (501) and /stop removes the pod.
func TestRuntimeAPIStartsKubernetesPods(t *testing.T) {
	kc := needKubeCluster(t)
	node := testNode()
	cfg := kc.config(t, node, "image_pull_policy = \"Never\"\n[runtime]\nenabled = [\"kubernetes\"]\n[server]\nlisten = \"127.0.0.1:0\"\n[runtime_api]\napi_key = \"k8s-runtime-api-key\"\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- runServe(ctx, []string{"--config", cfg}, &stdout, &stderr) }()
	base := waitServeURL(t, &stdout, &stderr, done)
	post := func(path string, hdr map[string]string, body any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", path, bytes.NewReader(b))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	ctl := map[string]string{"X-API-Key": "k8s-runtime-api-key"}
	for img, want := range map[string]bool{"corral-sandbox:minimal": true, "corral-no-such-image:1": false} {
		req, _ := http.NewRequest("GET", base+"runtime-api/image_exists?image="+img, nil)
		req.Header.Set("X-API-Key", "k8s-runtime-api-key")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		res.Body.Close()
		if m["exists"] != want {
			t.Errorf("/image_exists?image=%s = %v, want exists %v", img, m, want)
		}
	}
	code, started := post(base+"runtime-api/start", ctl, map[string]any{"image": "corral-sandbox:minimal", "session_id": "oh-k8s"})
	if code != 200 {
		t.Fatalf("/start = %d %v; stderr:\n%s", code, started, stderr.String())
	}
	sandbox, _ := started["url"].(string)
	key, _ := started["session_api_key"].(string)
	action := map[string]any{"action": map[string]any{"action": "run", "args": map[string]any{"command": "cat /etc/hostname", "blocking": true}, "timeout": 30}}
	code, obs := post(sandbox+"/execute_action", map[string]string{"X-Session-API-Key": key}, action)
	if code != 200 || !strings.HasPrefix(fmt.Sprint(obs["content"]), "corral-") {
		t.Fatalf("execute_action through the proxy = %d %v; want the pod's hostname", code, obs)
	}
	// A pod cannot be frozen: /pause is refused (501) and the sandbox runs on.
	rid := map[string]string{"runtime_id": started["runtime_id"].(string)}
	if code, m := post(base+"runtime-api/pause", ctl, rid); code != http.StatusNotImplemented || !strings.Contains(fmt.Sprint(m), "cannot pause") {
		t.Errorf("/pause = %d %v, want 501 saying the runtime cannot pause", code, m)
	}
	if code, obs := post(sandbox+"/execute_action", map[string]string{"X-Session-API-Key": key}, action); code != 200 || !strings.HasPrefix(fmt.Sprint(obs["content"]), "corral-") {
		t.Fatalf("execute_action after the refused pause = %d %v", code, obs)
	}
	if code, m := post(base+"runtime-api/stop", ctl, map[string]string{"runtime_id": started["runtime_id"].(string)}); code != 200 {
		t.Errorf("/stop = %d %v", code, m)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("serve did not shut down within 2 minutes of being cancelled")
	}
	kc.waitNoPods(t, kubernetes.DefaultNamespace, node)
}
