package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"corral/eventbus"
)

// answers maps action id -> the observations whose cause is that id.
func answers(evs []*eventbus.Event) map[int64][]*eventbus.Event {
	m := map[int64][]*eventbus.Event{}
	for _, ev := range evs {
		if !ev.IsAction() && ev.Cause != nil {
			m[*ev.Cause] = append(m[*ev.Cause], ev)
		}
	}
	return m
}

// checkExactlyOne fails unless every runnable action of evs (except those
// still awaiting confirmation) has exactly one observation.
func checkExactlyOne(t *testing.T, evs []*eventbus.Event) {
	t.Helper()
	ans := answers(evs)
	for _, ev := range evs {
		if !ev.IsAction() || !ExpectsObservation(ev) {
			continue
		}
		if n := len(ans[ev.ID]); n != 1 {
			t.Errorf("action %d (%s) has %d observations, want 1; events: %s", ev.ID, ev.Type(), n, describe(evs))
		}
	}
}

func TestNonRunnableActionsFollowRunActionOrder(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	sid := startSession(t, e, SessionSpec{})
	ctx := ctxT(t)
	tests := []struct {
		name    string
		action  eventbus.Action
		want    string // observation type; "" = none
		content string
	}{
		{"think is logged", &eventbus.AgentThinkAction{Thought: "hmm"}, "think", "Your thought has been logged."},
		{"message gets nothing", &eventbus.MessageAction{Content: "hi", SecurityRisk: eventbus.RiskUnknown}, "", ""},
		{"finish gets nothing", &eventbus.AgentFinishAction{}, "", ""},
		{"task view before plan", &eventbus.TaskTrackingAction{Command: "view"}, "task_tracking", `No task list found. Use the "plan" command to create one.`},
		{"task plan", &eventbus.TaskTrackingAction{Command: "plan", TaskList: json.RawMessage(`[{"id":"1","title":"Write code","status":"in_progress","notes":"n1"},{"id":"2","title":"Test","status":"done"}]`)}, "task_tracking", "Task list has been updated with 2 items. Stored in session directory: "},
		{"task view after plan", &eventbus.TaskTrackingAction{Command: "view"}, "task_tracking", "# Task List\n\n1. 🔄 Write code\nn1\n2. ✅ Test\n\n"},
		{"task unknown command", &eventbus.TaskTrackingAction{Command: "drop"}, "task_tracking", "Unknown command: drop"},
		{"rejected run", &eventbus.CmdRunAction{Command: "touch should-not-exist", ConfirmationState: eventbus.Rejected, SecurityRisk: eventbus.RiskUnknown}, "user_rejected", "Action has been rejected by the user! Waiting for further user input."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := runAction(eventbus.SourceAgent, tt.action)
			act.ToolCallMetadata = json.RawMessage(`{"function_name":"f","tool_call_id":"call_1","model_response":{},"total_calls_in_response":1}`)
			_, obs, err := e.Run(ctx, sid, act)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if obs != nil {
					t.Fatalf("got %s observation, want none", obs.Type())
				}
				return
			}
			if obs == nil || obs.Type() != tt.want || !strings.HasPrefix(obs.Content, tt.content) {
				t.Fatalf("got %v, want %s starting %q", obs, tt.want, tt.content)
			}
			if len(obs.ToolCallMetadata) == 0 {
				t.Errorf("tool_call_metadata not copied")
			}
		})
	}
	// A run after all of them still works and the rejected command never ran.
	_, obs, err := e.Run(ctx, sid, cmd("ls should-not-exist 2>&1; echo done"))
	if err != nil || !strings.Contains(obs.Content, "No such file") {
		t.Fatalf("rejected action ran? %v %q", err, obs.Content)
	}
	checkExactlyOne(t, history(t, e, sid))
}

func TestConfirmationFlow(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	sid := startSession(t, e, SessionSpec{})
	ctx := ctxT(t)
	pending := func(c string) int64 {
		id, err := e.Submit(ctx, sid, runAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: c, ConfirmationState: eventbus.AwaitingConfirmation, SecurityRisk: eventbus.RiskUnknown}))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := pending("echo confirmed-ran > confirmed.txt; echo ok")
	b := pending("echo rejected-ran > rejected.txt")
	// A later runnable action runs even while a and b wait (they produce nothing).
	if _, _, err := e.Run(ctx, sid, cmd("true")); err != nil {
		t.Fatal(err)
	}
	if got := answers(history(t, e, sid)); len(got[a]) != 0 || len(got[b]) != 0 {
		t.Fatalf("awaiting actions were answered: %v", got)
	}
	na, err := e.Confirm(ctx, sid, a)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := waitObservation(ctx, e, sid, na)
	if err != nil || obs.Type() != "run" || strings.TrimSpace(obs.Content) != "ok" {
		t.Fatalf("confirmed action: %v %v", obs, err)
	}
	nb, err := e.Reject(ctx, sid, b)
	if err != nil {
		t.Fatal(err)
	}
	obs, err = waitObservation(ctx, e, sid, nb)
	if err != nil || obs.Type() != "user_rejected" || obs.Content != rejectedText {
		t.Fatalf("rejected action: %v %v", obs, err)
	}
	if _, err := e.Confirm(ctx, sid, b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("confirming an already decided action: %v, want ErrNotFound", err)
	}
	evs := history(t, e, sid)
	if st := evs[na].Action.(*eventbus.CmdRunAction).ConfirmationState; st != eventbus.Confirmed {
		t.Fatalf("re-added action state %q", st)
	}
	checkExactlyOne(t, evs)
	info, _ := e.Get(ctx, sid)
	if _, err := os.Stat(filepath.Join(info.Workspace, "rejected.txt")); err == nil {
		t.Fatal("rejected command ran")
	}
}

