package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Outcome labels for ObserveAction.
const (
	OutcomeOK       = "ok"       // the observation is not an error
	OutcomeError    = "error"    // an error observation (including a failed command start)
	OutcomeTimeout  = "timeout"  // the action hit its timeout
	OutcomeRejected = "rejected" // the user rejected it at the confirmation gate
)

// latencyBuckets spans 100µs (an echo on a warm local session) to 10 min (a
// long build): actions vary over seven orders of magnitude.
var latencyBuckets = prometheus.ExponentialBucketsRange(0.0001, 600, 24)

// startBuckets spans sandbox starts: 10ms (local) to 5 min (a cold image).
var startBuckets = prometheus.ExponentialBucketsRange(0.01, 300, 16)

// appendBuckets spans event appends: 10µs (no fsync) to 1s (a slow disk).
var appendBuckets = prometheus.ExponentialBucketsRange(0.00001, 1, 16)

// Registry holds Corral's collectors. Create it with New.
type Registry struct {
	reg *prometheus.Registry

	sessions        *prometheus.GaugeVec
	actions         *prometheus.CounterVec
	actionLatency   *prometheus.HistogramVec
	runtimeStarts   *prometheus.CounterVec
	runtimeRestarts *prometheus.CounterVec
	runtimeFailures *prometheus.CounterVec
	startLatency    *prometheus.HistogramVec
	eventsAppended  prometheus.Counter
	appendLatency   prometheus.Histogram
	wsClients       prometheus.Gauge
	wsFellBehind    prometheus.Counter
	admissionQueue  prometheus.Gauge
	httpRequests    *prometheus.CounterVec
	httpLatency     *prometheus.HistogramVec

	cluster clusterCollectors

	window *window
}

// New returns a Registry with every Corral collector plus the Go runtime and
// process collectors registered on a fresh prometheus.Registry.
func New() *Registry {
	r := &Registry{
		reg: prometheus.NewRegistry(),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "corral_sessions", Help: "Sessions by state (QUEUED, STARTING, RUNNING, PAUSED, STOPPING, STOPPED, ERROR) and backend.",
		}, []string{"status", "backend"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corral_actions_total", Help: "Actions answered, by action type and outcome (ok, error, timeout, rejected).",
		}, []string{"type", "outcome"}),
		actionLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "corral_action_duration_seconds", Help: "Time from an action being stored to its observation being stored, by action type and backend.",
			Buckets: latencyBuckets,
		}, []string{"type", "backend"}),
		runtimeStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corral_runtime_starts_total", Help: "Sandboxes started successfully, by backend.",
		}, []string{"backend"}),
		runtimeRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corral_runtime_restarts_total", Help: "Runtime restarts after a failure (re-attach or re-provision), by backend.",
		}, []string{"backend"}),
		runtimeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corral_runtime_start_failures_total", Help: "Sandbox starts that failed, by backend.",
		}, []string{"backend"}),
		startLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "corral_runtime_start_duration_seconds", Help: "Time to start a sandbox until its agent accepts connections, by backend (successful starts).",
			Buckets: startBuckets,
		}, []string{"backend"}),
		eventsAppended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "corral_events_appended_total", Help: "Events appended to session streams (durable per the sync policy).",
		}),
		appendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "corral_event_append_duration_seconds", Help: "Time for an append to become durable and acknowledged.",
			Buckets: appendBuckets,
		}),
		wsClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "corral_websocket_clients", Help: "Open WebSocket event subscriptions.",
		}),
		wsFellBehind: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "corral_websocket_fell_behind_total", Help: "WebSocket clients closed because they fell behind the stream (they resume from the id they were told).",
		}),
		admissionQueue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "corral_admission_queue_length", Help: "Sessions waiting for admission (QUEUED).",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corral_http_requests_total", Help: "API requests by route pattern and status code.",
		}, []string{"route", "code"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "corral_http_request_duration_seconds", Help: "API request handling time by route pattern (WebSocket routes excluded).",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		cluster: newClusterCollectors(),
		window:  newWindow(windowSize),
	}
	r.reg.MustRegister(r.cluster.all()...)
	r.reg.MustRegister(
		r.sessions, r.actions, r.actionLatency, r.runtimeStarts, r.runtimeRestarts,
		r.runtimeFailures, r.startLatency, r.eventsAppended, r.appendLatency,
		r.wsClients, r.wsFellBehind, r.admissionQueue, r.httpRequests, r.httpLatency,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return r
}

