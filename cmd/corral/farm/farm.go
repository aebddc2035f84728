package farm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"corral/eventbus"
)

// Defaults.
const (
	DefaultConcurrency = 8
	DefaultRetries     = 2
	DefaultTimeout     = 30 * time.Minute
	DefaultGrace       = 30 * time.Second
	// closeTimeout bounds tearing one sandbox down.
	closeTimeout = 60 * time.Second
)

// Output folder layout.
const (
	ResultsFile = "results.jsonl"
	EventsDir   = "events"
	ReportFile  = "report.html"
)

// Farm runs jobs against an Engine. Build it with New.
type Farm struct {
	engine   Engine
	out      string
	conc     int
	retries  int
	runtime  Runtime
	timeout  time.Duration
	grace    time.Duration
	progress io.Writer
	tty      bool
	log      *slog.Logger
	backoff  time.Duration
	force    <-chan struct{}
	rerun    []Status // last statuses of an earlier run that run again

	// Sandboxes are destroyed in the background so a finished job's slot
	// goes to the next job at once; tearSlots bounds teardowns in flight
	// (a full pool makes workers wait) and Run waits for all of them.
	tearSlots chan struct{}
	forks     *forkParents // set-up jobs of the running Run (fork_from)
	tearing   sync.WaitGroup
}

// teardown destroys sess in the background (see Farm.tearSlots).
func (f *Farm) teardown(ctx context.Context, jobID string, sess Session) {
	f.tearSlots <- struct{}{}
	f.tearing.Add(1)
	go func() {
		defer f.tearing.Done()
		defer func() { <-f.tearSlots }()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if err := sess.Close(cctx); err != nil {
			f.log.Error("farm: destroy sandbox", "job", jobID, "err", err)
		}
	}()
}

// Option configures a Farm.
type Option func(*Farm)

// WithConcurrency sets how many jobs run at once (default 8).
func WithConcurrency(n int) Option { return func(f *Farm) { f.conc = n } }

// WithRetries sets how many times a job is retried after an infrastructure
// error (sandbox failed to start, action got no observation). Failed checks
// and timeouts are never retried. Default 2.
func WithRetries(n int) Option { return func(f *Farm) { f.retries = n } }

// WithRuntime sets the runtime fields a job leaves empty.
func WithRuntime(r Runtime) Option { return func(f *Farm) { f.runtime = r } }

// WithTimeout sets the timeout of jobs that give none (default 30m).
func WithTimeout(d time.Duration) Option { return func(f *Farm) { f.timeout = d } }

// WithGrace sets how long running jobs may go on after Run's context ends
// (Ctrl-C) before they are cancelled and their sandboxes destroyed
// (default 30s).
func WithGrace(d time.Duration) Option { return func(f *Farm) { f.grace = d } }

// WithProgress writes progress to w: a redrawn bar when tty is true, else
// one plain line per finished job. Default: no progress.
func WithProgress(w io.Writer, tty bool) Option {
	return func(f *Farm) { f.progress, f.tty = w, tty }
}

// WithForceStop ends the grace period early when ch is closed (a second
// Ctrl-C): running jobs are cancelled and their sandboxes destroyed.
func WithForceStop(ch <-chan struct{}) Option { return func(f *Farm) { f.force = ch } }

// WithLogger sets the logger for infrastructure errors and retries.
func WithLogger(l *slog.Logger) Option { return func(f *Farm) { f.log = l } }

// WithRerun sets which jobs an earlier run in the same output folder
// finished run again, by their last status. The default, StatusError, runs
// again the jobs that ended in an infrastructure error (once its cause is
// fixed, a rerun should simply retry them) and keeps passed, failed and
// timeout results; WithRerun() keeps every result; all four statuses run
// every job again. Jobs without a result (new, or interrupted) always run.
func WithRerun(statuses ...Status) Option {
	return func(f *Farm) { f.rerun = slices.Clone(statuses) }
}

