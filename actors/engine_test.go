package actors

import (
	"strings"
	"testing"

	"corral/eventbus"
)

func TestRunEchoInProcess(t *testing.T) {
	e := newCLIEngine(t, testConfig())
	sid := startSession(t, e, SessionSpec{})
	_, obs, err := e.Run(ctxT(t), sid, cmd("echo hi"))
	if err != nil {
		t.Fatal(err)
	}
	o, ok := obs.Observation.(*eventbus.CmdOutputObservation)
	if !ok || strings.TrimSpace(obs.Content) != "hi" || o.Metadata.ExitCode != 0 {
		t.Fatalf("observation = %s %q %+v", obs.Type(), obs.Content, obs.Observation)
	}
	if obs.Cause == nil || obs.Source != eventbus.SourceAgent {
		t.Fatalf("cause/source not set: %+v", obs)
	}
	t.Log(describe(history(t, e, sid)))
}
