package kubernetes

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"corral/runtimes"
	"corral/runtimes/local"
)

// Speed is measured here, never asserted: each benchmark measures its
// baseline in the same run, interleaved with what it compares, and
// reports both with their ratio.

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkStartToReady: Backend.Start until the agent answers, against
// the pod `kubectl run --restart=Never` makes of the same image (one
// container, no init container, no agent), created with client-go until
// it is Running.
func BenchmarkStartToReady(b *testing.B) {
	be := connBackend(b, ConnectPortForward, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var starts, plain []time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		h, err := be.Start(ctx, runtimes.Spec{SessionID: fmt.Sprintf("bench-start-%d", i)})
		if err != nil {
			b.Fatalf("Start: %v", err)
		}
		starts = append(starts, time.Since(t0))
		if err := be.Destroy(ctx, h); err != nil {
			b.Fatalf("Destroy: %v", err)
		}
		plain = append(plain, plainPodToRunning(b, ctx, be, i))
	}
	b.StopTimer()
	st, base := median(starts), median(plain)
	b.ReportMetric(ms(st), "start-to-ready-p50-ms")
	b.ReportMetric(ms(base), "plain-pod-running-p50-ms")
	b.ReportMetric(float64(st)/float64(base), "ready/plain")
}

// plainPodToRunning creates the baseline pod, returns how long it took to
// be Running (seen on a watch), and deletes it.
func plainPodToRunning(b *testing.B, ctx context.Context, be *Backend, i int) time.Duration {
	b.Helper()
	pods := be.client.CoreV1().Pods(be.cfg.Namespace)
	name := fmt.Sprintf("bench-plain-%d-%s", i, randHex(3))
	zero := int64(0)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"run": name}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr(false), // as Corral's pods: no token controller here
			TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{
				Name: name, Image: be.cfg.Image, Command: []string{"sleep", "infinity"},
				ImagePullPolicy: corev1.PullPolicy(be.cfg.ImagePullPolicy),
			}},
		},
	}
	t0 := time.Now()
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		b.Fatalf("create the baseline pod: %v", err)
	}
	defer func() {
		if err := pods.Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			b.Errorf("delete the baseline pod %s: %v", name, err)
		}
	}()
	w, err := pods.Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
		ResourceVersion: created.ResourceVersion,
	})
	if err != nil {
		b.Fatalf("watch the baseline pod: %v", err)
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok || ev.Type == watch.Deleted {
			b.Fatalf("baseline pod %s: watch event %s %T", name, ev.Type, ev.Object)
		}
		switch p.Status.Phase {
		case corev1.PodRunning:
			return time.Since(t0)
		case corev1.PodFailed, corev1.PodSucceeded:
			b.Fatalf("baseline pod %s ended: %s %s", name, p.Status.Phase, p.Status.Message)
		}
	}
	b.Fatalf("baseline pod %s: watch ended before Running (%v)", name, ctx.Err())
	return 0
}

// BenchmarkActionRoundTrip: `echo` through Connect over the API server's
// port-forward and at the pod IP, against agentwire to a corral-agent of
// the local backend on this host, interleaved one call each.
func BenchmarkActionRoundTrip(b *testing.B) {
	for _, mode := range []string{ConnectPortForward, ConnectPodIP} {
		b.Run(mode, func(b *testing.B) {
			be := connBackend(b, mode, nil)
			h := connStart(b, be, "bench-rt-"+mode)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			kc, err := be.Connect(ctx, h)
			if err != nil {
				b.Fatalf("Connect: %v", err)
			}
			defer kc.Close()
			lc := localAgent(b, ctx)
			echo(b, kc) // warm both
			echo(b, lc)
			var kube, loc []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				echo(b, kc)
				kube = append(kube, time.Since(t0))
				t0 = time.Now()
				echo(b, lc)
				loc = append(loc, time.Since(t0))
			}
			b.StopTimer()
			k, l := median(kube), median(loc)
			b.ReportMetric(ms(k), "echo-p50-ms")
			b.ReportMetric(ms(l), "local-echo-p50-ms")
			b.ReportMetric(float64(k)/float64(l), "echo/local")
		})
	}
}

func echo(b *testing.B, c runtimes.AgentConn) {
	b.Helper()
	if got := runCmd(b, c, "echo hi"); !strings.HasPrefix(got, "hi") {
		b.Fatalf("echo hi: %q", got)
	}
}

// localAgent starts a sandbox of the local backend (a corral-agent built
// from this tree, on this host) and connects to it.
func localAgent(b *testing.B, ctx context.Context) runtimes.AgentConn {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "corral-agent")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/corral-agent").CombinedOutput(); err != nil {
		b.Fatalf("build corral-agent: %v\n%s", err, out)
	}
	lb, err := local.New(local.WithAgentBinary(bin), local.WithTempDir(b.TempDir()), local.WithStateDir(b.TempDir()), local.WithEnv("HOME="+b.TempDir()))
	if err != nil {
		b.Fatalf("local backend: %v", err)
	}
	b.Cleanup(func() { lb.Close() })
	h, err := lb.Start(ctx, runtimes.Spec{SessionID: "bench-local"})
	if err != nil {
		b.Fatalf("local Start: %v", err)
	}
	b.Cleanup(func() { _ = lb.Destroy(context.Background(), h) })
	c, err := lb.Connect(ctx, h)
	if err != nil {
		b.Fatalf("local Connect: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}