// WithRetryBackoff sets the pause before a retry (default 500ms).
func WithRetryBackoff(d time.Duration) Option { return func(f *Farm) { f.backoff = d } }

// New returns a farm writing to the output folder out.
func New(engine Engine, out string, opts ...Option) *Farm {
	f := &Farm{
		engine:  engine,
		out:     out,
		conc:    DefaultConcurrency,
		retries: DefaultRetries,
		timeout: DefaultTimeout,
		grace:   DefaultGrace,
		log:     slog.New(slog.DiscardHandler),
		backoff: 500 * time.Millisecond,
		rerun:   []Status{StatusError},
	}
	for _, o := range opts {
		o(f)
	}
	if f.conc < 1 {
		f.conc = 1
	}
	if f.retries < 0 {
		f.retries = 0
	}
	f.tearSlots = make(chan struct{}, f.conc)
	return f
}

// Summary is what a Run did.
type Summary struct {
	Jobs        int            // jobs parsed from the file
	Skipped     int            // finished in an earlier run, result kept
	Rerun       int            // finished in an earlier run with a status WithRerun names, run again
	Ran         int            // finished in this run
	Unfinished  []string       // interrupted (Ctrl-C) before finishing; they run on the next Run
	BadLines    []*LineError   // malformed job lines
	Resumed     *Finished      // what the output folder already held
	Results     []Result       // one per finished job (earlier and this run), jobs-file order
	Counts      map[Status]int // over Results
	Elapsed     time.Duration  // this run
	Interrupted bool           // Run's context ended before all jobs ran
}

// OK reports whether every job ran and passed and every line parsed.
func (s *Summary) OK() bool {
	return len(s.BadLines) == 0 && len(s.Unfinished) == 0 && !s.Interrupted &&
		s.Counts[StatusPassed] == len(s.Results) && len(s.Results) == s.Jobs
}

// Prepare creates the output folder and checks it is writable, so a farm
// fails at once instead of after running jobs.
func Prepare(out string) error {
	if err := os.MkdirAll(filepath.Join(out, EventsDir), 0o755); err != nil {
		return fmt.Errorf("output folder %s is not usable: %w (choose another with --out)", out, err)
	}
	probe, err := os.CreateTemp(out, ".probe-*")
	if err != nil {
		return fmt.Errorf("output folder %s is not writable: %w (choose another with --out)", out, err)
	}
	name := probe.Name()
	probe.Close()
	os.Remove(name)
	return nil
}

