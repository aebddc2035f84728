package api

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"corral/eventbus"
)

// testEngine is a small but real Engine for the server's tests: events go
// through a real eventbus.Store on disk, "run" actions execute with bash
// via os/exec and stream their output in chunks, files live in a real
// directory per session. It stands in for corral/actors so the server can
// be tested on its own; adapter_test.go runs the same server on the real
// engine.
type testEngine struct {
	t     testing.TB
	store *eventbus.Store
	root  string

	mu       sync.Mutex
	sessions map[string]*tSession
	notReady error
	wg       sync.WaitGroup
}

type tSession struct {
	info   Session
	stream *eventbus.Stream
	dir    string
	work   chan *eventbus.Event
	paused chan struct{} // non-nil and open while paused

	waiters   map[int64]chan *eventbus.Event // action id -> Run waiting for its observation
	decisions map[int64]chan bool            // action id -> confirmation gate

	chunkMu sync.Mutex
	chunks  map[chan OutputChunk]struct{}

	cancel context.CancelFunc
	ctx    context.Context
}

func newTestEngine(t testing.TB) *testEngine { return newTestEngineBuffered(t, 0) }

// newTestEngineBuffered sets the store's subscriber buffer (0 = default).
func newTestEngineBuffered(t testing.TB, subscriberBuffer int) *testEngine {
	cfg := eventbus.DefaultConfig()
	if subscriberBuffer > 0 {
		cfg.SubscriberBuffer = subscriberBuffer
	}
	cfg.StoreDir = t.TempDir()
	cfg.Sync = eventbus.SyncNever
	st, err := eventbus.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEngine{t: t, store: st, root: t.TempDir(), sessions: map[string]*tSession{}}
	t.Cleanup(e.shutdown)
	return e
}

func (e *testEngine) shutdown() {
	e.mu.Lock()
	for _, s := range e.sessions {
		if s.work != nil {
			close(s.work)
			s.work = nil
		}
		s.cancel()
	}
	e.mu.Unlock()
	e.wg.Wait()
	_ = e.store.Close()
}

func (e *testEngine) session(id string) (*tSession, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sessions[id]
	if !ok {
		return nil, fmt.Errorf("session %q: %w (list them with GET /api/sessions)", id, ErrNotFound)
	}
	return s, nil
}

func (e *testEngine) CreateSession(ctx context.Context, req SessionRequest) (Session, error) {
	if req.Runtime == "" {
		req.Runtime = "local"
	}
	if req.Runtime != "local" {
		return Session{}, fmt.Errorf("runtime %q: %w (the test engine has only \"local\")", req.Runtime, ErrUnknownRuntime)
	}
	id := req.ID
	if id == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.sessions[id]; ok {
		return Session{}, fmt.Errorf("session %q: %w: the id is taken", id, ErrConflict)
	}
	stream, err := e.store.Open(id)
	if err != nil {
		return Session{}, err
	}
	dir := filepath.Join(e.root, id)
	if err := os.MkdirAll(filepath.Join(dir, "workspace"), 0o755); err != nil {
		return Session{}, err
	}
	now := time.Now().UTC()
	sctx, cancel := context.WithCancel(context.Background())
	s := &tSession{
		info:   Session{ID: id, Status: "RUNNING", Backend: req.Runtime, Image: req.Image, Created: now, LastActivity: now, RuntimeStatus: eventbus.StatusReady},
		stream: stream, dir: dir, work: make(chan *eventbus.Event, 4096),
		waiters: map[int64]chan *eventbus.Event{}, decisions: map[int64]chan bool{},
		chunks: map[chan OutputChunk]struct{}{}, ctx: sctx, cancel: cancel,
	}
	e.sessions[id] = s
	e.wg.Add(1)
	go e.worker(s, s.work)
	return s.info, nil
}

func (e *testEngine) ListSessions(ctx context.Context) ([]Session, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Session
	for _, s := range e.sessions {
		out = append(out, s.info)
	}
	return out, nil
}

