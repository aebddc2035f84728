package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"corral/eventbus"
	"corral/runtimes"
	"corral/transport/agentwire"
)

// dial connects to a sandbox's agent and closes the client at test end.
func dial(t testing.TB, h *runtimes.Handle) *agentwire.Client {
	t.Helper()
	c, err := agentwire.Dial(testCtx(t, 30*time.Second), h.AgentAddr, h.Token, agentwire.WithGracePeriod(2*time.Second))
	if err != nil {
		t.Fatalf("agentwire.Dial %s: %v", h.AgentAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run executes a bash command through the agent and returns the
// observation's content and exit code.
func run(t testing.TB, c runtimes.AgentConn, cmd string) (string, int) {
	t.Helper()
	obs, err := c.Execute(testCtx(t, time.Minute), "", eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: cmd}), nil)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	out, ok := obs.Observation.(*eventbus.CmdOutputObservation)
	if !ok {
		t.Fatalf("run %q: observation %T (%q), want run output", cmd, obs.Observation, obs.Content)
	}
	return strings.TrimSpace(obs.Content), out.Metadata.ExitCode
}

func TestActionsRunInsideTheSandbox(t *testing.T) {
	b := newBackend(t)
	ws := t.TempDir()
	h := start(t, b, runtimes.Spec{Workspace: ws, Env: map[string]string{"GREETING": "hello from spec"}})
	c := dial(t, h)
	if err := c.Alive(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("Alive: %v", err)
	}
	if out, code := run(t, c, "echo hi"); out != "hi" || code != 0 {
		t.Errorf("echo hi = %q, exit %d", out, code)
	}
	if out, _ := run(t, c, "echo $GREETING"); out != "hello from spec" {
		t.Errorf("spec env = %q", out)
	}
	if out, _ := run(t, c, "pwd"); out != "/workspace" {
		t.Errorf("pwd = %q, want /workspace", out)
	}
	// Sandbox -> host.
	if _, code := run(t, c, "echo from-sandbox > /workspace/out.txt"); code != 0 {
		t.Fatalf("write exit %d", code)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "out.txt")); err != nil || string(b) != "from-sandbox\n" {
		t.Errorf("host sees %q, %v", b, err)
	}
	// Host -> sandbox.
	os.WriteFile(filepath.Join(ws, "in.txt"), []byte("from-host"), 0o644)
	if out, _ := run(t, c, "cat /workspace/in.txt"); out != "from-host" {
		t.Errorf("sandbox reads %q", out)
	}
	// The token is required.
	if _, err := agentwire.Dial(testCtx(t, 10*time.Second), h.AgentAddr, "wrong-token"); err == nil {
		t.Error("Dial with a wrong token succeeded")
	}
}

func TestSpecUserRunsCommands(t *testing.T) {
	b := newBackend(t)
	h := start(t, b, runtimes.Spec{User: "corral"})
	c := dial(t, h)
	if out, _ := run(t, c, "id -u"); out != "1000" {
		t.Errorf("id -u = %q, want 1000 (user corral)", out)
	}
}

func TestEnvVarSurvivesPauseResume(t *testing.T) {
	for _, mode := range []PauseMode{PauseFreeze, PauseStop} {
		t.Run(string(mode), func(t *testing.T) {
			b := newBackend(t, WithPauseMode(mode), WithStopTimeout(time.Second))
			h := start(t, b, runtimes.Spec{})
			c := dial(t, h)
			// What OpenHands' add_env_vars does: the live shell plus ~/.bashrc.
			run(t, c, `export CORRAL_KEPT=survived; touch ~/.bashrc; grep -q "^export CORRAL_KEPT=" ~/.bashrc || echo 'export CORRAL_KEPT="survived"' >> ~/.bashrc`)
			ctx := testCtx(t, time.Minute)
			if err := b.Pause(ctx, h); err != nil {
				t.Fatal(err)
			}
			if err := b.Resume(ctx, h); err != nil {
				t.Fatal(err)
			}
			c.Close()
			c = dial(t, h)
			if out, _ := run(t, c, "echo $CORRAL_KEPT"); out != "survived" {
				t.Errorf("after %s/resume: $CORRAL_KEPT = %q", mode, out)
			}
		})
	}
}

