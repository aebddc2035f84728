package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestTypedMethodsShowUpInTheExposition(t *testing.T) {
	r := New()
	r.ObserveAction("run", "local", OutcomeOK, 3*time.Millisecond)
	r.ObserveAction("run", "local", OutcomeError, 5*time.Millisecond)
	r.SessionStateChanged("local", "", "STARTING")
	r.SessionStateChanged("local", "STARTING", "RUNNING")
	r.RuntimeStarted("local", 40*time.Millisecond)
	r.RuntimeStartFailed("docker")
	r.RuntimeRestarted("docker")
	r.ObserveAppend(3, time.Millisecond)
	r.WebSocketOpened()
	r.WebSocketOpened()
	r.WebSocketClosed()
	r.WebSocketFellBehind()
	r.SetAdmissionQueueLength(7)
	r.ObserveHTTP("GET /api/sessions", 200, time.Millisecond)

	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"ok run actions", value(r.actions.WithLabelValues("run", OutcomeOK)), 1},
		{"failed run actions", value(r.actions.WithLabelValues("run", OutcomeError)), 1},
		{"running local sessions", value(r.sessions.WithLabelValues("RUNNING", "local")), 1},
		{"starting local sessions", value(r.sessions.WithLabelValues("STARTING", "local")), 0},
		{"local starts", value(r.runtimeStarts.WithLabelValues("local")), 1},
		{"docker start failures", value(r.runtimeFailures.WithLabelValues("docker")), 1},
		{"docker restarts", value(r.runtimeRestarts.WithLabelValues("docker")), 1},
		{"events appended", value(r.eventsAppended), 3},
		{"websocket clients", value(r.wsClients), 1},
		{"websocket fell behind", value(r.wsFellBehind), 1},
		{"websocket clients accessor", float64(r.WebSocketClients()), 1},
		{"websocket fell behind accessor", float64(r.WebSocketFellBehindTotal()), 1},
		{"admission queue", value(r.admissionQueue), 7},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`corral_action_duration_seconds_count{backend="local",type="run"} 2`,
		`corral_runtime_start_duration_seconds_count{backend="local"} 1`,
		`corral_http_requests_total{code="200",route="GET /api/sessions"} 1`,
		"go_goroutines", "process_", "corral_event_append_duration_seconds_count 1",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

func TestRegistriesAreIndependent(t *testing.T) {
	a, b := New(), New()
	a.ObserveAction("read", "docker", OutcomeOK, time.Millisecond)
	if got := value(b.actions.WithLabelValues("read", OutcomeOK)); got != 0 {
		t.Fatalf("second registry saw the first one's action: %v", got)
	}
}

func TestNilRegistryIsANoOp(t *testing.T) {
	var r *Registry
	r.ObserveAction("run", "local", OutcomeOK, time.Millisecond)
	r.SetSessions("RUNNING", "local", 1)
	r.SessionStateChanged("local", "", "RUNNING")
	r.RuntimeStarted("local", time.Second)
	r.RuntimeStartFailed("local")
	r.RuntimeRestarted("local")
	r.ObserveAppend(1, time.Millisecond)
	r.WebSocketOpened()
	r.WebSocketClosed()
	r.WebSocketFellBehind()
	r.SetAdmissionQueueLength(1)
	r.ObserveHTTP("x", 200, time.Millisecond)
	if s := r.Summary(); s != (Summary{}) {
		t.Fatalf("nil registry summary = %+v, want zero", s)
	}
}

func TestSummaryPercentilesAndRate(t *testing.T) {
	tests := []struct {
		name          string
		samples       []time.Duration
		ages          []time.Duration
		wantP50       float64
		wantP99       float64
		wantN         int
		wantRateAbove float64
	}{
		{"no actions gives zeros", nil, nil, 0, 0, 0, -1},
		{"hundred samples 1..100ms", seq(100), repeat(100, 2*time.Second), 50, 99, 100, 49},
		{"samples older than the latency window are ignored", []time.Duration{time.Millisecond, time.Second},
			[]time.Duration{time.Second, 2 * time.Minute}, 1, 1, 1, 0.09},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New()
			now := time.Now()
			for i, d := range tt.samples {
				r.window.add(now.Add(-tt.ages[i]), d)
			}
			s := r.summaryAt(now)
			if s.P50Ms != tt.wantP50 || s.P99Ms != tt.wantP99 || s.Actions != tt.wantN {
				t.Fatalf("summary = %+v, want p50 %v p99 %v n %d", s, tt.wantP50, tt.wantP99, tt.wantN)
			}
			if tt.wantRateAbove < 0 && s.ActionsPerSecond != 0 || tt.wantRateAbove >= 0 && s.ActionsPerSecond <= tt.wantRateAbove {
				t.Fatalf("rate = %v, want > %v", s.ActionsPerSecond, tt.wantRateAbove)
			}
		})
	}
}

func TestSummaryWindowKeepsOnlyTheNewestSamples(t *testing.T) {
	r := New()
	for i := 0; i < windowSize+10; i++ {
		r.ObserveAction("run", "local", OutcomeOK, time.Duration(i)*time.Microsecond)
	}
	if s := r.Summary(); s.Actions != windowSize {
		t.Fatalf("summary has %d samples, want the window's %d", s.Actions, windowSize)
	}
}

func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// value reads a counter's or gauge's current value.
func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	m := <-ch
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		panic(err)
	}
	if pb.Counter != nil {
		return pb.Counter.GetValue()
	}
	return pb.Gauge.GetValue()
}

func TestClusterMetricsAreExposedUnderTheirNames(t *testing.T) {
	r := New()
	r.SetClusterMembers(3)
	r.SetClusterSessions("n1", 4)
	r.RoutedRequest("n2")
	r.Failover("member_dead")
	r.SetReplication(7, 1)
	var nilReg *Registry
	nilReg.RoutedRequest("n2") // a nil registry is a no-op
	mfs, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"corral_cluster_members": 3, "corral_cluster_sessions": 4, "corral_cluster_routed_requests_total": 1,
		"corral_cluster_failovers_total": 1, "corral_cluster_replication_lag": 7, "corral_cluster_replicas_offline": 1,
	}
	for _, mf := range mfs {
		v, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		m := mf.GetMetric()[0]
		got := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		if got != v {
			t.Errorf("%s = %v, want %v", mf.GetName(), got, v)
		}
		delete(want, mf.GetName())
	}
	if len(want) != 0 {
		t.Errorf("not exposed: %v", want)
	}
}