func TestSetupScriptRunsOnceAndHooksInstall(t *testing.T) {
	ws := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(ws, ".openhands"), 0o755))
	must(t, os.MkdirAll(filepath.Join(ws, ".git", "hooks"), 0o755))
	must(t, os.WriteFile(filepath.Join(ws, ".openhands", "setup.sh"), []byte("echo ran >> setup-count.txt\nexport FROM_SETUP=yes\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(ws, ".openhands", "pre-commit.sh"), []byte("exit 0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(ws, ".git", "hooks", "pre-commit"), []byte("#!/bin/sh\necho old hook\n"), 0o755))
	cfg := testConfig()
	cfg.RuntimeStartupEnvVars = map[string]string{"added_env_var": "added_value"}
	e := newCLIEngine(t, cfg, WithHostEnv([]string{"SANDBOX_ENV_FOOBAR=BAZ", "OTHER=x"}))
	// HOME is the test's own: add_env_vars appends to ~/.bashrc.
	home := t.TempDir()
	sid := startSession(t, e, SessionSpec{Workspace: ws, Env: map[string]string{"QUUX": `abc"def`, "HOME": home}})
	ctx := ctxT(t)
	_, obs, err := e.Run(ctx, sid, cmd(`echo "$FOOBAR $QUUX $ADDED_ENV_VAR $FROM_SETUP"; cat setup-count.txt`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(obs.Content); got != "BAZ abc\"def added_value yes\nran" {
		t.Fatalf("env/setup output %q", got)
	}
	// The persisted line round-trips in a fresh interactive shell.
	rc, err := os.ReadFile(filepath.Join(home, ".bashrc"))
	if err != nil || !strings.Contains(string(rc), `export QUUX='abc"def'`) {
		t.Fatalf(".bashrc = %q, %v", rc, err)
	}
	hook, err := os.ReadFile(filepath.Join(ws, ".git", "hooks", "pre-commit"))
	if err != nil || !strings.Contains(string(hook), hookMarker) {
		t.Fatalf("hook not installed: %q %v", hook, err)
	}
	if old, err := os.ReadFile(filepath.Join(ws, ".git", "hooks", "pre-commit.local")); err != nil || !strings.Contains(string(old), "old hook") {
		t.Fatalf("old hook not kept as pre-commit.local: %q %v", old, err)
	}
	evs := history(t, e, sid)
	var setupRuns int
	for _, ev := range evs {
		if a, ok := ev.Action.(*eventbus.CmdRunAction); ok && a.Command == setupScriptCommand {
			setupRuns++
			if ev.Source != eventbus.SourceEnvironment || !a.Hidden {
				t.Errorf("setup action recorded as %s hidden=%v", ev.Source, a.Hidden)
			}
		}
	}
	if setupRuns != 1 {
		t.Fatalf("setup action recorded %d times, want 1: %s", setupRuns, describe(evs))
	}
	checkExactlyOne(t, evs)
	var statuses []string
	for _, ev := range evs {
		if st, ok := ev.Observation.(*eventbus.RuntimeStatusObservation); ok {
			statuses = append(statuses, st.Status)
		}
	}
	want := []string{eventbus.StatusStartingRuntime, eventbus.StatusRuntimeStarted, eventbus.StatusSettingUpWorkspace, eventbus.StatusSettingUpGitHooks, eventbus.StatusReady}
	if strings.Join(statuses, ",") != strings.Join(want, ",") {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
}

func TestIDsGapFreeUnderConcurrentSessions(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	const sessions, actions = 6, 15
	var wg sync.WaitGroup
	sids := make([]string, sessions)
	for i := range sids {
		sids[i] = startSession(t, e, SessionSpec{})
	}
	for _, sid := range sids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := ctxT(t)
			var ids []int64
			for j := 0; j < actions; j++ { // submitted without waiting: they queue
				id, err := e.Submit(ctx, sid, cmd(fmt.Sprintf("echo %d", j)))
				if err != nil {
					t.Error(err)
					return
				}
				ids = append(ids, id)
			}
			obs, err := waitObservation(ctx, e, sid, ids[len(ids)-1])
			if err != nil || strings.TrimSpace(obs.Content) != fmt.Sprint(actions-1) {
				t.Errorf("last observation %v %v", obs, err)
			}
		}()
	}
	wg.Wait()
	for _, sid := range sids {
		evs := history(t, e, sid)
		for i, ev := range evs {
			if ev.ID != int64(i) {
				t.Fatalf("session %s: event %d has id %d", sid, i, ev.ID)
			}
		}
		checkExactlyOne(t, evs)
		// Observations come in submission order.
		last := int64(-1)
		for _, ev := range evs {
			if ev.Type() == "run" && !ev.IsAction() {
				if *ev.Cause <= last {
					t.Fatalf("observation order broken: cause %d after %d", *ev.Cause, last)
				}
				last = *ev.Cause
			}
		}
	}
}

func TestAdmissionQueue(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSessions, cfg.MaxQueued = 1, 1
	e := newCLIEngine(t, cfg)
	ctx := ctxT(t)
	first := startSession(t, e, SessionSpec{ID: "first"})

	queued := make(chan error, 1)
	go func() {
		_, err := e.CreateSession(ctx, SessionSpec{ID: "second"})
		queued <- err
	}()
	waitFor(t, func() bool {
		info, err := e.Get(ctx, "second")
		return err == nil && info.State == StateQueued && info.QueuePosition == 1
	})
	_, err := e.CreateSession(ctx, SessionSpec{ID: "third"})
	if !errors.Is(err, ErrQueueFull) || !strings.Contains(err.Error(), "admission queue full") || !strings.Contains(err.Error(), "max_queued 1") {
		t.Fatalf("third session: %v, want a clear ErrQueueFull", err)
	}
	if _, err := e.Stop(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("queued session not admitted: %v", err)
	}
	if err := e.WaitReady(ctx, "second"); err != nil {
		t.Fatal(err)
	}
	// A queued create abandoned by its caller leaves the queue.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := e.CreateSession(cctx, SessionSpec{ID: "impatient"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient create: %v", err)
	}
	waitFor(t, func() bool { _, err := e.Get(ctx, "impatient"); return errors.Is(err, ErrNotFound) })
}

