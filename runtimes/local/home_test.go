package local

import (
	"context"
	"os"
	"strings"
	"testing"

	"corral/eventbus"
	"corral/runtimes"
	"corral/transport/agentwire"
)

func homeOf(t *testing.T, h *runtimes.Handle) string {
	t.Helper()
	ctx := context.Background()
	c, err := agentwire.Dial(ctx, h.AgentAddr, h.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: "echo $HOME", ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
	a.ID = 1
	a.SetHardTimeout(30, false)
	obs, err := c.Execute(ctx, "", a, nil)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(obs.Content)
}

func TestEachSandboxGetsAHomeOfItsOwnUnlessHostHomeIsAsked(t *testing.T) {
	// No WithEnv("HOME=...") here: the backend's default is under test.
	b, err := New(WithAgentBinary(agentBin), WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	h1, err := b.Start(ctx, runtimes.Spec{SessionID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := b.Start(ctx, runtimes.Spec{SessionID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	hostHome, _ := os.UserHomeDir()
	home1, home2 := homeOf(t, h1), homeOf(t, h2)
	if home1 == hostHome || home2 == hostHome || home1 == home2 || home1 == "" {
		t.Fatalf("homes %q and %q (host %q) must be distinct and private", home1, home2, hostHome)
	}
	if err := b.Destroy(ctx, h1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(home1); !os.IsNotExist(err) {
		t.Fatalf("home %s left after Destroy: %v", home1, err)
	}
	_ = b.Destroy(ctx, h2)

	hb, err := New(WithAgentBinary(agentBin), WithTempDir(t.TempDir()), WithHostHome())
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	h3, err := hb.Start(ctx, runtimes.Spec{SessionID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Destroy(ctx, h3)
	if got := homeOf(t, h3); got != os.Getenv("HOME") {
		t.Fatalf("WithHostHome: HOME = %q, want %q", got, os.Getenv("HOME"))
	}
}