func (e *testEngine) GetSession(ctx context.Context, id string) (Session, error) {
	s, err := e.session(id)
	if err != nil {
		return Session{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return s.info, nil
}

func (e *testEngine) DeleteSession(ctx context.Context, id string) (Session, error) {
	s, err := e.session(id)
	if err != nil {
		return Session{}, err
	}
	e.mu.Lock()
	if s.work != nil {
		close(s.work)
		s.work = nil
	}
	if s.paused != nil {
		close(s.paused)
		s.paused = nil
	}
	s.info.Status = "STOPPED"
	s.info.RuntimeStatus = eventbus.StatusStopped
	x := s.info
	e.mu.Unlock()
	s.cancel()
	return x, nil
}

func (e *testEngine) StartSession(ctx context.Context, id string) (Session, error) {
	s, err := e.session(id)
	if err != nil {
		return Session{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s.info.Status = "RUNNING"
	return s.info, nil
}

func (e *testEngine) PauseSession(ctx context.Context, id string) (Session, error) {
	s, err := e.session(id)
	if err != nil {
		return Session{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.info.Status != "RUNNING" {
		return Session{}, fmt.Errorf("session %q is %s: %w", id, s.info.Status, ErrNotRunning)
	}
	s.paused = make(chan struct{})
	s.info.Status = "PAUSED"
	return s.info, nil
}

func (e *testEngine) ResumeSession(ctx context.Context, id string) (Session, error) {
	s, err := e.session(id)
	if err != nil {
		return Session{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.info.Status != "PAUSED" {
		return Session{}, fmt.Errorf("session %q is %s, not PAUSED: %w", id, s.info.Status, ErrConflict)
	}
	close(s.paused)
	s.paused = nil
	s.info.Status = "RUNNING"
	return s.info, nil
}

func (e *testEngine) submit(ctx context.Context, id string, action *eventbus.Event, waiter chan *eventbus.Event) (int64, error) {
	s, err := e.session(id)
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.work == nil {
		return 0, fmt.Errorf("session %q is %s: %w; create a new session", id, s.info.Status, ErrNotRunning)
	}
	stored, err := s.stream.Append(ctx, action)
	if err != nil {
		return 0, err
	}
	if waiter != nil {
		s.waiters[stored.ID] = waiter
	}
	if c, ok := stored.Action.(eventbus.Confirmable); ok && c.Confirmation() == eventbus.AwaitingConfirmation {
		s.decisions[stored.ID] = make(chan bool, 1)
	}
	s.info.LastActivity = time.Now().UTC()
	s.work <- stored
	return stored.ID, nil
}

func (e *testEngine) Submit(ctx context.Context, id string, action *eventbus.Event) (int64, error) {
	return e.submit(ctx, id, action, nil)
}

func (e *testEngine) Run(ctx context.Context, id string, action *eventbus.Event) (int64, *eventbus.Event, error) {
	w := make(chan *eventbus.Event, 1)
	eid, err := e.submit(ctx, id, action, w)
	if err != nil {
		return eventbus.InvalidID, nil, err
	}
	select {
	case obs := <-w:
		return eid, obs, nil
	case <-ctx.Done():
		return eid, nil, ctx.Err()
	}
}

// decide opens the gate of action eid. Unlike the real engine it records
// no event of its own, so it returns eid itself.
func (e *testEngine) decide(id string, eid int64, ok bool) (int64, error) {
	s, err := e.session(id)
	if err != nil {
		return eventbus.InvalidID, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, found := s.decisions[eid]
	if !found {
		if eid > s.stream.LastID() {
			return eventbus.InvalidID, fmt.Errorf("session %q has no event %d: %w", id, eid, ErrNotFound)
		}
		return eventbus.InvalidID, fmt.Errorf("event %d of session %q is not awaiting confirmation: %w", eid, id, ErrConflict)
	}
	select {
	case ch <- ok:
		return eid, nil
	default:
		return eventbus.InvalidID, fmt.Errorf("event %d of session %q was already decided: %w", eid, id, ErrConflict)
	}
}

func (e *testEngine) Confirm(ctx context.Context, id string, eid int64) (int64, error) {
	return e.decide(id, eid, true)
}

func (e *testEngine) Reject(ctx context.Context, id string, eid int64) (int64, error) {
	return e.decide(id, eid, false)
}

func (e *testEngine) Events(ctx context.Context, id string, f eventbus.Filter) ([]*eventbus.Item, error) {
	s, err := e.session(id)
	if err != nil {
		return nil, err
	}
	return s.stream.Search(ctx, f)
}

func (e *testEngine) Subscribe(ctx context.Context, id string, from int64) (EventSubscription, error) {
	s, err := e.session(id)
	if err != nil {
		return nil, err
	}
	return s.stream.Subscribe(ctx, from)
}

func (e *testEngine) SubscribeOutput(ctx context.Context, id string) (<-chan OutputChunk, func(), error) {
	s, err := e.session(id)
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan OutputChunk, 256)
	s.chunkMu.Lock()
	s.chunks[ch] = struct{}{}
	s.chunkMu.Unlock()
	return ch, func() {
		s.chunkMu.Lock()
		if _, ok := s.chunks[ch]; ok {
			delete(s.chunks, ch)
			close(ch)
		}
		s.chunkMu.Unlock()
	}, nil
}

func (s *tSession) publish(c OutputChunk) {
	s.chunkMu.Lock()
	defer s.chunkMu.Unlock()
	for ch := range s.chunks {
		select {
		case ch <- c:
		default:
		}
	}
}

// sandboxPath maps an absolute sandbox path into the session's directory.
func (s *tSession) sandboxPath(p string) string {
	return filepath.Join(s.dir, filepath.Clean("/"+p))
}

func (e *testEngine) ListFiles(ctx context.Context, id, p string) ([]string, error) {
	s, err := e.session(id)
	if err != nil {
		return nil, err
	}
	if p == "" {
		p = "/workspace"
	}
	ents, err := os.ReadDir(s.sandboxPath(p))
	if err != nil {
		return []string{}, nil
	}
	var dirs, files []string
	for _, d := range ents {
		if d.IsDir() {
			dirs = append(dirs, d.Name()+"/")
		} else {
			files = append(files, d.Name())
		}
	}
	ci := func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) }
	slices.SortFunc(dirs, ci)
	slices.SortFunc(files, ci)
	return append(dirs, files...), nil
}

func (e *testEngine) Upload(ctx context.Context, id, dest, name string, r io.Reader) error {
	s, err := e.session(id)
	if err != nil {
		return err
	}
	dir := s.sandboxPath(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (e *testEngine) Download(ctx context.Context, id, p string, w io.Writer) error {
	s, err := e.session(id)
	if err != nil {
		return err
	}
	root := s.sandboxPath(p)
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return fmt.Errorf("%s is not a directory in the sandbox: %w", p, ErrNotFound)
	}
	zw := zip.NewWriter(w)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fw, err := zw.Create(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		_, err = fw.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	return zw.Close()
}

func (e *testEngine) Ready(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.notReady
}

// worker runs a session's actions one at a time, as a session actor would.
func (e *testEngine) worker(s *tSession, work <-chan *eventbus.Event) {
	defer e.wg.Done()
	for act := range work {
		e.mu.Lock()
		paused := s.paused
		gate := s.decisions[act.ID]
		e.mu.Unlock()
		if paused != nil {
			<-paused
		}
		var obs *eventbus.Event
		if gate != nil {
			select {
			case ok := <-gate:
				e.mu.Lock()
				delete(s.decisions, act.ID)
				e.mu.Unlock()
				if !ok {
					obs = eventbus.NewObservation(act.ID, "Action has been rejected by the user! Waiting for further user input.", &eventbus.UserRejectObservation{})
				}
			case <-s.ctx.Done():
			}
		}
		if obs == nil {
			obs = e.execute(s, act)
		}
		obs.Source = eventbus.SourceEnvironment
		stored, err := s.stream.Append(context.Background(), obs)
		if err != nil {
			e.t.Errorf("test engine: append observation: %v", err)
			continue
		}
		e.mu.Lock()
		w := s.waiters[act.ID]
		delete(s.waiters, act.ID)
		s.info.LastActivity = time.Now().UTC()
		e.mu.Unlock()
		if w != nil {
			w <- stored
		}
	}
}

func (e *testEngine) execute(s *tSession, act *eventbus.Event) *eventbus.Event {
	if s.ctx.Err() != nil {
		return eventbus.NewError(act.ID, "SESSION_STOPPED", "The session was stopped before this action ran.")
	}
	run, ok := act.Action.(*eventbus.CmdRunAction)
	if !ok {
		return eventbus.NewError(act.ID, "", fmt.Sprintf("the test engine runs only \"run\" actions, not %q", act.Type()))
	}
	if run.IsInput {
		return eventbus.NewError(act.ID, "", "ERROR: No previous running command to interact with.")
	}
	cmd := exec.CommandContext(s.ctx, "bash", "-c", run.Command)
	cmd.Dir = filepath.Join(s.dir, "workspace")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		var seq uint64
		for {
			n, err := pr.Read(buf)
			if n > 0 {
				seq++
				out.Write(buf[:n])
				s.publish(OutputChunk{ActionID: act.ID, Seq: seq, Data: bytes.Clone(buf[:n])})
			}
			if err != nil {
				return
			}
		}
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	code := 0
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		code = xe.ExitCode()
	} else if err != nil {
		return eventbus.NewError(act.ID, "", err.Error())
	}
	md := eventbus.DefaultMetadata()
	md.ExitCode = code
	md.PID = -1
	return eventbus.NewObservation(act.ID, strings.TrimSuffix(out.String(), "\n"), &eventbus.CmdOutputObservation{Command: run.Command, Metadata: md})
}

// emit appends n events straight to a session's stream (a busy agent),
// each carrying size bytes of content.
func (e *testEngine) emit(t testing.TB, id string, n, size int) { e.emitPaced(t, id, n, size, 0) }

// emitPaced is emit with a pause between events.
func (e *testEngine) emitPaced(t testing.TB, id string, n, size int, pause time.Duration) {
	s, err := e.session(id)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", size)
	for i := 0; i < n; i++ {
		ev := eventbus.NewAction(eventbus.SourceAgent, &eventbus.MessageAction{Content: fmt.Sprintf("%d %s", i, body)})
		if _, err := s.stream.Append(context.Background(), ev); err != nil {
			t.Errorf("emit: %v", err)
			return
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}
