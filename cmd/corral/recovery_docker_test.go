package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"corral/runtimes/docker"
)

// rig is one store and one configuration of a runtime ("local" or
// "docker") for recovery tests with real `corral serve` processes. It
// knows every sandbox the test made: docker containers by a node label
// unique to the test, local agents by a temp_dir unique to the test. At
// cleanup whatever is left is removed, so a failing test leaks nothing.
type rig struct {
	t       *testing.T
	runtime string
	corral  string
	agent   string // the agent binary the configuration names
	store   string
	cfg     string
	node    string // docker: the corral.node label of the test's containers
	tmp     string // local: the agents' temp_dir (socket dirs, workspaces)
	cli     *client.Client
}

type rigOpts struct {
	engine    string // extra [engine] lines
	slowStart bool   // the agent waits 3s before it listens (a slow sandbox start)
}

var rigSeq atomic.Int64

// needDocker returns a client of the local Docker Engine with the minimal
// sandbox image built; it skips when no engine is reachable, and fails
// instead when CORRAL_REQUIRE_DOCKER=1.
func needDocker(t *testing.T) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		if _, err = cli.Ping(ctx); err != nil {
			cli.Close()
		}
	}
	if err != nil {
		if os.Getenv("CORRAL_REQUIRE_DOCKER") == "1" {
			t.Fatalf("Docker Engine required (CORRAL_REQUIRE_DOCKER=1) but unreachable: %v", err)
		}
		t.Skipf("no Docker Engine reachable (%v); set CORRAL_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	t.Cleanup(func() { cli.Close() })
	if _, err := docker.BuildMinimalImage(ctx, cli, docker.MinimalImageOptions{}); err != nil {
		t.Fatalf("build %s: %v", docker.MinimalImage, err)
	}
	return cli
}

func newRig(t *testing.T, runtime string, o rigOpts) *rig {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real serve processes and sandboxes; skipped in -short mode")
	}
	r := &rig{t: t, runtime: runtime}
	if runtime == "docker" {
		r.cli = needDocker(t)
	}
	dir := t.TempDir()
	r.corral, r.agent = buildCorral(t, dir)
	r.store = filepath.Join(dir, "events")
	// Short: agent socket paths must fit in 108 bytes.
	tmp, err := os.MkdirTemp("", "crr")
	if err != nil {
		t.Fatal(err)
	}
	r.tmp = tmp
	r.node = fmt.Sprintf("corralrec-%d-%d", os.Getpid(), rigSeq.Add(1))
	t.Cleanup(r.sweep)
	var volumes string
	if o.slowStart {
		real := r.agent
		inner := real
		if runtime == "docker" {
			volumes = fmt.Sprintf("volumes = [%q]\n", filepath.Dir(real)+":/opt/corral-real:ro")
			inner = "/opt/corral-real/" + filepath.Base(real)
		}
		r.agent = filepath.Join(dir, "slow-agent")
		script := "#!/bin/sh\nsleep 3\nexec " + inner + " \"$@\"\n"
		if err := os.WriteFile(r.agent, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	section := fmt.Sprintf("[runtime.local]\nagent_binary = %q\ntemp_dir = %q\n", r.agent, r.tmp)
	if runtime == "docker" {
		section = fmt.Sprintf("[runtime.docker]\nruntime_container_image = %q\nagent_binary = %q\nnode_id = %q\nstate_dir = %q\n%s",
			docker.MinimalImage, r.agent, r.node, r.tmp, volumes)
	}
	r.cfg = writeServeConfig(t, fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
[engine]
skip_git_config = true
%s
[events]
store_dir = %q
[runtime]
enabled = [%q]
%s`, o.engine, r.store, runtime, section))
	return r
}

// serve starts `corral serve` on the rig's store.
// -v: its log says what it recovered and reaped.
// A failed test shows the log of every serve it ran.
func (r *rig) serve() *serveProc {
	p := startServe(r.t, r.corral, r.cfg, "-v")
	r.t.Cleanup(func() {
		if r.t.Failed() {
			r.t.Logf("serve pid %d log:\n%s", p.cmd.Process.Pid, p.stderr.String())
		}
	})
	return p
}

// create creates a session on the rig's runtime and returns its id.
func (r *rig) create(p *serveProc) string {
	r.t.Helper()
	code, b := p.do("POST", "api/sessions", fmt.Sprintf(`{"runtime":%q}`, r.runtime))
	if code != 201 {
		r.t.Fatalf("create = %d %s", code, b)
	}
	var s struct{ ID string }
	_ = json.Unmarshal(b, &s)
	return s.ID
}

// sandboxes are the ids of the test's sandboxes that exist: containers
// (in any state) with the test's node label, or the pids of processes
// whose command line names the test's temp_dir (agents, or slow-start
// wrappers about to become agents).
func (r *rig) sandboxes() []string {
	r.t.Helper()
	var out []string
	if r.runtime == "docker" {
		list, err := r.cli.ContainerList(context.Background(), container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", "corral.node="+r.node))})
		if err != nil {
			r.t.Fatalf("list containers: %v", err)
		}
		for _, c := range list {
			out = append(out, c.ID)
		}
	} else {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			args := strings.Split(string(raw), "\x00")
			for i, a := range args {
				if a == "--listen" && i+1 < len(args) && strings.Contains(args[i+1], r.tmp+"/") {
					out = append(out, strconv.Itoa(pid))
					break
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// remove destroys a sandbox behind Corral's back: docker rm -f, or
// SIGKILL to the agent's process group.
func (r *rig) remove(id string) {
	r.t.Helper()
	if r.runtime == "docker" {
		if err := r.cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			r.t.Fatalf("docker rm -f %s: %v", id, err)
		}
		return
	}
	pid, err := strconv.Atoi(id)
	if err != nil || pid <= 1 {
		r.t.Fatalf("bad local sandbox id %q", id)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		r.t.Fatalf("kill -9 -%d: %v", pid, err)
	}
	r.waitSandboxes(func(ids []string) bool { return !contains(ids, id) }, "the killed agent to go")
}

// waitSandboxes polls sandboxes until ok holds (processes take a moment
// to be reaped; containers to be removed).
func (r *rig) waitSandboxes(ok func([]string) bool, what string) []string {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ids := r.sandboxes()
		if ok(ids) {
			return ids
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("waiting for %s: sandboxes are %v", what, ids)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// handleOf is the sandbox id the session's durable record names ("" for
// none).
func (r *rig) handleOf(sid string) string {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.store, sid+".meta.json"))
	if err != nil {
		r.t.Fatalf("read the session record: %v", err)
	}
	var rec struct {
		State  string
		Handle *struct{ ID string }
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		r.t.Fatalf("session record %s: %v", data, err)
	}
	if rec.Handle == nil {
		return ""
	}
	return rec.Handle.ID
}

// shutdown ends p as an operator does (SIGTERM) and checks that it stopped
// every session and left no sandbox behind.
func (r *rig) shutdown(p *serveProc) {
	r.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatalf("SIGTERM serve: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			r.t.Errorf("serve exited with %v after SIGTERM; stderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(90 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		r.t.Fatalf("serve did not exit in 90s after SIGTERM; stderr:\n%s", p.stderr.String())
	}
	r.waitSandboxes(func(ids []string) bool { return len(ids) == 0 }, "no sandbox after a clean shutdown")
}

// sweep removes whatever sandbox of the test is left (after a failure).
func (r *rig) sweep() {
	for _, id := range r.sandboxes() {
		if r.runtime == "docker" {
			_ = r.cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		} else if pid, _ := strconv.Atoi(id); pid > 1 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	_ = os.RemoveAll(r.tmp)
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// events are every stored OpenHands event of the session, page after page.
func (p *serveProc) events(sid string) []apiEvent { return p.eventPages(sid, "") }

// eventPages are every stored event of the session that GET /events with
// the extra query (e.g. "corral_events=true") returns, page after page.
func (p *serveProc) eventPages(sid, query string) []apiEvent {
	p.t.Helper()
	var all []apiEvent
	for after := int64(-1); ; {
		code, b := p.do("GET", fmt.Sprintf("api/sessions/%s/events?after=%d&%s", sid, after, query), "")
		if code != 200 {
			p.t.Fatalf("events = %d %s", code, b)
		}
		var page struct {
			Events    []apiEvent `json:"events"`
			HasMore   bool       `json:"has_more"`
			NextAfter int64      `json:"next_after"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			p.t.Fatalf("events body: %v: %s", err, b)
		}
		all = append(all, page.Events...)
		if !page.HasMore {
			return all
		}
		after = page.NextAfter
	}
}

// answersTo are the observations whose cause is id.
func answersTo(evs []apiEvent, id int64) []apiEvent {
	var out []apiEvent
	for _, ev := range evs {
		if ev.Observation != "" && ev.Cause != nil && *ev.Cause == id {
			out = append(out, ev)
		}
	}
	return out
}

func exitCodeOf(ev apiEvent) any {
	md, _ := ev.Extras["metadata"].(map[string]any)
	return md["exit_code"]
}

// waitState polls the session until its status is one of want.
func (p *serveProc) waitState(sid string, want ...string) string {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		s := p.session(sid)
		st := fmt.Sprint(s["status"])
		if contains(want, st) {
			return st
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("session %s is %v, want one of %v; stderr:\n%s", sid, s, want, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDockerServeKilledMidCommandReattachesTheContainerWithItsShellAndOutput(t *testing.T) {
	r := newRig(t, "docker", rigOpts{})
	first := r.serve()
	sid := r.create(first)
	first.waitRunning(sid)
	first.observationOf(sid, first.submit(sid, "export LEFT_BEFORE_CRASH=still-here"))
	container := r.handleOf(sid)
	inflight := first.submit(sid, "sleep 3; echo finished-while-down")
	time.Sleep(700 * time.Millisecond) // let the agent start it
	first.kill()
	if ids := r.sandboxes(); !contains(ids, container) {
		t.Fatalf("the container %s did not outlive serve: %v", container, ids)
	}

	second := r.serve()
	obs := second.observationOf(sid, inflight)
	if obs.Observation != "run" || !strings.Contains(obs.Content, "finished-while-down") {
		t.Fatalf("in-flight action answered with %+v, want its real output", obs)
	}
	if ec := exitCodeOf(obs); ec != float64(0) {
		t.Fatalf("exit code = %v, want 0 (extras %v)", ec, obs.Extras)
	}
	second.waitRunning(sid)
	after := second.submit(sid, "echo $LEFT_BEFORE_CRASH")
	if got := second.observationOf(sid, after); !strings.Contains(got.Content, "still-here") {
		t.Fatalf("the recovered session lost its shell: %q", got.Content)
	}
	if n := len(answersTo(second.events(sid), inflight)); n != 1 {
		t.Fatalf("in-flight action has %d observations, want 1", n)
	}
	if got := r.handleOf(sid); got != container {
		t.Fatalf("session runs in container %s after recovery, want the re-attached %s", got, container)
	}
	if ids := r.sandboxes(); len(ids) != 1 || ids[0] != container {
		t.Fatalf("containers after recovery = %v, want only %s", ids, container)
	}
	r.shutdown(second)
}

// execProc is a real `corral exec` process.
type execProc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan error
}

func startExec(t *testing.T, r *rig, command string) *execProc {
	t.Helper()
	cmd := exec.Command(r.corral, "exec", "--runtime", "docker", "--config", r.cfg)
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"action":"run","args":{"command":%q}}`+"\n", command))
	e := &execProc{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-e.done
		e.done <- nil
	})
	return e
}

func (e *execProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.done:
		e.done <- err
		return err
	case <-time.After(2 * time.Minute):
		t.Fatalf("exec did not end in 2 minutes; stderr:\n%s", e.stderr.String())
		return nil
	}
}

func TestDockerServeLeavesALiveExecsContainerAloneAndReapsADeadExecs(t *testing.T) {
	r := newRig(t, "docker", rigOpts{})
	// The serve runs on its own store; exec has an ephemeral one.
	cases := []struct {
		name    string
		killed  bool // exec is killed with SIGKILL before serve starts
		wantRun bool // its container is still there once serve is up
	}{
		{name: "live exec is not touched", killed: false, wantRun: true},
		{name: "dead exec's container is reaped", killed: true, wantRun: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startExec(t, r, "sleep 8; echo exec-done")
			ids := r.waitSandboxes(func(ids []string) bool { return len(ids) == 1 }, "the exec's container")
			if c.killed {
				_ = e.cmd.Process.Signal(syscall.SIGKILL)
				_ = e.wait(t)
				if got := r.sandboxes(); !contains(got, ids[0]) {
					t.Fatalf("the killed exec's container %s is already gone: %v", ids[0], got)
				}
			}
			p := r.serve() // reaps at start, before it prints its URL
			got := r.sandboxes()
			if contains(got, ids[0]) != c.wantRun {
				t.Fatalf("after serve started: containers %v, exec's %s there = %v, want %v; serve stderr:\n%s",
					got, ids[0], contains(got, ids[0]), c.wantRun, p.stderr.String())
			}
			if !c.killed {
				if err := e.wait(t); err != nil {
					t.Fatalf("exec: %v; stderr:\n%s", err, e.stderr.String())
				}
				if out := e.stdout.String(); !strings.Contains(out, "exec-done") || !strings.Contains(out, `"exit_code": 0`) && !strings.Contains(out, `"exit_code":0`) {
					t.Fatalf("exec's observation lacks its output or exit code 0:\n%s", out)
				}
			}
			r.shutdown(p)
		})
	}
}
