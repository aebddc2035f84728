package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"corral/runtimes"
)

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var sessionSeq struct {
	sync.Mutex
	n int
}

func sessionID(t testing.TB) string {
	sessionSeq.Lock()
	defer sessionSeq.Unlock()
	sessionSeq.n++
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("%s-%d", truncate(name, 30), sessionSeq.n)
}

// start starts a sandbox and destroys it when the test ends.
func start(t testing.TB, b *Backend, spec runtimes.Spec) *runtimes.Handle {
	t.Helper()
	if spec.SessionID == "" {
		spec.SessionID = sessionID(t)
	}
	h, err := b.Start(testCtx(t, 2*time.Minute), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Destroy(context.Background(), h); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return h
}

func inspect(t testing.TB, b *Backend, id string) container.InspectResponse {
	t.Helper()
	insp, err := b.cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return insp
}

func TestStartConfiguresContainer(t *testing.T) {
	b := newBackend(t)
	ws := t.TempDir()
	h := start(t, b, runtimes.Spec{
		Env:       map[string]string{"FOO": "bar baz"},
		Workspace: ws,
		WorkDir:   "/workspace",
		Resources: runtimes.Resources{MemoryBytes: 256 << 20, NanoCPUs: 500_000_000, PidsLimit: 200},
		Labels:    map[string]string{LabelUser: "alice", "extra": "x"},
	})
	if h.Backend != "docker" || h.ID == "" || h.Token == "" || h.Workspace != ws {
		t.Fatalf("handle = %+v", h)
	}
	sock := strings.TrimPrefix(h.AgentAddr, "unix://")
	if len(sock) > maxSockPath {
		t.Errorf("socket path %q is %d bytes, over the unix limit", sock, len(sock))
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("agent socket %s: %v %v", sock, fi, err)
	}
	insp := inspect(t, b, h.ID)
	for k, want := range map[string]string{
		LabelManaged: "true", LabelSession: h.SessionID, LabelNode: env.node, LabelUser: "alice", "extra": "x",
	} {
		if got := insp.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if insp.HostConfig.Init == nil || !*insp.HostConfig.Init {
		t.Errorf("HostConfig.Init = %v, want true (zombie reaper)", insp.HostConfig.Init)
	}
	if got := envValue(insp.Config.Env, "FOO"); got != "bar baz" {
		t.Errorf("env FOO = %q", got)
	}
	if got := envValue(insp.Config.Env, tokenEnv); got != h.Token {
		t.Errorf("token env = %q, want the handle's token", got)
	}
	if insp.Config.WorkingDir != "/workspace" || insp.Config.Entrypoint[0] != AgentPath {
		t.Errorf("workdir %q entrypoint %v", insp.Config.WorkingDir, insp.Config.Entrypoint)
	}
	r := insp.HostConfig.Resources
	if r.Memory != 256<<20 || r.MemorySwap != 256<<20 || r.NanoCPUs != 500_000_000 || r.PidsLimit == nil || *r.PidsLimit != 200 {
		t.Errorf("resources = mem %d swap %d cpus %d pids %v", r.Memory, r.MemorySwap, r.NanoCPUs, r.PidsLimit)
	}
	var sawAgent, sawWS bool
	for _, m := range insp.Mounts {
		switch m.Destination {
		case AgentPath:
			sawAgent = !m.RW
		case WorkspaceDir:
			sawWS = m.Source == ws && m.RW
		}
	}
	if !sawAgent || !sawWS {
		t.Errorf("mounts %+v: agent read-only %v, workspace bind rw %v", insp.Mounts, sawAgent, sawWS)
	}
}

func TestNoHostPortsPublished(t *testing.T) {
	b := newBackend(t)
	for _, network := range []string{"", "bridge", "none"} {
		t.Run("network="+network, func(t *testing.T) {
			h := start(t, b, runtimes.Spec{Network: network})
			insp := inspect(t, b, h.ID)
			if len(insp.HostConfig.PortBindings) != 0 || insp.HostConfig.PublishAllPorts {
				t.Errorf("port bindings %v, publish all %v", insp.HostConfig.PortBindings, insp.HostConfig.PublishAllPorts)
			}
			for port, binds := range insp.NetworkSettings.Ports {
				if len(binds) != 0 {
					t.Errorf("port %s published on the host: %v", port, binds)
				}
			}
			want := network
			if want == "" {
				want = "bridge"
			}
			if string(insp.HostConfig.NetworkMode) != want {
				t.Errorf("network mode %q, want %q", insp.HostConfig.NetworkMode, want)
			}
		})
	}
}

func TestDestroyRemovesContainerVolumesAndSocketDir(t *testing.T) {
	b := newBackend(t)
	ctx := testCtx(t, time.Minute)
	h, err := b.Start(ctx, runtimes.Spec{SessionID: sessionID(t)})
	if err != nil {
		t.Fatal(err)
	}
	insp := inspect(t, b, h.ID)
	var vol string
	for _, m := range insp.Mounts {
		if m.Destination == WorkspaceDir {
			vol = m.Name
		}
	}
	if vol == "" {
		t.Fatalf("no anonymous workspace volume in %+v", insp.Mounts)
	}
	if err := b.Destroy(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli.ContainerInspect(ctx, h.ID); err == nil {
		t.Error("container still exists after Destroy")
	}
	if _, err := b.cli.VolumeInspect(ctx, vol); err == nil {
		t.Errorf("anonymous volume %s still exists after Destroy", vol)
	}
	if _, err := os.Stat(h.Meta["run_dir"]); !os.IsNotExist(err) {
		t.Errorf("socket dir %s still exists: %v", h.Meta["run_dir"], err)
	}
	if err := b.Destroy(ctx, h); err != nil {
		t.Errorf("second Destroy: %v, want nil (idempotent)", err)
	}
	if _, err := b.Inspect(ctx, h); !errors.Is(err, runtimes.ErrNotFound) {
		t.Errorf("Inspect after Destroy: %v, want ErrNotFound", err)
	}
	if _, err := b.Recover(ctx, h); !errors.Is(err, runtimes.ErrNotFound) {
		t.Errorf("Recover after Destroy: %v, want ErrNotFound", err)
	}
}

func TestKillFromOutsideFiresWait(t *testing.T) {
	b := newBackend(t)
	h := start(t, b, runtimes.Spec{})
	ctx := testCtx(t, time.Minute)
	ch, err := b.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cli.ContainerKill(ctx, h.ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("Wait channel closed without an Exit")
		}
		if e.Code != 137 || e.Signal != 9 || e.OOMKilled || !strings.Contains(e.Reason, "signal 9") {
			t.Errorf("exit = %+v, want code 137 signal 9", e)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not fire after docker kill")
	}
	if _, ok := <-ch; ok {
		t.Error("Wait channel not closed after its Exit")
	}
	st, err := b.Inspect(ctx, h)
	if err != nil || st.Running || st.Exit == nil || st.Exit.Code != 137 {
		t.Errorf("Inspect = %+v, %v", st, err)
	}
	// A late Wait on a dead sandbox gets the exit at once.
	ch2, err := b.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if e := <-ch2; e.Code != 137 {
		t.Errorf("late Wait = %+v", e)
	}
}

func TestWaitClosesOnContextEndAndDestroy(t *testing.T) {
	b := newBackend(t)
	h := start(t, b, runtimes.Spec{})
	wctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Wait(wctx, h)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, ok := <-ch; ok {
		t.Error("Wait sent an Exit on ctx end, want a bare close")
	}
	ch, err = b.Wait(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Destroy(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Error("Wait sent an Exit on Destroy, want a bare close")
	}
}

func TestStopThenInspect(t *testing.T) {
	b := newBackend(t)
	h := start(t, b, runtimes.Spec{})
	ctx := testCtx(t, time.Minute)
	ch, err := b.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(ctx, h, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Error("Wait sent an Exit after an explicit Stop, want a bare close")
	}
	st, err := b.Inspect(ctx, h)
	if err != nil || st.Running || st.Exit == nil {
		t.Errorf("Inspect after Stop = %+v, %v", st, err)
	}
}

func TestPauseResumeStates(t *testing.T) {
	for _, mode := range []PauseMode{PauseFreeze, PauseStop} {
		t.Run(string(mode), func(t *testing.T) {
			b := newBackend(t, WithPauseMode(mode), WithStopTimeout(time.Second))
			h := start(t, b, runtimes.Spec{})
			ctx := testCtx(t, time.Minute)
			ch, err := b.Wait(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Pause(ctx, h); err != nil {
				t.Fatal(err)
			}
			if st, err := b.Inspect(ctx, h); err != nil || !st.Paused || st.Running || st.Exit != nil {
				t.Errorf("Inspect after Pause = %+v, %v", st, err)
			}
			if err := b.Resume(ctx, h); err != nil {
				t.Fatal(err)
			}
			if st, err := b.Inspect(ctx, h); err != nil || st.Paused || !st.Running {
				t.Errorf("Inspect after Resume = %+v, %v", st, err)
			}
			if err := probeSocket(ctx, h); err != nil {
				t.Errorf("agent after Resume: %v", err)
			}
			select {
			case e, ok := <-ch:
				t.Errorf("Wait fired across pause/resume: %+v %v", e, ok)
			default:
			}
		})
	}
}

func TestMissingImageSaysHowToBuild(t *testing.T) {
	b := newBackend(t)
	_, err := b.Start(testCtx(t, time.Minute), runtimes.Spec{SessionID: sessionID(t), Image: "corral-no-such-image:v0"})
	if err == nil {
		t.Fatal("Start with a missing image succeeded")
	}
	for _, want := range []string{"corral-no-such-image:v0", "corral image build --minimal", "corral image build`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := len(listTestContainers(context.Background(), b.cli, env.node)); n != 0 {
		t.Logf("note: %d containers of this node exist (other tests may be running)", n)
	}
}

func TestUnreachableDaemonSaysWhere(t *testing.T) {
	needDocker(t)
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	_, err := New(context.Background(), WithAgentBinary(env.agent), WithStateDir(env.stateDir), WithNodeID(env.node))
	if err == nil {
		t.Fatal("New succeeded against a missing daemon")
	}
	for _, want := range []string{"unix:///nonexistent/docker.sock", "DOCKER_HOST", "cannot reach the Docker daemon"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	needDocker(t)
	dyn := "/bin/ls" // dynamically linked on Debian
	cases := []struct {
		name string
		opts []Option
		want string
	}{
		{"dynamic agent", []Option{WithAgentBinary(dyn)}, "dynamically linked"},
		{"missing agent", []Option{WithAgentBinary("/nonexistent/corral-agent")}, "CGO_ENABLED=0 go build"},
		{"bad pause mode", []Option{WithPauseMode("sleep")}, `pause mode "sleep"`},
		{"long state dir", []Option{WithStateDir("/tmp/" + strings.Repeat("x", 100))}, "unix socket limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := []Option{WithAgentBinary(env.agent), WithStateDir(env.stateDir), WithNodeID(env.node)}
			b, err := New(context.Background(), append(base, c.opts...)...)
			if err == nil {
				b.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestRecoverAfterRestart(t *testing.T) {
	needDocker(t)
	ctx := testCtx(t, 2*time.Minute)
	b1 := newBackend(t)
	h, err := b1.Start(ctx, runtimes.Spec{SessionID: sessionID(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b1.Destroy(context.Background(), h) })
	b1.Close() // "Corral restarts": the container keeps running

	b2 := newBackend(t)
	for _, tc := range []struct {
		name string
		h    *runtimes.Handle
	}{
		{"by handle", h},
		{"by session label only", &runtimes.Handle{SessionID: h.SessionID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b2.Recover(ctx, tc.h)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != h.ID || got.Token != h.Token || got.AgentAddr != h.AgentAddr || got.SessionID != h.SessionID {
				t.Errorf("recovered %+v, want %+v", got, h)
			}
		})
	}
	// The recovered sandbox is watched by the new backend.
	ch, err := b2.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	b2.cli.ContainerKill(ctx, h.ID, "KILL")
	if e, ok := <-ch; !ok || e.Code != 137 {
		t.Errorf("Wait after Recover = %+v %v", e, ok)
	}
	// Recover restarts an exited sandbox.
	got, err := b2.Recover(ctx, h)
	if err != nil {
		t.Fatalf("Recover of an exited sandbox: %v", err)
	}
	if st, err := b2.Inspect(ctx, got); err != nil || !st.Running {
		t.Errorf("after Recover: %+v %v", st, err)
	}
	if err := probeSocket(ctx, got); err != nil {
		t.Errorf("agent after Recover: %v", err)
	}
}

func TestRecoverThawsPausedSandbox(t *testing.T) {
	b1 := newBackend(t)
	h := start(t, b1, runtimes.Spec{})
	ctx := testCtx(t, time.Minute)
	if err := b1.Pause(ctx, h); err != nil {
		t.Fatal(err)
	}
	b2 := newBackend(t)
	if _, err := b2.Recover(ctx, h); err != nil {
		t.Fatal(err)
	}
	if st, _ := b2.Inspect(ctx, h); !st.Running || st.Paused {
		t.Errorf("state after Recover = %+v", st)
	}
}

func TestParallelStartsLeakNothing(t *testing.T) {
	b := newBackend(t, WithNodeID(env.node+"-par"))
	const n = 50
	ctx := testCtx(t, 5*time.Minute)
	handles := make([]*runtimes.Handle, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			handles[i], errs[i] = b.Start(ctx, runtimes.Spec{SessionID: fmt.Sprintf("par-%d", i)})
			if errs[i] == nil {
				errs[i] = probeSocket(ctx, handles[i])
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("start %d: %v", i, err)
		}
	}
	for _, h := range handles {
		if h != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := b.Destroy(ctx, h); err != nil {
					t.Errorf("Destroy: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	if left := listTestContainers(ctx, b.cli, env.node+"-par"); len(left) != 0 {
		t.Errorf("%d containers leaked", len(left))
	}
	dirs, _ := filepath.Glob(filepath.Join(env.stateDir, "[0-9a-f]*"))
	for _, d := range dirs {
		for _, h := range handles {
			if h != nil && h.Meta["run_dir"] == d {
				t.Errorf("socket dir %s leaked", d)
			}
		}
	}
}

func TestStartFailsCleanlyWhenTheContainerCannotRun(t *testing.T) {
	b := newBackend(t, WithStartTimeout(20*time.Second))
	sid := sessionID(t)
	// A file as working directory makes the container runtime fail the start.
	_, err := b.Start(testCtx(t, time.Minute), runtimes.Spec{SessionID: sid, WorkDir: "/bin/busybox"})
	if err == nil {
		t.Fatal("Start succeeded with a file as working directory")
	}
	if !strings.Contains(err.Error(), sid) {
		t.Errorf("error %q does not name the session", err)
	}
	for _, c := range listTestContainers(context.Background(), b.cli, env.node) {
		if c.Labels[LabelSession] == sid {
			t.Errorf("failed start left container %s", c.ID)
		}
	}
}

// probeSocket checks the agent answers GET /alive on the handle's socket.
func probeSocket(ctx context.Context, h *runtimes.Handle) error {
	sock := strings.TrimPrefix(h.AgentAddr, "unix://")
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}
	return probeAlive(ctx, hc)
}

func TestRecoverAfterTheSocketDirWasLost(t *testing.T) {
	b1 := newBackend(t)
	h := start(t, b1, runtimes.Spec{})
	b1.Close()
	// E.g. the host's /tmp was cleaned while Corral was down.
	if err := os.RemoveAll(h.Meta["run_dir"]); err != nil {
		t.Fatal(err)
	}
	b2 := newBackend(t)
	ctx := testCtx(t, time.Minute)
	got, err := b2.Recover(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := probeSocket(ctx, got); err != nil {
		t.Errorf("agent after Recover: %v", err)
	}
}

func TestRecoverAdoptsAnotherNodesSandboxAndWatchesIt(t *testing.T) {
	b1 := newBackend(t, WithNodeID(env.node+"-a"))
	h := start(t, b1, runtimes.Spec{})
	b2 := newBackend(t, WithNodeID(env.node+"-b"))
	ctx := testCtx(t, time.Minute)
	if _, err := b2.Recover(ctx, h); err != nil {
		t.Fatal(err)
	}
	ch, err := b2.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	b2.cli.ContainerKill(ctx, h.ID, "KILL")
	select {
	case e, ok := <-ch:
		if !ok || e.Code != 137 {
			t.Errorf("exit %+v %v", e, ok)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not fire for an adopted sandbox")
	}
}

func TestCancelledStartsLeaveNothing(t *testing.T) {
	b := newBackend(t, WithNodeID(env.node+"-cancel"))
	var wg sync.WaitGroup
	for i, d := range []time.Duration{time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			h, err := b.Start(ctx, runtimes.Spec{SessionID: fmt.Sprintf("cancel-%d", i)})
			if err == nil { // fast enough: fine, but clean up
				b.Destroy(context.Background(), h)
			}
		}()
	}
	wg.Wait()
	if left := listTestContainers(context.Background(), b.cli, env.node+"-cancel"); len(left) != 0 {
		t.Errorf("%d containers left behind by cancelled starts", len(left))
	}
}

func TestNetworks(t *testing.T) {
	needDocker(t)
	ctx := testCtx(t, 2*time.Minute)
	b0 := newBackend(t)
	extra := "corraltest-net-" + randHex(4)
	if _, err := b0.cli.NetworkCreate(ctx, extra, network.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b0.cli.NetworkRemove(context.Background(), extra) })

	cases := []struct {
		name       string
		opts       []Option
		spec       string
		wantMode   string
		wantAlsoOn string
	}{
		{name: "host network (use_host_network)", spec: "host", wantMode: "host"},
		{name: "named network as mode", spec: extra, wantMode: extra},
		{name: "additional network connected after start", opts: []Option{WithNetwork("bridge", extra)}, wantMode: "bridge", wantAlsoOn: extra},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBackend(t, c.opts...)
			h := start(t, b, runtimes.Spec{Network: c.spec})
			insp := inspect(t, b, h.ID)
			if string(insp.HostConfig.NetworkMode) != c.wantMode {
				t.Errorf("mode %q, want %q", insp.HostConfig.NetworkMode, c.wantMode)
			}
			if c.wantAlsoOn != "" {
				if _, ok := insp.NetworkSettings.Networks[c.wantAlsoOn]; !ok {
					t.Errorf("not connected to %s: %v", c.wantAlsoOn, insp.NetworkSettings.Networks)
				}
			}
			if len(insp.HostConfig.PortBindings) != 0 {
				t.Errorf("ports published: %v", insp.HostConfig.PortBindings)
			}
		})
	}
	t.Run("missing network is a clear error", func(t *testing.T) {
		_, err := b0.Start(ctx, runtimes.Spec{SessionID: sessionID(t), Network: "corraltest-no-such-net"})
		if err == nil || !strings.Contains(err.Error(), "docker network create") {
			t.Errorf("err = %v, want a hint to create the network", err)
		}
	})
}

func TestReadinessByLogs(t *testing.T) {
	b := newBackend(t, WithReadiness(ReadyLogs))
	h := start(t, b, runtimes.Spec{})
	if err := probeSocket(testCtx(t, 10*time.Second), h); err != nil {
		t.Errorf("agent not answering after a logs-readiness Start: %v", err)
	}
}

func TestImageExistsAsksTheLocalEngineOnly(t *testing.T) {
	b := newBackend(t)
	ctx := testCtx(t, 30*time.Second)
	ok, err := b.ImageExists(ctx, env.image)
	if err != nil || !ok {
		t.Fatalf("ImageExists(%s) = %v, %v; want true", env.image, ok, err)
	}
	ok, err = b.ImageExists(ctx, "corral-no-such-image:nope")
	if err != nil || ok {
		t.Fatalf("ImageExists(missing) = %v, %v; want false, nil", ok, err)
	}
}
