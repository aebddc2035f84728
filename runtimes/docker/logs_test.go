package docker

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"corral/runtimes"
)

// TestLogsFollowAKilledContainerToItsEndThenAreGone reads the container's
// log (the agent's start line, stamped by Docker), follows it while the
// container is killed from outside: the stream delivers what is left and
// ends by itself. After Destroy the log is runtimes.ErrNotFound.
func TestLogsFollowAKilledContainerToItsEndThenAreGone(t *testing.T) {
	b := newBackend(t)
	h := start(t, b, runtimes.Spec{})
	ctx := testCtx(t, time.Minute)

	// The agent is reachable before Docker has necessarily copied its
	// stderr into the container log: read until the start line is there.
	var all []byte
	for !strings.Contains(string(all), "corral-agent started") {
		if ctx.Err() != nil {
			t.Fatalf("logs = %q; want the agent's start line", all)
		}
		rc, err := b.Logs(ctx, h, runtimes.LogOptions{Tail: -1})
		if err != nil {
			t.Fatal(err)
		}
		all, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read logs: %v", err)
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(all), "\n"), "\n") {
		stamp, _, _ := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, stamp); err != nil {
			t.Errorf("line %q has no RFC 3339 timestamp: %v", l, err)
		}
	}

	follow, err := b.Logs(ctx, h, runtimes.LogOptions{Follow: true, Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	rd := bufio.NewReader(follow)
	if _, err := rd.ReadString('\n'); err != nil { // the stream is open
		t.Fatalf("followed log: no first line: %v", err)
	}
	if err := b.cli.ContainerKill(ctx, h.ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rd); err != nil {
		t.Fatalf("followed log of a killed container: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the followed log did not end when the container died")
	}

	if err := b.Destroy(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Logs(ctx, h, runtimes.LogOptions{Tail: -1}); !errors.Is(err, runtimes.ErrNotFound) {
		t.Fatalf("Logs after Destroy = %v, want runtimes.ErrNotFound", err)
	}
}
