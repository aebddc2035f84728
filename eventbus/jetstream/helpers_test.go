package jetstream

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"corral/eventbus"
	"corral/transport/porttest"
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childServerEnv); cfg != "" {
		runChildServer(cfg) // never returns: the test kills the process
	}
	goleak.VerifyTestMain(m)
}

// freePorts returns n distinct free TCP ports on 127.0.0.1, below the
// ephemeral range so a server restarted on them finds them free.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	return porttest.Ports(t, n)
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// testCluster is n embedded servers routed together (n = 1: standalone).
type testCluster struct {
	t       testing.TB
	cfgs    []ServerConfig
	servers []*Server
}

func startCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 2*n)
	c := &testCluster{t: t}
	var routes []string
	if n > 1 {
		for i := 0; i < n; i++ {
			routes = append(routes, fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]))
		}
	}
	for i := 0; i < n; i++ {
		c.cfgs = append(c.cfgs, ServerConfig{
			NodeID: fmt.Sprintf("n%d", i), ClusterName: "corral-test", Host: "127.0.0.1",
			ClientPort: ports[2*i], RoutePort: ports[2*i+1], Routes: routes,
			StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i)), Logger: quietLogger(),
		})
	}
	c.servers = make([]*Server, n)
	for i := range c.cfgs {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.servers {
			c.stop(i)
		}
	})
	return c
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := StartServer(ctx, c.cfgs[i])
	if err != nil {
		c.t.Fatal(err)
	}
	c.servers[i] = s
}

func (c *testCluster) stop(i int) {
	if c.servers[i] != nil {
		c.servers[i].Shutdown()
		c.servers[i] = nil
	}
}

// url lists every server's client URL, so a Log fails over between them.
func (c *testCluster) url() string {
	u := ""
	for i, cfg := range c.cfgs {
		if i > 0 {
			u += ","
		}
		u += fmt.Sprintf("nats://127.0.0.1:%d", cfg.ClientPort)
	}
	return u
}

func openLog(t testing.TB, url string, opts ...Option) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Open(ctx, url, append([]Option{WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// openStore opens a file store in a fresh directory replicating to r.
func openStore(t testing.TB, r eventbus.Replica, edit func(*eventbus.Config)) *eventbus.Store {
	t.Helper()
	return openStoreAt(t, t.TempDir(), r, edit)
}

func openStoreAt(t testing.TB, dir string, r eventbus.Replica, edit func(*eventbus.Config)) *eventbus.Store {
	t.Helper()
	cfg := eventbus.DefaultConfig()
	cfg.StoreDir = dir
	if edit != nil {
		edit(&cfg)
	}
	opts := []eventbus.StoreOption{eventbus.WithLogger(quietLogger())}
	if r != nil {
		opts = append(opts, eventbus.WithReplica(r))
	}
	st, err := eventbus.OpenStore(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func runAction(cmd string) *eventbus.Event {
	return eventbus.NewAction(eventbus.SourceAgent, &eventbus.CmdRunAction{Command: cmd, ConfirmationState: eventbus.Confirmed, SecurityRisk: eventbus.RiskUnknown})
}

func appendN(t testing.TB, s *eventbus.Stream, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := s.Append(context.Background(), runAction(fmt.Sprintf("echo %d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

func allItems(t testing.TB, s *eventbus.Stream) []*eventbus.Item {
	t.Helper()
	items, err := s.Search(context.Background(), eventbus.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return items
}
