package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"corral/actors"
	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/local"
)

// serveStore runs a server over the real engine (local runtime) on the
// event store in dir, as `corral serve` does; stop shuts it down cleanly
// (sessions stopped, store closed) so another can take the store.
func serveStore(t *testing.T, dir string) (ts *httptest.Server, stop func()) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sandboxes, err := os.MkdirTemp("", "capi-") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	backend, err := local.New(local.WithAgentBinary(buildAgent(t)), local.WithTempDir(sandboxes), local.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := runtimes.NewRegistry(backend)
	if err != nil {
		t.Fatal(err)
	}
	scfg := eventbus.DefaultConfig()
	scfg.StoreDir, scfg.Sync = dir, eventbus.SyncNever
	store, err := eventbus.OpenStore(scfg, eventbus.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ecfg := actors.DefaultConfig()
	ecfg.SkipGitConfig = true
	eng, err := actors.NewEngine(ecfg, reg, actors.WithStore(store), actors.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(NewEngineAdapter(eng), DefaultConfig(), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ts = httptest.NewServer(srv)
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		srv.Close()
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := eng.Shutdown(ctx); err != nil {
			t.Errorf("engine shutdown: %v", err)
		}
		for _, err := range []error{backend.Close(), store.Close(), os.RemoveAll(sandboxes)} {
			if err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return ts, stop
}

// TestBrowserListsSessionsAfterARestart: after the server restarts on the
// same store, the page lists the session with its node and status, shows
// its terminal history, and Start runs it again.
func TestBrowserListsSessionsAfterARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	ts, stop := serveStore(t, dir)
	f := &fixture{t: t, ts: ts}
	var s Session
	f.mustJSON("POST", "/api/sessions", map[string]any{"runtime": "local"}, 201, &s)
	f.mustJSON("POST", "/api/sessions/"+s.ID+"/actions?wait=true", map[string]any{"action": "run", "args": map[string]any{"command": "echo before-restart"}}, 200, nil)
	stop()

	ts, _ = serveStore(t, dir)
	c := startChromium(t, ctx)
	c.navigate(ctx, ts.URL+"/")
	host, _ := os.Hostname()
	waitTrue(ctx, t, c, "the stored session listed with its node and status", fmt.Sprintf(
		`document.readyState === "complete" && [...document.querySelectorAll("#sessions li")].some(li => li.dataset.id === %q && li.querySelector(".badge").textContent === "STOPPED" && li.querySelector(".meta").textContent.startsWith(%q))`,
		s.ID, host+" · local"))
	c.eval(ctx, fmt.Sprintf(`document.querySelector('#sessions li[data-id=%q]').click(); true`, s.ID))
	waitTrue(ctx, t, c, "its terminal history", `document.getElementById("term").innerText.includes("$ echo before-restart\nbefore-restart\n[The command completed with exit code 0.]")`)
	waitTrue(ctx, t, c, "Start enabled", `!document.getElementById("sv-start").disabled`)
	c.eval(ctx, `document.getElementById("sv-start").click(); true`)
	waitTrue(ctx, t, c, "the session running and live again", `document.getElementById("sv-status").textContent.startsWith("RUNNING") && document.getElementById("sv-conn").textContent === "live"`)
	c.eval(ctx, `document.getElementById("cmd").value = "echo after-restart"; document.getElementById("run-btn").click(); true`)
	waitTrue(ctx, t, c, "a command in the restarted session", `document.getElementById("term").innerText.includes("after-restart\n[The command completed with exit code 0.]")`)
}