func TestDockerKillMidCommandFiresWait(t *testing.T) {
	b := newBackend(t)
	h := start(t, b, runtimes.Spec{})
	c := dial(t, h)
	ctx := testCtx(t, time.Minute)
	ch, err := b.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Execute(ctx, "", eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: "sleep 30", Blocking: true}), nil)
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // let the command start
	if err := b.cli.ContainerKill(ctx, h.ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	select {
	case e, ok := <-ch:
		if !ok || e.Code != 137 || e.Signal != 9 || e.OOMKilled {
			t.Errorf("exit = %+v (ok %v), want code 137, signal 9", e, ok)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not fire")
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the in-flight command returned no error although its sandbox was killed")
		}
	case <-time.After(30 * time.Second):
		t.Error("the in-flight Execute did not return after the sandbox died")
	}
}

func TestOOMKill(t *testing.T) {
	// `tail` keeps the whole (newline-free) input in memory.
	const hog = "head -c 200m /dev/zero | tail"
	t.Run("policy kill: Wait reports OOMKilled", func(t *testing.T) {
		b := newBackend(t)
		h := start(t, b, runtimes.Spec{Resources: runtimes.Resources{MemoryBytes: 16 << 20}})
		c := dial(t, h)
		ctx := testCtx(t, time.Minute)
		ch, err := b.Wait(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		go c.Execute(ctx, "", eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: hog, Blocking: true}), nil)
		select {
		case e, ok := <-ch:
			if !ok || !e.OOMKilled || !strings.Contains(e.Reason, "out of memory") {
				t.Errorf("exit = %+v (ok %v), want OOMKilled", e, ok)
			}
		case <-ctx.Done():
			t.Fatal("Wait did not fire after the OOM kill")
		}
		st, err := b.Inspect(ctx, h)
		if err != nil || st.Running || st.Exit == nil || !st.Exit.OOMKilled {
			t.Errorf("Inspect = %+v %v", st, err)
		}
	})
	t.Run("policy ignore: only the process dies", func(t *testing.T) {
		b := newBackend(t, WithOOMPolicy(OOMIgnore))
		h := start(t, b, runtimes.Spec{Resources: runtimes.Resources{MemoryBytes: 16 << 20}})
		// The backend's own connection: a cgroup at its memory limit stalls
		// the agent too, and a busy machine makes it slow to answer; the
		// short grace of dial (made for sandboxes that die) would call
		// that a lost agent.
		c, err := b.Connect(testCtx(t, 30*time.Second), h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// Blocking with a long hard timeout: a cgroup at its limit can
		// thrash for longer than the 10 s no-change timeout on a busy
		// machine before the kernel picks its victim.
		long := 50.0
		hogAction := eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: hog, Blocking: true})
		hogAction.Timeout = &long
		obs, err := c.Execute(testCtx(t, time.Minute), "", hogAction, nil)
		if err != nil {
			t.Fatalf("run %q: %v", hog, err)
		}
		if out, ok := obs.Observation.(*eventbus.CmdOutputObservation); !ok || out.Metadata.ExitCode != 137 {
			t.Errorf("observation of the OOM-killed pipeline = %T %q, want exit code 137", obs.Observation, obs.Content)
		}
		if out, _ := run(t, c, "echo still here"); out != "still here" {
			t.Errorf("after the OOM kill: %q", out)
		}
	})
}

// The full image takes minutes to bootstrap, so TestMain does not build it:
// the tests that need it use it when present and, under
// CORRAL_REQUIRE_DOCKER=1 (CI), build it when it is not, so CI always
// checks it. Tests of one run share the build (buildFullOnce).
func requireFullImage(t *testing.T, b *Backend) {
	t.Helper()
	if _, err := b.cli.ImageInspect(testCtx(t, 10*time.Second), DefaultImage); err == nil {
		return
	} else if os.Getenv("CORRAL_REQUIRE_DOCKER") != "1" {
		t.Skipf("%s is not built on this engine and CORRAL_REQUIRE_DOCKER is not 1 (build it with `corral image build`, ~5 min): %v", DefaultImage, err)
	}
	env.fullOnce.Do(func() {
		_, env.fullErr = BuildFullImage(testCtx(t, 20*time.Minute), b.cli, FullImageOptions{})
	})
	if env.fullErr != nil {
		t.Fatalf("build %s: %v", DefaultImage, env.fullErr)
	}
}

func TestFullImageRunsPythonAndGit(t *testing.T) {
	b := newBackend(t)
	requireFullImage(t, b)
	h := start(t, b, runtimes.Spec{Image: DefaultImage})
	c := dial(t, h)
	if out, code := run(t, c, "python3 -c 'print(6*7)'"); out != "42" || code != 0 {
		t.Errorf("python3 = %q, exit %d", out, code)
	}
	if out, code := run(t, c, "git --version"); !strings.HasPrefix(out, "git version") || code != 0 {
		t.Errorf("git = %q, exit %d", out, code)
	}
}
