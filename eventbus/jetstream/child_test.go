package jetstream

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childServerEnv carries a ServerConfig (JSON) to a copy of the test binary
// that runs one embedded server until it is killed: the only way to see
// what a kill -9 of a stream leader does, since an in-process Shutdown is
// orderly.
const childServerEnv = "CORRAL_JETSTREAM_CHILD_SERVER"

// runChildServer is the child's whole life: start the server, say so on
// stdout, wait to be killed.
func runChildServer(cfgJSON string) {
	var cfg ServerConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child server: bad config:", err)
		os.Exit(2)
	}
	cfg.Logger = quietLogger()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := StartServer(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child server:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	select {}
}

// childCluster is n servers, each in its own process, routed together.
type childCluster struct {
	cfgs  []ServerConfig
	procs []*child
}

// child is one server process and its stdout.
type child struct {
	cmd *exec.Cmd
	out io.Reader
}

func startChildCluster(t *testing.T, n int) *childCluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]))
	}
	c := &childCluster{}
	for i := range n {
		cfg := ServerConfig{NodeID: fmt.Sprintf("n%d", i), ClusterName: "corral-test", Host: "127.0.0.1",
			ClientPort: ports[2*i], RoutePort: ports[2*i+1], Routes: routes, StoreDir: t.TempDir()}
		c.cfgs = append(c.cfgs, cfg)
		c.procs = append(c.procs, startChild(t, cfg))
	}
	for i, p := range c.procs {
		waitReady(t, p, c.cfgs[i].NodeID)
	}
	return c
}

func startChild(t *testing.T, cfg ServerConfig) *child {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childServerEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	})
	return &child{cmd: cmd, out: out}
}

// waitReady reads the child's stdout until it says it serves.
func waitReady(t *testing.T, c *child, name string) {
	t.Helper()
	sc := bufio.NewScanner(c.out)
	if !sc.Scan() || strings.TrimSpace(sc.Text()) != "ready" {
		t.Fatalf("child server %s did not start (%v)", name, sc.Err())
	}
}

// kill sends SIGKILL to the server named name and reaps it.
func (c *childCluster) kill(t *testing.T, name string) {
	t.Helper()
	for i, cfg := range c.cfgs {
		if cfg.NodeID == name {
			c.procs[i].cmd.Process.Signal(syscall.SIGKILL)
			c.procs[i].cmd.Wait()
			return
		}
	}
	t.Fatalf("no server named %q", name)
}

// urlExcept is the client URL of every server but name.
func (c *childCluster) urlExcept(name string) string {
	var us []string
	for _, cfg := range c.cfgs {
		if cfg.NodeID != name {
			us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", cfg.ClientPort))
		}
	}
	return strings.Join(us, ",")
}
