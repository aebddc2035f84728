package actors

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"corral/eventbus"
	"corral/metrics"
	"corral/runtimes"
	"corral/runtimes/local"
)

// metricValue returns the value of the series name{labels} in g: a
// counter's or gauge's value, a histogram's sample count; 0 when absent.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// metricSum adds up every series of name (gauges and counters).
func metricSum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// waitMetric waits until get returns want: the Manager hears of a session's
// state changes asynchronously, after the caller may have been answered.
func waitMetric(t *testing.T, what string, get func() float64, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := get()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v (waited 20s)", what, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, lp := range m.GetLabel() {
		got[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func TestMetricsCountActionsByOutcomeSessionsAndStarts(t *testing.T) {
	reg := metrics.New()
	g := reg.Gatherer()
	e := newCLIEngine(t, testConfig(), WithMetrics(reg))
	sid := startSession(t, e, SessionSpec{})
	ctx := ctxT(t)

	waitMetric(t, "running cli sessions", func() float64 {
		return metricValue(t, g, "corral_sessions", map[string]string{"status": StateRunning, "backend": "cli"})
	}, 1)
	if got := metricValue(t, g, "corral_runtime_starts_total", map[string]string{"backend": "cli"}); got != 1 {
		t.Fatalf("runtime starts = %v, want 1", got)
	}
	if got := metricValue(t, g, "corral_runtime_start_duration_seconds", map[string]string{"backend": "cli"}); got != 1 {
		t.Fatalf("runtime start durations observed = %v, want 1", got)
	}

	run := func(ev *eventbus.Event, wantType string) {
		t.Helper()
		_, obs, err := e.Run(ctx, sid, ev)
		if err != nil {
			t.Fatalf("Run %s: %v", ev.Type(), err)
		}
		if obs.Type() != wantType {
			t.Fatalf("%s answered with %s %q, want %s", ev.Type(), obs.Type(), obs.Content, wantType)
		}
	}
	run(cmd("echo hi"), "run")
	// A command that fails was still run and answered: outcome ok.
	run(cmd("sh -c 'exit 3'"), "run")
	slow := cmd("sleep 30")
	slow.SetHardTimeout(1, false)
	run(slow, "run")
	run(runAction(eventbus.SourceAgent, &eventbus.FileReadAction{Path: "/nonexistent/corral-metrics-test"}), "error")
	run(runAction(eventbus.SourceAgent, &eventbus.AgentThinkAction{Thought: "hmm"}), "think")

	pending, err := e.Submit(ctx, sid, runAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: "echo never",
		ConfirmationState: eventbus.AwaitingConfirmation, SecurityRisk: eventbus.RiskUnknown}))
	if err != nil {
		t.Fatal(err)
	}
	rid, err := e.Reject(ctx, sid, pending)
	if err != nil {
		t.Fatal(err)
	}
	if obs, err := waitObservation(ctx, e, sid, rid); err != nil || obs.Type() != "user_rejected" {
		t.Fatalf("rejected action answered with %v, %v", obs, err)
	}
	// The rejection's observation is stored before WaitObservation sees it,
	// but recorded when the session hears back: wait for that.
	waitMetric(t, "rejected run actions", func() float64 {
		return metricValue(t, g, "corral_actions_total", map[string]string{"type": "run", "outcome": metrics.OutcomeRejected})
	}, 1)

	for _, c := range []struct {
		typ, outcome string
		want         float64
	}{
		{"run", metrics.OutcomeOK, 2},
		{"run", metrics.OutcomeTimeout, 1},
		{"run", metrics.OutcomeRejected, 1},
		{"run", metrics.OutcomeError, 0},
		{"read", metrics.OutcomeError, 1},
		{"think", metrics.OutcomeOK, 1},
	} {
		if got := metricValue(t, g, "corral_actions_total", map[string]string{"type": c.typ, "outcome": c.outcome}); got != c.want {
			t.Errorf("corral_actions_total{type=%s,outcome=%s} = %v, want %v", c.typ, c.outcome, got, c.want)
		}
	}
	if got := metricValue(t, g, "corral_action_duration_seconds", map[string]string{"type": "run", "backend": "cli"}); got != 4 {
		t.Errorf("run latencies observed = %v, want 4", got)
	}
	if s := reg.Summary(); s.Actions != 6 || s.P50Ms <= 0 {
		t.Errorf("summary %+v, want 6 actions with a positive p50", s)
	}
	appendsBefore := metricValue(t, g, "corral_events_appended_total", nil)
	// Each action and its observation at least, plus the start statuses.
	if appendsBefore < 12 {
		t.Errorf("events appended = %v, want >= 12", appendsBefore)
	}
	if got := metricValue(t, g, "corral_event_append_duration_seconds", nil); got != appendsBefore {
		t.Errorf("append latencies observed = %v, want one per appended event (%v)", got, appendsBefore)
	}

	if _, err := e.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, "sessions gauge sum after Stop", func() float64 { return metricSum(t, g, "corral_sessions") }, 0)
	if got := metricValue(t, g, "corral_events_appended_total", nil); got <= appendsBefore {
		t.Errorf("events appended = %v after Stop, want more than %v (the final status)", got, appendsBefore)
	}
	if got := metricSum(t, g, "corral_runtime_start_failures_total") + metricSum(t, g, "corral_runtime_restarts_total"); got != 0 {
		t.Errorf("start failures + restarts = %v on a healthy session, want 0", got)
	}
}