// Run runs every job not already finished in the output folder and writes
// results.jsonl, events/<id>.jsonl and report.html. bad are the jobs file's
// malformed lines, reported in the summary. When ctx ends, no new job
// starts; running ones get the grace period, then are cancelled and their
// sandboxes destroyed; they are not recorded and run again next time.
// The error is for the output folder only; job failures are in Summary.
func (f *Farm) Run(ctx context.Context, jobs []Job, bad []*LineError) (*Summary, error) {
	begin := time.Now()
	if err := Prepare(f.out); err != nil {
		return nil, err
	}
	rf, fin, err := openResults(filepath.Join(f.out, ResultsFile))
	if err != nil {
		return nil, fmt.Errorf("output folder %s: %w", f.out, err)
	}
	defer rf.Close()

	done := make(map[string]Result, len(fin.Results))
	for _, r := range fin.Results {
		done[r.ID] = r // a later line for the same id wins
	}
	var todo []Job
	rerun := map[string]bool{}
	for _, j := range jobs {
		r, ok := done[j.ID]
		switch {
		case !ok:
			todo = append(todo, j)
		case slices.Contains(f.rerun, r.Status):
			// Its old result stays in done (and in the summary) until the
			// new one replaces it; an interrupted rerun keeps the old one.
			todo = append(todo, j)
			rerun[j.ID] = true
		}
	}
	todo, f.forks = planForks(jobs, todo)
	for id := range f.forks.done {
		if _, ok := done[id]; ok {
			rerun[id] = true // a set-up job runs again: its forks need its sandbox
		}
	}
	sum := &Summary{Jobs: len(jobs), Skipped: len(jobs) - len(todo), Rerun: len(rerun), BadLines: bad, Resumed: fin}

	// hard ends running jobs: grace after ctx ends.
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	allDone := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		select {
		case <-allDone:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(f.grace)
		defer t.Stop()
		select {
		case <-allDone:
		case <-t.C:
			hardCancel()
		case <-f.force:
			hardCancel()
		}
	}()

	prog := newProgress(f.progress, f.tty, len(todo), sum.Skipped)
	prog.start()

	var (
		mu         sync.Mutex
		newResults []Result
		unfinished []string
		writeErr   error
	)
	queue := make(chan Job)
	var workers sync.WaitGroup
	queuedAt := time.Now()
	for range min(f.conc, max(len(todo), 1)) {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range queue {
				prog.started()
				res, finished := f.runJob(hard, j, queuedAt)
				f.setupFinished(hard, j.ID, res.Status)
				if !finished {
					prog.interrupted()
					mu.Lock()
					unfinished = append(unfinished, j.ID)
					mu.Unlock()
					continue
				}
				err := rf.Append(res)
				mu.Lock()
				if err != nil && writeErr == nil {
					writeErr = err
				}
				if err == nil {
					newResults = append(newResults, res)
				}
				mu.Unlock()
				prog.finished(res)
			}
		}()
	}
feed:
	for _, j := range todo {
		select {
		case <-ctx.Done():
			break feed
		case queue <- j:
		}
	}
	close(queue)
	workers.Wait()
	f.releaseForks(hard)
	f.tearing.Wait()
	close(allDone)
	watch.Wait()
	prog.stop()

	sum.Interrupted = ctx.Err() != nil && (len(newResults) < len(todo))
	sum.Ran = len(newResults)
	for _, r := range newResults {
		done[r.ID] = r
	}
	started := make(map[string]bool, len(newResults)+len(unfinished))
	for _, r := range newResults {
		started[r.ID] = true
	}
	for _, id := range unfinished {
		started[id] = true
	}
	sum.Counts = map[Status]int{}
	for _, j := range jobs {
		r, ok := done[j.ID]
		if ok {
			sum.Results = append(sum.Results, r)
			sum.Counts[r.Status]++
		}
		if sum.Interrupted && !started[j.ID] && (!ok || rerun[j.ID]) {
			unfinished = append(unfinished, j.ID)
		}
	}
	sort.Strings(unfinished)
	sum.Unfinished = unfinished
	sum.Elapsed = time.Since(begin)
	if writeErr != nil {
		return sum, fmt.Errorf("output folder %s: %w", f.out, writeErr)
	}
	if err := WriteReport(filepath.Join(f.out, ReportFile), sum); err != nil {
		return sum, err
	}
	return sum, nil
}

// outcome of one attempt.
type outcome int

const (
	outDone        outcome = iota // result is final (passed/failed, or a permanent error)
	outInfra                      // infrastructure error: may retry
	outTimeout                    // the job's deadline passed
	outInterrupted                // the farm is shutting down
)

