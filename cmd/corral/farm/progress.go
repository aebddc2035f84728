package farm

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress shows how a run goes: a bar redrawn in place on a terminal, one
// line per finished job otherwise. Its goroutine is owned by Run (start/stop).
type progress struct {
	w     io.Writer
	tty   bool
	total int // jobs this run
	skip  int // finished earlier

	mu                    sync.Mutex
	begin                 time.Time
	done, failed, running int
	stopC, stopped        chan struct{}
}

func newProgress(w io.Writer, tty bool, total, skip int) *progress {
	return &progress{w: w, tty: tty, total: total, skip: skip}
}

func (p *progress) start() {
	p.begin = time.Now()
	if p.w == nil {
		return
	}
	if !p.tty {
		fmt.Fprintf(p.w, "farm: %d jobs to run (%d already finished)\n", p.total, p.skip)
		return
	}
	p.stopC, p.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stopC:
				return
			case <-t.C:
				p.mu.Lock()
				p.drawLocked()
				p.mu.Unlock()
			}
		}
	}()
}

func (p *progress) stop() {
	if p.stopC != nil {
		close(p.stopC)
		<-p.stopped
		p.mu.Lock()
		p.drawLocked()
		fmt.Fprintln(p.w)
		p.mu.Unlock()
	}
}

func (p *progress) started() {
	p.mu.Lock()
	p.running++
	p.mu.Unlock()
}

func (p *progress) interrupted() {
	p.mu.Lock()
	p.running--
	p.mu.Unlock()
}

func (p *progress) finished(r Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	p.done++
	if r.Status != StatusPassed {
		p.failed++
	}
	if p.w != nil && !p.tty {
		line := fmt.Sprintf("[%d/%d] %s %s %.2fs", p.done, p.total, r.ID, r.Status, r.TotalSeconds)
		if r.Error != "" {
			line += ": " + firstLine(r.Error)
		}
		fmt.Fprintln(p.w, line)
	}
}

// drawLocked redraws the bar: done/failed/running, rate and ETA.
func (p *progress) drawLocked() {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	n := int(frac * width)
	el := time.Since(p.begin).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.done) / el
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(p.total-p.done)/rate) * time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d done  %d failed  %d running  %.1f jobs/s  ETA %s\x1b[K",
		strings.Repeat("#", n), strings.Repeat(".", width-n), p.done, p.total, p.failed, p.running, rate, eta)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