func TestCreateSessionRefusals(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	ctx := ctxT(t)
	tests := []struct {
		name string
		spec SessionSpec
		is   error
		msg  string
	}{
		{"unknown runtime names the known ones", SessionSpec{Runtime: "dokcer"}, ErrUnknownRuntime, `unknown runtime "dokcer"; known: cli`},
		{"bad session id", SessionSpec{ID: "a/b"}, ErrInvalid, "use only letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.CreateSession(ctx, tt.spec)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.is, tt.msg)
			}
		})
	}
	t.Run("duplicate id", func(t *testing.T) {
		startSession(t, e, SessionSpec{ID: "dup"})
		if _, err := e.CreateSession(ctx, SessionSpec{ID: "dup"}); !errors.Is(err, ErrAlreadyExists) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("workspace missing", func(t *testing.T) {
		info, err := e.CreateSession(ctx, SessionSpec{Workspace: "/nonexistent/ws"})
		if err != nil {
			t.Fatal(err)
		}
		err = e.WaitReady(ctx, info.ID)
		if err == nil || !strings.Contains(err.Error(), "workspace /nonexistent/ws does not exist") {
			t.Fatalf("WaitReady = %v", err)
		}
		waitFor(t, func() bool { i, err := e.Get(ctx, info.ID); return err == nil && i.State == StateError })
	})
}

func TestStopAnswersQueuedActions(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	sid := startSession(t, e, SessionSpec{})
	ctx := ctxT(t)
	running, err := e.Submit(ctx, sid, cmd("sleep 30"))
	if err != nil {
		t.Fatal(err)
	}
	queued, err := e.Submit(ctx, sid, cmd("echo never"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	info, err := e.Stop(ctx, sid)
	if err != nil || info.State != StateStopped {
		t.Fatalf("Stop: %+v %v", info, err)
	}
	evs := history(t, e, sid)
	ans := answers(evs)
	for _, id := range []int64{running, queued} {
		if len(ans[id]) != 1 || ans[id][0].Observation.(*eventbus.ErrorObservation).ErrorID != ErrIDSessionStopped {
			t.Fatalf("action %d answers: %v (%s)", id, ans[id], describe(evs))
		}
	}
	if st := evs[len(evs)-1].Observation.(*eventbus.RuntimeStatusObservation); st.Status != eventbus.StatusStopped {
		t.Fatalf("last event %s", describe(evs[len(evs)-1:]))
	}
	if _, err := e.Submit(ctx, sid, cmd("true")); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("submit after stop: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