// Gatherer returns the underlying registry, for tests and for registering
// extra collectors.
func (r *Registry) Gatherer() *prometheus.Registry {
	if r == nil {
		return nil
	}
	return r.reg
}

// Handler serves the registry in the Prometheus exposition format.
func (r *Registry) Handler() http.Handler {
	if r == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// SetSessions sets the number of sessions in one state on one backend. The
// engine calls it with the counts it holds, so the gauge can never drift.
func (r *Registry) SetSessions(status, backend string, n int) {
	if r == nil {
		return
	}
	r.sessions.WithLabelValues(status, backend).Set(float64(n))
}

// SessionStateChanged moves one session of backend from state from to state
// to; from == "" for a new session, to == "" for one that is gone. Use it
// instead of SetSessions when transitions are what the caller sees.
func (r *Registry) SessionStateChanged(backend, from, to string) {
	if r == nil || from == to {
		return
	}
	if from != "" {
		r.sessions.WithLabelValues(from, backend).Dec()
	}
	if to != "" {
		r.sessions.WithLabelValues(to, backend).Inc()
	}
}

// ObserveAction records one answered action: its type ("run", "read", ...),
// the session's backend, its outcome (Outcome* constants) and the time from
// the action being stored to its observation being stored.
func (r *Registry) ObserveAction(typ, backend, outcome string, d time.Duration) {
	if r == nil {
		return
	}
	r.actions.WithLabelValues(typ, outcome).Inc()
	r.actionLatency.WithLabelValues(typ, backend).Observe(d.Seconds())
	r.window.add(time.Now(), d)
}

// RuntimeStarted records a successful sandbox start that took d.
func (r *Registry) RuntimeStarted(backend string, d time.Duration) {
	if r == nil {
		return
	}
	r.runtimeStarts.WithLabelValues(backend).Inc()
	r.startLatency.WithLabelValues(backend).Observe(d.Seconds())
}

// RuntimeStartFailed records a sandbox start that failed.
func (r *Registry) RuntimeStartFailed(backend string) {
	if r == nil {
		return
	}
	r.runtimeFailures.WithLabelValues(backend).Inc()
}

// RuntimeRestarted records a runtime restart after a failure.
func (r *Registry) RuntimeRestarted(backend string) {
	if r == nil {
		return
	}
	r.runtimeRestarts.WithLabelValues(backend).Inc()
}

// ObserveAppend records n events made durable by one append (or one commit
// group) that took d.
func (r *Registry) ObserveAppend(n int, d time.Duration) {
	if r == nil {
		return
	}
	r.eventsAppended.Add(float64(n))
	r.appendLatency.Observe(d.Seconds())
}

// WebSocketOpened and WebSocketClosed track open WebSocket subscriptions.
func (r *Registry) WebSocketOpened() {
	if r != nil {
		r.wsClients.Inc()
	}
}

// WebSocketClosed: see WebSocketOpened.
func (r *Registry) WebSocketClosed() {
	if r != nil {
		r.wsClients.Dec()
	}
}

// WebSocketFellBehind records a WebSocket client found too slow for its
// stream (it is told the last id it got and closed).
func (r *Registry) WebSocketFellBehind() {
	if r != nil {
		r.wsFellBehind.Inc()
	}
}

// WebSocketClients returns the number of open WebSocket subscriptions.
func (r *Registry) WebSocketClients() int {
	if r == nil {
		return 0
	}
	return int(gaugeValue(r.wsClients))
}

// WebSocketFellBehindTotal returns how many clients fell behind so far.
func (r *Registry) WebSocketFellBehindTotal() int {
	if r == nil {
		return 0
	}
	return int(gaugeValue(r.wsFellBehind))
}

// gaugeValue reads a single-series gauge or counter.
func gaugeValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var pb dto.Metric
	if err := (<-ch).Write(&pb); err != nil {
		return 0
	}
	if pb.Counter != nil {
		return pb.Counter.GetValue()
	}
	return pb.Gauge.GetValue()
}

// SetAdmissionQueueLength sets the number of sessions waiting for admission.
func (r *Registry) SetAdmissionQueueLength(n int) {
	if r != nil {
		r.admissionQueue.Set(float64(n))
	}
}

// ObserveHTTP records one API request by its route pattern (never the raw
// path: that would make a series per session id).
func (r *Registry) ObserveHTTP(route string, code int, d time.Duration) {
	if r == nil {
		return
	}
	r.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	r.httpLatency.WithLabelValues(route).Observe(d.Seconds())
}