// runJob runs j until it finishes or the farm stops. finished is false when
// the farm was interrupted; the result must then not be recorded.
func (f *Farm) runJob(hard context.Context, j Job, queuedAt time.Time) (res Result, finished bool) {
	first := time.Now()
	res = Result{ID: j.ID, QueuedAt: queuedAt, StartAt: first, EventsFile: filepath.Join(EventsDir, j.ID+".jsonl")}
	res.QueueSeconds = first.Sub(queuedAt).Seconds()
	finish := func(st Status) (Result, bool) {
		res.Status = st
		res.EndAt = time.Now()
		res.TotalSeconds = res.EndAt.Sub(first).Seconds()
		if !res.ReadyAt.IsZero() {
			res.RunSeconds = res.EndAt.Sub(res.ReadyAt).Seconds()
		}
		return res, true
	}

	actions := j.Actions
	if j.Trajectory != "" {
		var err error
		actions, err = LoadTrajectory(j.Trajectory)
		if err != nil {
			res.Attempt = 1
			res.Error = err.Error()
			return finish(StatusError)
		}
	}
	timeout := f.timeout
	if j.Timeout > 0 {
		timeout = time.Duration(j.Timeout * float64(time.Second))
	}
	jobCtx, cancel := context.WithTimeout(hard, timeout)
	defer cancel()

	for attempt := 1; ; attempt++ {
		res.Attempt = attempt
		out, err := f.attempt(jobCtx, j, actions, attempt, &res)
		if hard.Err() != nil {
			return res, false
		}
		switch {
		case out == outTimeout || (out == outInfra && jobCtx.Err() != nil):
			res.Error = fmt.Sprintf("job timed out after %s", timeout)
			if err != nil {
				res.Error += " (" + err.Error() + ")"
			}
			return finish(StatusTimeout)
		case out == outInfra && attempt <= f.retries:
			f.log.Warn("farm: infrastructure error, retrying", "job", j.ID, "attempt", attempt, "err", err)
			select {
			case <-jobCtx.Done():
			case <-time.After(f.backoff):
			}
			continue
		case out == outInfra:
			res.Error = err.Error()
			return finish(StatusError)
		}
		if err != nil {
			res.Error = err.Error()
			return finish(StatusError)
		}
		if res.CheckExitCode != nil && *res.CheckExitCode != 0 {
			res.Error = ""
			return finish(StatusFailed)
		}
		res.Error = ""
		return finish(StatusPassed)
	}
}

// attempt starts one sandbox, runs the actions and the check, writes the
// job's event log and hands the sandbox to teardown. It fills res's
// per-attempt fields.
func (f *Farm) attempt(ctx context.Context, j Job, actions []*eventbus.Event, attempt int, res *Result) (outcome, error) {
	log := &eventLog{}
	sess, out, err := f.runAttempt(ctx, j, actions, attempt, res, log)
	if ns, ok := sess.(NodeSession); ok {
		res.Node = ns.Node()
	}
	if sess != nil {
		if ss, ok := sess.(StreamSession); ok {
			// The session's own stream has the whole story (statuses,
			// set-up, timestamps as stored); fall back to what the farm saw.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), streamReadTimeout)
			log.merge(ss.Events(sctx, log.lastID()))
			cancel()
		}
		if !f.keepForForks(j.ID, sess, out, err) {
			f.teardown(ctx, j.ID, sess)
		}
	}
	if werr := log.writeFile(filepath.Join(f.out, res.EventsFile)); werr != nil && err == nil {
		return outDone, werr
	}
	return out, err
}

// streamReadTimeout bounds reading a session's stream for the event log.
const streamReadTimeout = 10 * time.Second

