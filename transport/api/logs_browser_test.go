package api

import (
	"context"
	"testing"
	"time"
)

// TestBrowserLogsTabFollowsUntilTheSandboxStops opens the Logs tab of a
// real local session in Chromium: the agent's start line shows, stamped;
// stopping the session ends the followed log with the server's end line.
func TestBrowserLogsTabFollowsUntilTheSandboxStops(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	base := newRealFixture(t, nil).ts.URL
	c := startChromium(t, ctx)
	c.navigate(ctx, base+"/")
	waitTrue(ctx, t, c, "the page to load", `document.readyState === "complete" && !!document.getElementById("new-session-btn")`)
	c.eval(ctx, `document.getElementById("new-runtime").value = "local"; document.getElementById("new-session-btn").click(); true`)
	waitTrue(ctx, t, c, "the session running", `document.getElementById("sv-status").textContent.startsWith("RUNNING") && document.getElementById("sv-conn").textContent === "live"`)
	// An observation means the agent is up and has logged its start.
	c.eval(ctx, `document.getElementById("cmd").value = "true"; document.getElementById("run-btn").click(); true`)
	waitTrue(ctx, t, c, "the command's observation", `document.querySelectorAll("#log .ev.obs").length > 0`)

	c.eval(ctx, `document.querySelector('.tab[data-tab="logs"]').click(); true`)
	waitTrue(ctx, t, c, "the agent's start line, stamped, in the Logs tab",
		`/^\d{4}-\d\d-\d\dT[\d:.]+Z .*corral-agent started/m.test(document.getElementById("logs-out").textContent) && document.getElementById("logs-status").textContent === "following…"`)
	c.eval(ctx, `document.getElementById("sv-stop").click(); true`)
	waitTrue(ctx, t, c, "the end line after the stop",
		`document.getElementById("logs-out").textContent.endsWith("corral: end of logs: the sandbox stopped\n") && document.getElementById("logs-status").textContent === "ended"`)
	if errText := string(c.eval(ctx, `document.getElementById("cmd-error").textContent`)); errText != `""` {
		t.Fatalf("the UI shows an error: %s", errText)
	}
}
