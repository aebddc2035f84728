package kubernetes

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"corral/runtimes"
)

// wantErr fails unless err mentions every part.
func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one mentioning %q", what, parts)
	}
	t.Logf("%s: %v", what, err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not mention %q", what, err, p)
		}
	}
}

// Bad settings that need no cluster: New refuses them at once.
func TestNewRefusesAClusterItCannotUse(t *testing.T) {
	t.Run("no kubeconfig", func(t *testing.T) {
		t.Setenv("KUBECONFIG", "")
		t.Setenv("HOME", t.TempDir())
		cfg := DefaultConfig()
		_, err := New(testCtx(t, 30*time.Second), cfg)
		wantErr(t, "New without a kubeconfig", err, "kubeconfig", "make k8s-up")
	})
	t.Run("a kubeconfig file that does not exist", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Kubeconfig = filepath.Join(t.TempDir(), "missing.yaml")
		_, err := New(testCtx(t, 30*time.Second), cfg)
		wantErr(t, "New with a missing kubeconfig", err, "missing.yaml")
	})
	t.Run("an unreachable API server", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		_, err := New(ctx, DefaultConfig(), WithRESTConfig(&rest.Config{Host: "https://127.0.0.1:1"}))
		wantErr(t, "New against 127.0.0.1:1", err, "cannot reach the Kubernetes API server", "127.0.0.1:1")
		if ctx.Err() != nil {
			t.Errorf("New did not give up before the test's deadline: %v", err)
		}
	})
}

func TestNewRefusesAMissingNamespace(t *testing.T) {
	needCluster(t)
	cfg := testConfig()
	cfg.Namespace = "corral-missing-" + randHex(3)
	_, err := New(testCtx(t, time.Minute), cfg)
	wantErr(t, "New with a missing namespace", err, cfg.Namespace, "does not exist", "kubectl create namespace")
}

func TestNewNamesTheVerbAndResourceRBACForbids(t *testing.T) {
	needCluster(t)
	rc := rest.CopyConfig(env.rest)
	rc.Impersonate = rest.ImpersonationConfig{UserName: "corral-test-nobody"}
	_, err := New(testCtx(t, time.Minute), testConfig(), WithRESTConfig(rc))
	wantErr(t, "New as a user without roles", err, "RBAC", "create pods", "delete pods", "watch pods", env.ns)
}

// Starts that cannot succeed fail with the cluster's reason and leave no
// pod behind.
func TestStartFailsClearlyAndLeavesNoPod(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(*Config)
		spec  runtimes.Spec
		parts []string
	}{
		{"an image missing from the node", func(c *Config) { c.ImagePullPolicy = "Never" },
			runtimes.Spec{Image: "corral-missing:never"}, []string{`"corral-missing:never"`, "ErrImageNeverPull", "make k8s-up", "image_pull_policy"}},
		{"a pod that never schedules", func(c *Config) {
			c.NodeSelector = map[string]string{"corral.test/nothing": "matches"}
			c.StartTimeout = runtimes.Duration(5 * time.Second)
		}, runtimes.Spec{}, []string{"start_timeout", "scheduler", "node(s) didn't match"}},
		{"an agent image without the agent", func(c *Config) { c.AgentImage = DefaultImage },
			runtimes.Spec{}, []string{"corral-agent-install", "exit code"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, tt.cfg)
			tt.spec.SessionID = "fault"
			h, err := b.Start(testCtx(t, 2*time.Minute), tt.spec)
			if err == nil {
				b.Destroy(context.Background(), h)
			}
			wantErr(t, "Start", err, tt.parts...)
			assertNoPods(t, b)
		})
	}
}

func TestStartHonoursTheCallersContext(t *testing.T) {
	b := newBackend(t, func(c *Config) { c.NodeSelector = map[string]string{"corral.test/nothing": "matches"} })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the pod exists, as a caller giving up would.
		w, err := env.client.CoreV1().Pods(env.ns).Watch(ctx, metav1.ListOptions{LabelSelector: LabelNode + "=" + labelValue(env.node)})
		if err != nil {
			cancel()
			return
		}
		defer w.Stop()
		<-w.ResultChan()
		cancel()
	}()
	_, err := b.Start(ctx, runtimes.Spec{SessionID: "cancelled"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled context: %v, want context.Canceled", err)
	}
	assertNoPods(t, b)
}

func TestQuotaExceededNamesTheNamespaceAndQuota(t *testing.T) {
	needCluster(t)
	ns := "corral-quota-" + randHex(3)
	ctx := testCtx(t, 2*time.Minute)
	if err := makeNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeNamespace(ns); err != nil {
			t.Errorf("remove namespace %s: %v", ns, err)
		}
	})
	zero := corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}
	q, err := env.client.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "no-pods"}, Spec: corev1.ResourceQuotaSpec{Hard: zero},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No controller-manager fills in the quota's status on this cluster;
	// admission needs it.
	q.Status = corev1.ResourceQuotaStatus{Hard: zero, Used: zero}
	if _, err := env.client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, func(c *Config) { c.Namespace = ns })
	_, err = b.Start(ctx, runtimes.Spec{SessionID: "quota"})
	wantErr(t, "Start in a namespace whose quota allows no pods", err, "exceeded quota", "no-pods", ns)
	assertNoPods(t, b)
}

// assertNoPods fails when b's namespace holds a pod of this run.
func assertNoPods(t *testing.T, b *Backend) {
	t.Helper()
	list, err := b.List(testCtx(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range list {
		if strings.HasPrefix(h.Meta[metaNode], labelValue(env.node)) {
			t.Errorf("pod %s is left behind", h.ID)
		}
	}
}

// The test cluster has no volume provisioner: a workspace claim stays
// unbound, the pod unschedulable, and the failed start removes the claim
// with the pod.
func TestUnboundWorkspaceClaimFailsTheStartAndIsRemoved(t *testing.T) {
	b := newBackend(t, func(c *Config) {
		c.WorkspaceSize = "1Mi"
		c.StartTimeout = runtimes.Duration(5 * time.Second)
	})
	_, err := b.Start(testCtx(t, 2*time.Minute), runtimes.Spec{SessionID: "pvc"})
	wantErr(t, "Start with an unbindable workspace claim", err, "start_timeout", "PersistentVolumeClaim")
	assertNoPods(t, b)
	pvcs, err := env.client.CoreV1().PersistentVolumeClaims(env.ns).List(testCtx(t, time.Minute), metav1.ListOptions{LabelSelector: LabelNode + "=" + labelValue(env.node)})
	if err != nil {
		t.Fatal(err)
	}
	// Deleted claims keep the pvc-protection finalizer here: no
	// controller-manager removes it. Deletion requested is what counts.
	for _, pvc := range pvcs.Items {
		if pvc.DeletionTimestamp == nil {
			t.Errorf("workspace claim %s left after the failed start", pvc.Name)
		}
	}
}