func (f *Farm) runAttempt(ctx context.Context, j Job, actions []*eventbus.Event, attempt int, res *Result, log *eventLog) (Session, outcome, error) {
	res.ExitCodes = []int{}
	res.CheckExitCode = nil
	res.Actions = 0
	res.ReadyAt = time.Time{}
	res.StartupSeconds = 0
	start := time.Now()
	if attempt > 1 {
		res.StartAt = start
	}

	sess, err := f.startSession(ctx, j, SessionSpec{JobID: j.ID, Attempt: attempt, Runtime: j.Runtime.withDefaults(f.runtime)})
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, outTimeout, fmt.Errorf("start sandbox: %w", err)
		case errors.Is(err, ErrPermanent):
			return nil, outDone, fmt.Errorf("start sandbox: %w", err)
		}
		return nil, outInfra, fmt.Errorf("start sandbox: %w", err)
	}
	res.ReadyAt = time.Now()
	res.StartupSeconds = res.ReadyAt.Sub(start).Seconds()

	run := func(a *eventbus.Event) (*eventbus.Event, outcome, error) {
		res.Actions++
		if a.Timestamp == "" {
			a.Timestamp = eventbus.Timestamp(time.Now()) // submission time, kept by the stream
		}
		obs, err := sess.Run(ctx, a)
		if err != nil {
			log.add(a)
			if ctx.Err() != nil {
				return nil, outTimeout, fmt.Errorf("%s action: %w", a.Type(), err)
			}
			return nil, outInfra, fmt.Errorf("%s action got no observation: %w", a.Type(), err)
		}
		if a.ID == eventbus.InvalidID && obs.Cause != nil {
			a.ID = *obs.Cause
		}
		log.add(a)
		log.add(obs)
		return obs, outDone, nil
	}
	for _, a := range actions {
		a = a.Clone()
		obs, out, err := run(a)
		if err != nil {
			return sess, out, err
		}
		if o, ok := obs.Observation.(*eventbus.CmdOutputObservation); ok {
			res.ExitCodes = append(res.ExitCodes, o.Metadata.ExitCode)
		}
	}
	if j.Check == "" {
		return sess, outDone, nil
	}
	act, _ := eventbus.NewActionOf("run")
	ra := act.(*eventbus.CmdRunAction)
	ra.Command = j.Check
	a := eventbus.NewAction(eventbus.SourceAgent, ra)
	// The check runs to completion within the job's deadline: a blocking
	// hard timeout turns off OpenHands' no-output soft timeout.
	if dl, ok := ctx.Deadline(); ok {
		a.SetHardTimeout(max(time.Until(dl).Seconds(), 1), true)
	}
	obs, out, err := run(a)
	if err != nil {
		return sess, out, err
	}
	o, ok := obs.Observation.(*eventbus.CmdOutputObservation)
	if !ok {
		return sess, outDone, fmt.Errorf("check got a %q observation instead of command output: %s", obs.Type(), obs.Content)
	}
	code := o.Metadata.ExitCode
	res.CheckExitCode = &code
	return sess, outDone, nil
}

// eventLog is one job's events, written as OpenHands JSON lines once the
// attempt ends (a job that does not finish is run again, log and all).
type eventLog struct {
	events []*eventbus.Event
}

func (l *eventLog) add(e *eventbus.Event) { l.events = append(l.events, e) }

// lastID is the highest stream id among the events seen (InvalidID if none).
func (l *eventLog) lastID() int64 {
	last := eventbus.InvalidID
	for _, e := range l.events {
		last = max(last, e.ID)
	}
	return last
}

// merge replaces the events up to the stream's last one with the stream's
// own; events the stream did not return (an action that got no
// observation before the deadline) are kept after them. A failed read
// keeps the farm's own log.
func (l *eventLog) merge(stream []*eventbus.Event, err error) {
	if err != nil || len(stream) == 0 {
		return
	}
	last := stream[len(stream)-1].ID
	merged := append([]*eventbus.Event(nil), stream...)
	for _, e := range l.events {
		if e.ID == eventbus.InvalidID || e.ID > last {
			merged = append(merged, e)
		}
	}
	l.events = merged
}

// writeFile writes the log atomically (temporary file, then rename).
func (l *eventLog) writeFile(path string) error {
	var b bytes.Buffer
	for _, e := range l.events {
		if e.Timestamp == "" {
			e.Timestamp = eventbus.Timestamp(time.Now())
		}
		js, err := eventbus.Marshal(e)
		if err != nil {
			return fmt.Errorf("event log: encode %s event: %w", e.Type(), err)
		}
		b.Write(js)
		b.WriteByte('\n')
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write event log: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write event log: %w", err)
	}
	return nil
}
