package farm

import (
	"context"
	"fmt"
	"sync"
)

// Forker is an Engine that can start a session as a fork of another one:
// the parent's files and event history, a new sandbox.
type Forker interface {
	ForkSession(ctx context.Context, parent Session, spec SessionSpec) (Session, error)
}

// forkParents holds the set-up jobs of one Run that other jobs fork from
// ("fork_from"): each one's sandbox is kept after it passes, until every
// job has run.
type forkParents struct {
	mu     sync.Mutex
	done   map[string]chan struct{} // closed once the set-up job finished
	sess   map[string]Session       // kept sandbox of a set-up job that passed
	status map[string]Status
	refuse map[string]string // fork_from names that cannot be forked from, and why
}

// planForks returns todo with the set-up jobs its jobs fork from first
// (added again when an earlier run finished them: their sandbox is needed)
// and the set-up jobs to keep.
func planForks(jobs, todo []Job) ([]Job, *forkParents) {
	p := &forkParents{done: map[string]chan struct{}{}, sess: map[string]Session{}, status: map[string]Status{}, refuse: map[string]string{}}
	byID := make(map[string]Job, len(jobs))
	for _, j := range jobs {
		byID[j.ID] = j
	}
	var setup, rest []Job
	queued := map[string]bool{}
	for _, j := range todo {
		if j.ForkFrom == "" || p.done[j.ForkFrom] != nil || p.refuse[j.ForkFrom] != "" {
			continue
		}
		parent, ok := byID[j.ForkFrom]
		switch {
		case !ok:
			p.refuse[j.ForkFrom] = "it names no job of this jobs file"
		case parent.ForkFrom != "":
			p.refuse[j.ForkFrom] = fmt.Sprintf("job %s is itself forked (from %s); fork from a job without fork_from", parent.ID, parent.ForkFrom)
		default:
			p.done[parent.ID] = make(chan struct{})
			setup = append(setup, parent)
			queued[parent.ID] = true
		}
	}
	for _, j := range todo {
		if !queued[j.ID] {
			rest = append(rest, j)
		}
	}
	return append(setup, rest...), p
}

// keepForForks keeps the sandbox of a set-up job whose attempt ran to its
// end; the caller tears it down otherwise.
func (f *Farm) keepForForks(jobID string, sess Session, out outcome, err error) bool {
	p := f.forks
	if p == nil || out != outDone || err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done[jobID] == nil {
		return false
	}
	p.sess[jobID] = sess
	return true
}

// setupFinished records how a set-up job ended and lets its forks start;
// a set-up job that did not pass has its sandbox torn down.
func (f *Farm) setupFinished(ctx context.Context, jobID string, st Status) {
	p := f.forks
	p.mu.Lock()
	ch := p.done[jobID]
	if ch == nil {
		p.mu.Unlock()
		return
	}
	sess := p.sess[jobID]
	p.status[jobID] = st
	if st != StatusPassed {
		delete(p.sess, jobID)
	}
	p.mu.Unlock()
	if sess != nil && st != StatusPassed {
		f.teardown(ctx, jobID, sess)
	}
	close(ch)
}

// releaseForks tears down the kept set-up sandboxes once every job ran.
func (f *Farm) releaseForks(ctx context.Context) {
	p := f.forks
	p.mu.Lock()
	kept := p.sess
	p.sess = map[string]Session{}
	p.mu.Unlock()
	for id, sess := range kept {
		f.teardown(ctx, id, sess)
	}
}

// startSession starts job j's sandbox: a new one, or with fork_from a fork
// of its set-up job's, once that job passed.
func (f *Farm) startSession(ctx context.Context, j Job, spec SessionSpec) (Session, error) {
	if j.ForkFrom == "" {
		return f.engine.StartSession(ctx, spec)
	}
	p := f.forks
	p.mu.Lock()
	ch, why := p.done[j.ForkFrom], p.refuse[j.ForkFrom]
	p.mu.Unlock()
	if ch == nil {
		return nil, fmt.Errorf("job %s: fork_from %q: %s: %w", j.ID, j.ForkFrom, why, ErrPermanent)
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("job %s: waiting for set-up job %s: %w", j.ID, j.ForkFrom, ctx.Err())
	}
	p.mu.Lock()
	parent, st := p.sess[j.ForkFrom], p.status[j.ForkFrom]
	p.mu.Unlock()
	if parent == nil {
		return nil, fmt.Errorf("job %s: set-up job %s ended %s, so there is nothing to fork from: %w", j.ID, j.ForkFrom, st, ErrPermanent)
	}
	fk, ok := f.engine.(Forker)
	if !ok {
		return nil, fmt.Errorf("job %s: fork_from: this farm's engine cannot fork sandboxes: %w", j.ID, ErrPermanent)
	}
	return fk.ForkSession(ctx, parent, spec)
}
