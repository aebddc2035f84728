package metrics

import (
	"slices"
	"sync"
	"time"
)

// windowSize bounds the samples kept for Summary: enough for a few seconds of
// a busy node, small enough that Summary's sort is cheap.
const windowSize = 8192

// RateWindow is the span Summary's actions-per-second covers; LatencyWindow
// the span its percentiles cover.
const (
	RateWindow    = 10 * time.Second
	LatencyWindow = time.Minute
)

// Summary is the short view of recent activity the web UI shows.
type Summary struct {
	// ActionsPerSecond is the rate of answered actions over the last
	// RateWindow (or since the first one, if more recent).
	ActionsPerSecond float64 `json:"actions_per_second"`
	// Actions is the number of samples the percentiles come from (answered
	// actions in the last LatencyWindow, at most the window's capacity).
	Actions int `json:"actions"`
	// P50Ms and P99Ms are action latency percentiles in milliseconds (0 when
	// there are no samples).
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

type sample struct {
	at time.Time
	d  time.Duration
}

// window is a ring of the most recent action samples.
type window struct {
	mu   sync.Mutex
	buf  []sample
	next int
	full bool
}

func newWindow(n int) *window { return &window{buf: make([]sample, n)} }

func (w *window) add(at time.Time, d time.Duration) {
	w.mu.Lock()
	w.buf[w.next] = sample{at, d}
	w.next++
	if w.next == len(w.buf) {
		w.next, w.full = 0, true
	}
	w.mu.Unlock()
}

func (w *window) snapshot() []sample {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.full {
		return slices.Clone(w.buf)
	}
	return slices.Clone(w.buf[:w.next])
}

// Summary computes the recent action rate and latency percentiles.
func (r *Registry) Summary() Summary { return r.summaryAt(time.Now()) }

func (r *Registry) summaryAt(now time.Time) Summary {
	if r == nil {
		return Summary{}
	}
	var s Summary
	var lat []time.Duration
	var inRate int
	var oldest time.Time
	for _, x := range r.window.snapshot() {
		age := now.Sub(x.at)
		if age <= LatencyWindow {
			lat = append(lat, x.d)
		}
		if age <= RateWindow {
			inRate++
			if oldest.IsZero() || x.at.Before(oldest) {
				oldest = x.at
			}
		}
	}
	if inRate > 0 {
		// Over a short history, divide by the span actually covered (at least
		// one second) rather than the whole window, so a burst shows its rate.
		span := max(now.Sub(oldest), time.Second)
		span = min(span, RateWindow)
		s.ActionsPerSecond = float64(inRate) / span.Seconds()
	}
	s.Actions = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		s.P50Ms = ms(percentile(lat, 0.50))
		s.P99Ms = ms(percentile(lat, 0.99))
	}
	return s
}

// percentile is the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
