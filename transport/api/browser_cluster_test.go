package api

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBrowserShowsClusterMembers opens the UI of one member of a two-member
// cluster in headless Chromium: the cluster card lists both members with
// their API and status, and the session list shows each session's owner,
// including the one the other member owns.
func TestBrowserShowsClusterMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := newTestCluster(t, "node-a", "node-b")
	c.sessionOn(t, "node-a", "sa")
	c.sessionOn(t, "node-b", "sb")
	b := startChromium(t, ctx)

	b.navigate(ctx, c.members["node-a"].ts.URL+"/")
	waitTrue(ctx, t, b, "the page to load", `document.readyState === "complete" && !!document.getElementById("cluster")`)
	waitTrue(ctx, t, b, "the cluster card with both members",
		`!document.getElementById("cluster").classList.contains("hidden") && document.querySelectorAll("#cluster-members tr").length === 2`)
	waitTrue(ctx, t, b, "this node named", `document.getElementById("cluster-self").textContent === "this node: node-a"`)
	row := func(id string) string {
		return fmt.Sprintf(`document.querySelector('#cluster-members tr[data-id=%q]')`, id)
	}
	waitTrue(ctx, t, b, "member node-b's API, status and sessions", fmt.Sprintf(
		`(r => !!r && r.querySelector(".api").textContent === %q && r.querySelector(".api").title === %q && r.querySelector(".alive").textContent === "alive" && !r.classList.contains("self"))(%s)`,
		strings.TrimPrefix(c.members["node-b"].ts.URL, "http://"), c.members["node-b"].ts.URL, row("node-b")))
	waitTrue(ctx, t, b, "node-a marked as this member", row("node-a")+`.classList.contains("self")`)
	waitTrue(ctx, t, b, "each session with its owner", `(() => {
		const owner = {};
		for (const li of document.querySelectorAll("#sessions li")) owner[li.dataset.id] = li.querySelector(".node") && li.querySelector(".node").textContent;
		return owner.sa === "@node-a" && owner.sb === "@node-b";
	})()`)
}