func TestMetricsAdmissionQueueAndQueuedSessions(t *testing.T) {
	reg := metrics.New()
	g := reg.Gatherer()
	cfg := testConfig()
	cfg.MaxSessions = 1
	e := newCLIEngine(t, cfg, WithMetrics(reg))
	first := startSession(t, e, SessionSpec{})
	ctx := ctxT(t)

	created := make(chan error, 1)
	go func() {
		_, err := e.CreateSession(ctx, SessionSpec{ID: "queued-one"})
		created <- err
	}()
	waitFor(t, func() bool { info, err := e.Get(ctx, "queued-one"); return err == nil && info.State == StateQueued })
	if got := metricValue(t, g, "corral_admission_queue_length", nil); got != 1 {
		t.Fatalf("admission queue length = %v with one session waiting, want 1", got)
	}
	if got := metricValue(t, g, "corral_sessions", map[string]string{"status": StateQueued}); got != 1 {
		t.Fatalf("queued sessions gauge = %v, want 1", got)
	}

	if _, err := e.Stop(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := <-created; err != nil {
		t.Fatalf("queued session not admitted after the first stopped: %v", err)
	}
	if got := metricValue(t, g, "corral_admission_queue_length", nil); got != 0 {
		t.Fatalf("admission queue length = %v after admission, want 0", got)
	}
	if err := e.WaitReady(ctx, "queued-one"); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, "running sessions", func() float64 {
		return metricValue(t, g, "corral_sessions", map[string]string{"status": StateRunning})
	}, 1)
	if got := metricSum(t, g, "corral_sessions"); got != 1 {
		t.Fatalf("sessions gauge sums to %v with one running session, want 1", got)
	}
	if _, err := e.Stop(ctx, "queued-one"); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, "sessions gauge sum after every session stopped", func() float64 { return metricSum(t, g, "corral_sessions") }, 0)
	if got := metricValue(t, g, "corral_runtime_starts_total", map[string]string{"backend": "cli"}); got != 2 {
		t.Fatalf("runtime starts = %v after two sessions, want 2", got)
	}
}

func TestMetricsCountFailedStart(t *testing.T) {
	reg := metrics.New()
	g := reg.Gatherer()
	e := newWrappedCLIEngine(t, testConfig(), func(b runtimes.Backend) runtimes.Backend { return refusingBackend{b} }, WithMetrics(reg))
	ctx := ctxT(t)
	info, err := e.CreateSession(ctx, SessionSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.WaitReady(ctx, info.ID); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("WaitReady = %v, want the dial failure", err)
	}
	waitFor(t, func() bool { i, err := e.Get(ctx, info.ID); return err == nil && i.State == StateError })
	if got := metricValue(t, g, "corral_runtime_start_failures_total", map[string]string{"backend": "cli"}); got != 1 {
		t.Fatalf("start failures = %v, want 1", got)
	}
	if got := metricSum(t, g, "corral_runtime_starts_total"); got != 0 {
		t.Fatalf("successful starts = %v, want 0", got)
	}
	waitMetric(t, "sessions gauge sum after the session failed", func() float64 { return metricSum(t, g, "corral_sessions") }, 0)
}

