package kubernetes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"corral/runtimes"
)

// testEnv is the shared fixture of the package's cluster tests, set up
// once in TestMain.
type testEnv struct {
	skip       string // non-empty: no cluster and none required
	kubeconfig string
	rest       *rest.Config
	client     kubernetes.Interface
	ns         string // this run's namespace, made and removed by TestMain
	node       string // corral.node of every backend the tests make
}

var env testEnv

// defaultEnvFile is where `make k8s-up` writes the cluster's env file.
const defaultEnvFile = "/var/tmp/corral-k8s/env"

func TestMain(m *testing.M) {
	if code := setupEnv(); code != 0 {
		os.Exit(code)
	}
	code := m.Run()
	if env.skip == "" {
		if err := leftoverPods(); err != nil {
			fmt.Fprintf(os.Stderr, "leak check: %v\n", err)
			code = 1
		}
		if err := removeNamespace(env.ns); err != nil {
			fmt.Fprintf(os.Stderr, "remove test namespace: %v\n", err)
			code = 1
		}
	}
	if env.client != nil {
		closeIdle(env.client)
	}
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// findKubeconfig follows the documented order: the env file named by
// CORRAL_K8S_ENV (else make k8s-up's), then KUBECONFIG.
func findKubeconfig() (path, from string) {
	f := os.Getenv("CORRAL_K8S_ENV")
	if f == "" {
		f = defaultEnvFile
	}
	if kc := readEnvFile(f)["KUBECONFIG"]; kc != "" {
		return kc, "env file " + f
	}
	if kc := os.Getenv("KUBECONFIG"); kc != "" {
		return kc, "$KUBECONFIG"
	}
	return "", ""
}

func readEnvFile(path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			out[k] = v
		}
	}
	return out
}

func setupEnv() int {
	fail := func(format string, args ...any) int {
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CORRAL_REQUIRE_K8S") == "1" {
			fmt.Fprintf(os.Stderr, "Kubernetes cluster required (CORRAL_REQUIRE_K8S=1): %s\n", msg)
			return 1
		}
		env.skip = msg + "; run `make k8s-up` (or set CORRAL_K8S_ENV or KUBECONFIG), and CORRAL_REQUIRE_K8S=1 to make this a failure"
		return 0
	}
	kc, from := findKubeconfig()
	if kc == "" {
		return fail("no cluster: neither the env file ($CORRAL_K8S_ENV, default %s) nor $KUBECONFIG names a kubeconfig", defaultEnvFile)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return fail("kubeconfig %s (from %s): %v", kc, from, err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fail("client for %s: %v", rc.Host, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := nodeReady(ctx, client); err != nil {
		return fail("cluster at %s (kubeconfig %s from %s): %v", rc.Host, kc, from, err)
	}
	env.kubeconfig, env.rest, env.client = kc, rc, client
	env.node = fmt.Sprintf("corraltest-%d-%s", os.Getpid(), randHex(3))
	env.ns = "corral-test-" + randHex(4)
	if err := makeNamespace(ctx, env.ns); err != nil {
		fmt.Fprintf(os.Stderr, "make test namespace: %v\n", err)
		return 1
	}
	return 0
}

func nodeReady(ctx context.Context, c kubernetes.Interface) error {
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, n := range nodes.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
	}
	return fmt.Errorf("no Ready node among %d", len(nodes.Items))
}

// makeNamespace creates ns with the ServiceAccount "default" pods need
// (no controller-manager makes it on the test cluster).
func makeNamespace(ctx context.Context, ns string) error {
	_, err := env.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"corral.test": "true"}}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	_, err = env.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	return err
}

// removeNamespace deletes ns and what is in it. Without a
// controller-manager nothing empties a terminating namespace, so the test
// deletes its pods, claims, quotas and service accounts itself and then
// clears the namespace's finalizer.
func removeNamespace(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := env.client.CoreV1()
	zero := int64(0)
	all := metav1.ListOptions{}
	// Claims keep the pvc-protection finalizer that no controller removes.
	if pvcs, err := c.PersistentVolumeClaims(ns).List(ctx, all); err == nil {
		for _, pvc := range pvcs.Items {
			pvc.Finalizers = nil
			c.PersistentVolumeClaims(ns).Update(ctx, &pvc, metav1.UpdateOptions{})
		}
	}
	errs := []error{
		c.Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, all),
		c.PersistentVolumeClaims(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, all),
		c.ResourceQuotas(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, all),
		c.ServiceAccounts(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, all),
		c.Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}),
	}
	nsObj, err := c.Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		nsObj.Spec.Finalizers = nil
		_, err = c.Namespaces().Finalize(ctx, nsObj, metav1.UpdateOptions{})
	}
	errs = append(errs, ignoreNotFound(err))
	return errors.Join(errs...)
}

// leftoverPods fails when any pod of this run (by node label prefix) is
// still there: every test must delete what it started.
func leftoverPods() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := env.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: LabelManaged + "=true"})
	if err != nil {
		return err
	}
	var left []string
	for _, p := range list.Items {
		if strings.HasPrefix(p.Labels[LabelNode], env.node) {
			left = append(left, p.Namespace+"/"+p.Name)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("%d corral pods left behind: %v", len(left), left)
	}
	return nil
}

func needCluster(t testing.TB) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testConfig is the configuration of the tests' backends.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Kubeconfig = env.kubeconfig
	cfg.Namespace = env.ns
	cfg.NodeID = env.node
	cfg.StartTimeout = runtimes.Duration(2 * time.Minute)
	cfg.DeleteGracePeriod = runtimes.Duration(2 * time.Second)
	return cfg
}

// newBackend makes a Backend for a test, closed at its end; mutate edits
// the config first.
func newBackend(t testing.TB, mutate func(*Config), opts ...Option) *Backend {
	t.Helper()
	needCluster(t)
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := New(testCtx(t, time.Minute), cfg, opts...)
	if err != nil {
		t.Fatalf("kubernetes.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// start starts a sandbox (session id from the test's name when spec has
// none) and destroys it at the end of the test.
func start(t testing.TB, b *Backend, spec runtimes.Spec) *runtimes.Handle {
	t.Helper()
	if spec.SessionID == "" {
		spec.SessionID = t.Name()
	}
	h, err := b.Start(testCtx(t, 3*time.Minute), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Destroy(context.Background(), h); err != nil {
			t.Errorf("Destroy %s: %v", h.ID, err)
		}
	})
	return h
}

// podGone reports whether the pod of h no longer exists.
func podGone(t testing.TB, ns, name string) bool {
	t.Helper()
	_, err := env.client.CoreV1().Pods(ns).Get(testCtx(t, 10*time.Second), name, metav1.GetOptions{})
	return apierrors.IsNotFound(err)
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
