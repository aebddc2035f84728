package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral/eventbus"
	"corral/transport/agentwire"
)

// controllerEnv makes the test binary act as a controller process (see
// controllerMain): CORRAL_TEST_CONTROLLER=addr,reqID and the command in
// CORRAL_TEST_CONTROLLER_CMD.
const controllerEnv = "CORRAL_TEST_CONTROLLER"

// controllerMain dials the agent, sends exec reqID, prints "instance ID"
// and then "running" once the first output chunk arrived, and waits for
// the test to kill it.
func controllerMain() int {
	addr, id, _ := strings.Cut(os.Getenv(controllerEnv), ",")
	ctx := context.Background()
	c, err := agentwire.Dial(ctx, addr, token)
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		return 1
	}
	fmt.Printf("instance %s\n", c.AgentInstance())
	first := true
	_, err = c.Execute(ctx, id, runEvent(os.Getenv(controllerEnv+"_CMD")), func(uint64, []byte) {
		if first {
			first = false
			fmt.Println("running")
		}
	})
	fmt.Fprintln(os.Stderr, "controller: Execute returned:", err)
	return 1
}

type controllerProc struct {
	cmd      *exec.Cmd
	instance string
}

// startController runs a controller process that sends cmd as reqID to
// the agent at addr and returns once the agent streams its output.
func startController(t *testing.T, addr, reqID, cmd string) *controllerProc {
	t.Helper()
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), controllerEnv+"="+addr+","+reqID, controllerEnv+"_CMD="+cmd)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	p := &controllerProc{cmd: c}
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for line := range lines {
		if inst, ok := strings.CutPrefix(line, "instance "); ok {
			p.instance = inst
		}
		if line == "running" {
			go func() {
				for range lines {
				}
			}()
			return p
		}
	}
	_ = c.Wait()
	exited = true
	t.Fatalf("the controller process ended before the action ran; stderr:\n%s", stderr.String())
	return nil
}

// kill9 kills the controller as an OOM killer or a crash would: no cancel
// frame, no WebSocket close.
func (p *controllerProc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func countLines(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestActionOutlivesItsControllerAndANewControllerGetsItsResult(t *testing.T) {
	tests := []struct {
		name string
		// the action ends (and the new controller connects after) while no
		// controller is connected
		finishAlone bool
	}{
		{name: "re-sending the id while the action runs attaches to it and replays its output from seq 1"},
		{name: "re-sending the id after the action finished unattended answers from the retained result", finishAlone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			runs, gate, finished := filepath.Join(dir, "runs"), filepath.Join(dir, "gate"), filepath.Join(dir, "finished")
			// The gate file holds the action until the test has checked it
			// survived its controller; sleep 1 then makes it a real wait.
			cmd := fmt.Sprintf(`echo run >> %s; echo started; while [ ! -e %s ]; do sleep 0.05; done; sleep 1; echo done; touch %s`, runs, gate, finished)
			agent := startAgent(t, nil, []string{"CORRAL_AGENT_TOKEN=" + token}, "--listen", "127.0.0.1:0", "--workdir", dir)
			const id = "sess-e2e:ev-3"
			ctl := startController(t, agent.addr, id, cmd)
			ctl.kill9(t)

			if tt.finishAlone {
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				waitUntil(t, "the action finished with no controller connected", func() bool { return exists(finished) })
			} else if exists(finished) {
				t.Fatal("the action finished before it was let go")
			}

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := agentwire.Dial(ctx, agent.addr, token)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.AgentInstance() != ctl.instance {
				t.Fatalf("agent instance changed from %s to %s without a restart", ctl.instance, c.AgentInstance())
			}
			var streamed strings.Builder
			var seqs []uint64
			obs, err := c.Execute(ctx, id, runEvent(cmd), func(seq uint64, d []byte) {
				if len(seqs) == 0 && !tt.finishAlone {
					_ = os.WriteFile(gate, nil, 0o644) // attached: let it finish
				}
				seqs = append(seqs, seq)
				streamed.Write(d)
			})
			if err != nil {
				t.Fatal(err)
			}
			run, ok := obs.Observation.(*eventbus.CmdOutputObservation)
			if !ok || run.Metadata.ExitCode != 0 || !strings.HasSuffix(obs.Content, "done") || !strings.HasPrefix(obs.Content, "started") {
				t.Fatalf("observation %T %q; want exit 0 with started ... done", obs.Observation, obs.Content)
			}
			if len(seqs) == 0 || seqs[0] != 1 || !strings.Contains(streamed.String(), "started") || !strings.Contains(streamed.String(), "done") {
				t.Fatalf("streamed seqs %v %q; want everything from seq 1", seqs, streamed.String())
			}
			if n := countLines(t, runs); n != 1 {
				t.Fatalf("the action ran %d times, want once", n)
			}
			c.Close()
			if code := agent.stop(t); code != 0 {
				t.Fatalf("agent exit %d; stderr:\n%s", code, agent.stderr)
			}
		})
	}
}

func TestRestartedAgentRefusesToResumeARequestItNeverSaw(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(shortDir(t), "a.sock")
	runs := filepath.Join(dir, "runs")
	cmd := fmt.Sprintf(`echo run >> %s; echo started; sleep 30; echo done`, runs)
	env := []string{"CORRAL_AGENT_TOKEN=" + token}
	first := startAgent(t, nil, env, "--listen", "unix://"+sock, "--workdir", dir)
	const id = "sess-e2e:ev-4"
	ctl := startController(t, first.addr, id, cmd)
	ctl.kill9(t)
	if code := first.stop(t); code != 0 { // the sandbox's agent restarts
		t.Fatalf("agent exit %d", code)
	}
	second := startAgent(t, nil, env, "--listen", "unix://"+sock, "--workdir", dir)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := agentwire.Dial(ctx, second.addr, token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.AgentInstance() == ctl.instance {
		t.Fatal("a restarted agent announced the old instance id")
	}
	_, err = c.Resume(ctx, id, nil)
	if !errors.Is(err, agentwire.ErrUnknownRequest) || !strings.Contains(err.Error(), "restarted") || !strings.Contains(err.Error(), id) {
		t.Fatalf("resume on a restarted agent: %v; want ErrUnknownRequest naming the id and the restart", err)
	}
	if n := countLines(t, runs); n != 1 {
		t.Fatalf("the action ran %d times, want once (on the first agent only)", n)
	}
	c.Close()
	if code := second.stop(t); code != 0 {
		t.Fatalf("agent exit %d", code)
	}
}

func TestResultTTLFlagBoundsRetention(t *testing.T) {
	p := startAgent(t, nil, []string{"CORRAL_AGENT_TOKEN=" + token}, "--listen", "127.0.0.1:0", "--workdir", t.TempDir(), "--result-ttl", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := agentwire.Dial(ctx, p.addr, token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Execute(ctx, "short-lived", runEvent("echo hi"), nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the result expired after --result-ttl 1s", func() bool {
		_, err := c.Resume(ctx, "short-lived", nil)
		return errors.Is(err, agentwire.ErrResultExpired)
	})
	c.Close()
	if code := p.stop(t); code != 0 {
		t.Fatalf("agent exit %d", code)
	}
}

func shortDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "ca")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