func TestMetricsCountRuntimeRestart(t *testing.T) {
	reg := metrics.New()
	g := reg.Gatherer()
	b, err := local.New(local.WithAgentBinary(agentBin), local.WithTempDir(t.TempDir()), local.WithEnv("HOME="+t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	rreg, err := runtimes.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.DefaultRuntime = "local"
	e, err := NewEngine(cfg, rreg, WithLogger(testLogger(t)), WithHostEnv([]string{}), WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		shutdown(t, e)
		if err := b.Close(); err != nil {
			t.Errorf("closing the local backend: %v", err)
		}
	})
	sid := startSession(t, e, SessionSpec{})
	ctx := ctxT(t)
	inflight, err := e.Submit(ctx, sid, cmd("sleep 60"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the command start
	must(t, syscall.Kill(agentPID(t, e, sid), syscall.SIGKILL))
	if obs, err := waitObservation(ctx, e, sid, inflight); err != nil || obs.Type() != "error" {
		t.Fatalf("in-flight action answered with %v, %v", obs, err)
	}
	waitFor(t, func() bool {
		i, err := e.Get(ctx, sid)
		return err == nil && i.RuntimeStatus == eventbus.StatusReady && i.Restarts == 1
	})
	if got := metricValue(t, g, "corral_runtime_restarts_total", map[string]string{"backend": "local"}); got != 1 {
		t.Fatalf("restarts = %v, want 1", got)
	}
	// The killed agent took its sandbox with it: the restart started a new one.
	if got := metricValue(t, g, "corral_runtime_starts_total", map[string]string{"backend": "local"}); got != 2 {
		t.Fatalf("starts = %v, want 2 (first and after the kill)", got)
	}
	// The error answering the in-flight action is recorded once the session
	// hears it was stored; WaitObservation may see it in the stream first.
	waitMetric(t, "run actions answered with an error", func() float64 {
		return metricValue(t, g, "corral_actions_total", map[string]string{"type": "run", "outcome": metrics.OutcomeError})
	}, 1)
}

func TestMetricsNilRegistryRecordsNothing(t *testing.T) {
	e := newCLIEngine(t, testConfig(), WithMetrics(nil))
	sid := startSession(t, e, SessionSpec{})
	if _, obs, err := e.Run(ctxT(t), sid, cmd("echo ok")); err != nil || strings.TrimSpace(obs.Content) != "ok" {
		t.Fatalf("Run without metrics: %v %v", obs, err)
	}
}

func TestActionOutcome(t *testing.T) {
	run := func(exit int, suffix string) *eventbus.Event {
		md := eventbus.DefaultMetadata()
		md.ExitCode, md.Suffix = exit, suffix
		return eventbus.NewObservation(1, "", &eventbus.CmdOutputObservation{Command: "x", Metadata: md})
	}
	for _, c := range []struct {
		name string
		obs  *eventbus.Event
		want string
	}{
		{"a zero exit code is ok", run(0, ""), metrics.OutcomeOK},
		{"a non-zero exit code is still ok: the command ran", run(2, ""), metrics.OutcomeOK},
		{"exit -1 without a timeout suffix is ok", run(-1, ""), metrics.OutcomeOK},
		{"a hard timeout is a timeout", run(-1, "\n[The command timed out after 1.0 seconds. You may wait]"), metrics.OutcomeTimeout},
		{"the cli runtime's timeout is a timeout", run(-1, "[The command timed out after 1.0 seconds.]"), metrics.OutcomeTimeout},
		{"a no-change timeout is a timeout", run(-1, "\n[The command has no new output after 10 seconds. You may wait]"), metrics.OutcomeTimeout},
		{"a timeout suffix with a real exit code is ok", run(0, "[The command timed out after 1.0 seconds.]"), metrics.OutcomeOK},
		{"an ipython cell that timed out is a timeout",
			eventbus.NewObservation(1, "[Execution timed out (5 seconds).]", &eventbus.IPythonRunCellObservation{}), metrics.OutcomeTimeout},
		{"an error observation is an error", eventbus.NewError(1, "AGENT_ERROR$BAD_ACTION", "bad"), metrics.OutcomeError},
		{"a user rejection is rejected", eventbus.NewObservation(1, rejectedText, &eventbus.UserRejectObservation{}), metrics.OutcomeRejected},
		{"a file read is ok", eventbus.NewObservation(1, "x", &eventbus.FileReadObservation{Path: "/a"}), metrics.OutcomeOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := actionOutcome(c.obs); got != c.want {
				t.Fatalf("actionOutcome = %q, want %q", got, c.want)
			}
		})
	}
}

// BenchmarkMetricsOverhead runs a think action (two appends and the
// session's bookkeeping, no shell) on two engines, one recording metrics and
// one not, interleaved (alternating which goes first) so both see the same load; it reports their p50s
// and the ratio.
func BenchmarkMetricsOverhead(b *testing.B) {
	with := newCLIEngine(b, testConfig(), WithMetrics(metrics.New()), WithStore(defaultBenchStore(b)))
	without := newCLIEngine(b, testConfig(), WithStore(defaultBenchStore(b)))
	ctx := context.Background()
	sw, sn := startSession(b, with, SessionSpec{}), startSession(b, without, SessionSpec{})
	think := func() *eventbus.Event {
		return runAction(eventbus.SourceAgent, &eventbus.AgentThinkAction{Thought: "t"})
	}
	run := func(e *Engine, sid string) time.Duration {
		t0 := time.Now()
		if _, obs, err := e.Run(ctx, sid, think()); err != nil || obs.Type() != "think" {
			b.Fatal(obs, err)
		}
		return time.Since(t0)
	}
	for i := 0; i < 50; i++ { // warm both up
		run(with, sw)
		run(without, sn)
	}
	var dw, dn []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 { // alternate which goes first
			dw = append(dw, run(with, sw))
			dn = append(dn, run(without, sn))
		} else {
			dn = append(dn, run(without, sn))
			dw = append(dw, run(with, sw))
		}
	}
	b.ReportMetric(float64(pct(dw, 0.5).Microseconds()), "metrics_p50_us")
	b.ReportMetric(float64(pct(dn, 0.5).Microseconds()), "no_metrics_p50_us")
	b.ReportMetric(float64(pct(dw, 0.5))/float64(pct(dn, 0.5)), "ratio_p50")
}
