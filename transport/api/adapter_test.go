package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"corral/actors"
	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/local"
)

var (
	agentOnce sync.Once
	agentDir  string
	agentBin  string
	agentErr  error
)

// buildAgent builds cmd/corral-agent once per test binary.
func buildAgent(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() {
		agentDir, agentErr = os.MkdirTemp("", "corral-api-test-")
		if agentErr != nil {
			return
		}
		agentBin = filepath.Join(agentDir, "corral-agent")
		out, err := exec.Command("go", "build", "-o", agentBin, "../../cmd/corral-agent").CombinedOutput()
		if err != nil {
			agentErr = fmt.Errorf("build corral-agent: %v\n%s", err, out)
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentBin
}

func cleanupAgent() {
	if agentDir != "" {
		os.RemoveAll(agentDir)
	}
}

// realFixture is a server over the real engine with one runtime and
// an on-disk event store.
type realFixture struct {
	*fixture
	eng *actors.Engine
}

func newRealFixture(t testing.TB, mutate func(*Config)) *realFixture {
	t.Helper()
	bin := buildAgent(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A short directory: the agent's unix socket path must fit in 108 bytes,
	// and t.TempDir() embeds the (long) test name.
	sandboxes, err := os.MkdirTemp("", "capi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sandboxes) })
	backend, err := local.New(local.WithAgentBinary(bin), local.WithTempDir(sandboxes), local.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	return newEngineFixture(t, backend, mutate)
}

// closableBackend is a backend the fixture closes at its end.
type closableBackend interface {
	runtimes.Backend
	Close() error
}

// newEngineFixture is a server over the real engine with backend (closed
// at the end) and an on-disk event store.
func newEngineFixture(t testing.TB, backend closableBackend, mutate func(*Config)) *realFixture {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := runtimes.NewRegistry(backend)
	if err != nil {
		t.Fatal(err)
	}
	scfg := eventbus.DefaultConfig()
	scfg.StoreDir = t.TempDir()
	if _, bench := t.(*testing.B); !bench {
		scfg.Sync = eventbus.SyncNever // benchmarks measure the default settings
	}
	store, err := eventbus.OpenStore(scfg, eventbus.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ecfg := actors.DefaultConfig()
	ecfg.SkipGitConfig = true // it would change the host's ~/.gitconfig
	eng, err := actors.NewEngine(ecfg, reg, actors.WithStore(store), actors.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(NewEngineAdapter(eng), cfg, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := eng.Shutdown(ctx); err != nil {
			t.Errorf("engine shutdown: %v", err)
		}
		if err := backend.Close(); err != nil {
			t.Errorf("%s backend close: %v", backend.Name(), err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	return &realFixture{fixture: &fixture{t: t, srv: srv, ts: ts}, eng: eng}
}

// readySession creates a local session and waits until it is RUNNING and
// its runtime READY.
func (f *realFixture) readySession() string {
	f.t.Helper()
	var s Session
	f.mustJSON("POST", "/api/sessions", map[string]any{"runtime": "local"}, 201, &s)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		f.mustJSON("GET", "/api/sessions/"+s.ID, nil, 200, &s)
		if s.Status == actors.StateRunning && s.RuntimeStatus == eventbus.StatusReady {
			return s.ID
		}
		if s.Status == actors.StateError || time.Now().After(deadline) {
			f.t.Fatalf("session never became ready: %+v", s)
		}
	}
}

func TestRealEngineThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real local sandboxes; skipped in -short mode")
	}
	f := newRealFixture(t, nil)
	id := f.readySession()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	ws := f.dial(ctx, id, -1, nil)
	defer ws.CloseNow()

	// wait=true answers with the observation of a real bash.
	code, b, _ := f.do("POST", "/api/sessions/"+id+"/actions?wait=true", `{"action":"run","args":{"command":"echo hello"}}`)
	if code != 200 {
		t.Fatalf("run = %d %s", code, b)
	}
	obs, err := eventbus.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if run, ok := obs.Observation.(*eventbus.CmdOutputObservation); !ok || !strings.Contains(obs.Content, "hello") || run.Metadata.ExitCode != 0 {
		t.Fatalf("observation %s", b)
	}

	// Output streams over the WebSocket before the observation.
	var acc actionAccepted
	f.mustJSON("POST", "/api/sessions/"+id+"/actions", `{"action":"run","args":{"command":"for i in 1 2 3; do echo l$i; sleep 0.4; done"}}`, 202, &acc)
	var streamed strings.Builder
	last := int64(-1)
	for {
		fr, err := readFrame(ctx, t, ws)
		if err != nil {
			t.Fatalf("websocket: %v (streamed %q)", err, streamed.String())
		}
		if fr.Type == FrameOutput {
			if fr.ActionID == acc.ID {
				streamed.WriteString(fr.Data)
			}
			continue
		}
		// Ids increase; runtime status events (Corral's own) are not sent
		// without ?corral_events=true, so there may be gaps.
		if fr.Type != FrameEvent || fr.ID <= last {
			t.Fatalf("frame %+v after id %d", fr, last)
		}
		last = fr.ID
		e, err := eventbus.Unmarshal(fr.Event)
		if err != nil || e.IsCorralExtension() {
			t.Fatalf("event frame is not OpenHands JSON (%v): %s", err, fr.Event)
		}
		if !e.IsAction() && e.Cause != nil && *e.Cause == acc.ID {
			if !strings.Contains(e.Content, "l1") || !strings.Contains(e.Content, "l3") {
				t.Fatalf("observation content %q", e.Content)
			}
			break
		}
	}
	if !strings.Contains(streamed.String(), "l1") || !strings.Contains(streamed.String(), "l2") {
		t.Fatalf("streamed output before the observation: %q", streamed.String())
	}

	// Confirmation: the action waits, confirm lets it run.
	code, b, _ = f.do("POST", "/api/sessions/"+id+"/actions?wait=true", `{"action":"run","args":{"command":"echo confirmed-run","confirmation_state":"awaiting_confirmation"}}`)
	if code != 202 || json.Unmarshal(b, &acc) != nil {
		t.Fatalf("awaiting action with wait = %d %s, want 202", code, b)
	}
	var dec struct {
		EventID int64 `json:"event_id"`
	}
	f.mustJSON("POST", fmt.Sprintf("/api/sessions/%s/actions/%d/confirm", id, acc.ID), nil, 200, &dec)
	if dec.EventID <= acc.ID {
		t.Fatalf("confirm recorded event %d, want after %d", dec.EventID, acc.ID)
	}
	code, b, _ = f.do("POST", fmt.Sprintf("/api/sessions/%s/actions/%d/confirm", id, acc.ID), nil)
	if code < 400 || code >= 500 {
		t.Fatalf("second confirm = %d %s, want a 4xx", code, b)
	}
	waitObs := func(cause int64) string {
		var page eventPage
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			f.mustJSON("GET", fmt.Sprintf("/api/sessions/%s/events?after=%d&type=observation", id, cause), nil, 200, &page)
			for _, raw := range page.Events {
				e, _ := eventbus.Unmarshal(raw)
				if e.Cause != nil && *e.Cause == cause {
					return e.Content
				}
			}
		}
		t.Fatalf("no observation for %d", cause)
		return ""
	}
	if got := waitObs(dec.EventID); !strings.Contains(got, "confirmed-run") {
		t.Fatalf("confirmed action's output %q", got)
	}

	// Files through the sandbox's agent.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	w, _ := mw.CreateFormFile("file", "note.txt")
	_, _ = w.Write([]byte("from the api"))
	mw.Close()
	var ls struct{ Files []string }
	f.mustJSON("GET", "/api/sessions/"+id+"/files", nil, 200, &ls)
	code, b, _ = f.do("POST", "/api/sessions/"+id+"/files?destination=/tmp/corral-api-upload-"+id, buf.Bytes(), "Content-Type", mw.FormDataContentType())
	if code != 201 {
		t.Fatalf("upload = %d %s", code, b)
	}
	defer os.RemoveAll("/tmp/corral-api-upload-" + id)
	f.mustJSON("GET", "/api/sessions/"+id+"/files?path=/tmp/corral-api-upload-"+id, nil, 200, &ls)
	if fmt.Sprint(ls.Files) != "[note.txt]" {
		t.Fatalf("listing after upload: %v", ls.Files)
	}
	code, b, _ = f.do("GET", "/api/sessions/"+id+"/files/download?path=/tmp/corral-api-upload-"+id, nil)
	if code != 200 || !bytes.HasPrefix(b, []byte("PK")) {
		t.Fatalf("download = %d %.100q", code, b)
	}

	// Delete: the stream ends with a closed frame, actions are refused, the
	// events stay readable and replayable.
	var s Session
	f.mustJSON("DELETE", "/api/sessions/"+id, nil, 200, &s)
	if s.Status != actors.StateStopped {
		t.Fatalf("after delete: %+v", s)
	}
	for {
		fr, err := readFrame(ctx, t, ws)
		if err != nil {
			t.Fatalf("websocket after delete: %v", err)
		}
		if fr.Type == FrameClosed {
			break
		}
	}
	code, b, _ = f.do("POST", "/api/sessions/"+id+"/actions", `{"action":"run","args":{"command":"true"}}`)
	if c, _ := errorCode(t, b); code != 409 || c != "not_running" {
		t.Fatalf("action after delete = %d %s", code, b)
	}
	var page eventPage
	f.mustJSON("GET", "/api/sessions/"+id+"/events?limit=1000", nil, 200, &page)
	if len(page.Events) < 6 {
		t.Fatalf("only %d events after delete", len(page.Events))
	}
	// The page and the replay hold the same OpenHands events (runtime
	// status events are Corral's own and left out of both).
	var pageIDs []int64
	for _, raw := range page.Events {
		e, err := eventbus.Unmarshal(raw)
		if err != nil || e.IsCorralExtension() {
			t.Fatalf("listed event is not OpenHands JSON (%v): %s", err, raw)
		}
		pageIDs = append(pageIDs, e.ID)
	}
	ws2 := f.dial(ctx, id, -1, nil)
	defer ws2.CloseNow()
	var replayIDs []int64
	for {
		fr, err := readFrame(ctx, t, ws2)
		if err != nil {
			t.Fatalf("replay of a stopped session: %v after %d events", err, len(replayIDs))
		}
		if fr.Type == FrameClosed {
			break
		}
		replayIDs = append(replayIDs, fr.ID)
	}
	if fmt.Sprint(replayIDs) != fmt.Sprint(pageIDs) {
		t.Fatalf("replayed ids %v, the page has %v", replayIDs, pageIDs)
	}
	if _, err := readFrame(ctx, t, ws2); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after closed frame: %v", err)
	}
	code, b, _ = f.do("GET", "/api/sessions/does-not-exist/events", nil)
	if code != 404 {
		t.Fatalf("events of an unknown session = %d %s", code, b)
	}
}

func TestEngineErrorsMapToAPIStatuses(t *testing.T) {
	tests := []struct {
		from error
		to   error
	}{
		{actors.ErrNotFound, ErrNotFound},
		{actors.ErrNotRunning, ErrNotRunning},
		{actors.ErrAlreadyExists, ErrConflict},
		{actors.ErrInvalid, ErrInvalid},
		{actors.ErrQueueFull, ErrQueueFull},
		{actors.ErrUnknownRuntime, ErrUnknownRuntime},
		{actors.ErrNotSupported, ErrNotSupported},
		{actors.ErrShuttingDown, ErrShuttingDown},
		{actors.ErrUnavailable, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.to.Error(), func(t *testing.T) {
			in := fmt.Errorf("session x: %w", &actors.Error{Code: tt.from.(*actors.Error).Code, Message: "detail for the user"})
			got := mapErr(in)
			if !errors.Is(got, tt.to) || !errors.Is(got, tt.from) || got.Error() != in.Error() {
				t.Fatalf("mapErr(%v) = %v; matches api sentinel %v, engine sentinel %v", in, got, errors.Is(got, tt.to), errors.Is(got, tt.from))
			}
		})
	}
	if mapErr(nil) != nil {
		t.Fatal("mapErr(nil) != nil")
	}
	plain := errors.New("disk on fire")
	if got := mapErr(plain); got != plain {
		t.Fatalf("unmapped error changed: %v", got)
	}
}

func TestReplaySubscriptionDeliversThenEnds(t *testing.T) {
	items := []*eventbus.Item{{ID: 0}, {ID: 1}, {ID: 2}}
	end := fmt.Errorf("stopped: %w", eventbus.ErrStreamClosed)
	sub := newReplaySub(context.Background(), items, end)
	var got []int64
	for it := range sub.C() {
		got = append(got, it.ID)
	}
	if fmt.Sprint(got) != "[0 1 2]" || !errors.Is(sub.Err(), eventbus.ErrStreamClosed) {
		t.Fatalf("got %v, err %v", got, sub.Err())
	}
	sub.Close()

	early := newReplaySub(context.Background(), items, end)
	<-early.C()
	early.Close() // must not hang with items undelivered
	if early.Err() != nil {
		t.Fatalf("closed early: err %v, want nil", early.Err())
	}
}
