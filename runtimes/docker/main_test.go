package docker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"go.uber.org/goleak"
)

// env is the shared fixture of the package's tests: built once in TestMain.
type testEnv struct {
	skip     string // non-empty: no engine reachable and it is not required
	agent    string // static corral-agent binary
	image    string // the minimal image, built (or reused) in TestMain
	stateDir string
	node     string    // node id of every backend the tests make
	fullOnce sync.Once // builds the full image at most once (requireFullImage)
	fullErr  error
}

var env testEnv

func TestMain(m *testing.M) {
	code := setupEnv()
	if code != 0 {
		os.Exit(code)
	}
	code = m.Run()
	sweep()
	if env.stateDir != "" {
		os.RemoveAll(env.stateDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func setupEnv() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("CORRAL_REQUIRE_DOCKER") == "1" {
			fmt.Fprintf(os.Stderr, "Docker Engine required (CORRAL_REQUIRE_DOCKER=1) but unreachable: %v\n", err)
			return 1
		}
		env.skip = fmt.Sprintf("no Docker Engine reachable (%v); set CORRAL_REQUIRE_DOCKER=1 to make this a failure", err)
		return 0
	}
	defer cli.Close()

	env.image = MinimalImage
	if _, err := BuildMinimalImage(ctx, cli, MinimalImageOptions{Tag: env.image, Progress: os.Stderr}); err != nil {
		fmt.Fprintf(os.Stderr, "build minimal image: %v\n", err)
		return 1
	}
	// Short: agent socket paths must fit in 108 bytes.
	env.stateDir, err = os.MkdirTemp("", "cdt")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.node = fmt.Sprintf("corraltest-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	env.agent = os.Getenv("CORRAL_TEST_AGENT")
	if env.agent == "" {
		env.agent = filepath.Join(env.stateDir, "corral-agent")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", env.agent, "./cmd/corral-agent")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build corral-agent (CGO_ENABLED=0 go build ./cmd/corral-agent): %v\n%s", err, out)
			return 1
		}
	}
	return 0
}

// sweep removes every container the tests' node ids labelled, whatever
// happened to the tests.
func sweep() {
	if env.skip != "" || env.node == "" {
		return
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range listTestContainers(ctx, cli, "") {
		cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
}

// listTestContainers lists containers whose node label starts with the
// test node id (tests derive node ids from it), optionally of one node.
func listTestContainers(ctx context.Context, cli client.APIClient, node string) []container.Summary {
	f := filters.NewArgs(filters.Arg("label", LabelManaged+"=true"))
	if node != "" {
		f.Add("label", LabelNode+"="+node)
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil
	}
	var out []container.Summary
	for _, c := range list {
		if strings.HasPrefix(c.Labels[LabelNode], env.node) {
			out = append(out, c)
		}
	}
	return out
}

func needDocker(t testing.TB) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
}

// newBackend makes a Backend for a test with the shared fixture, closed at
// the end of the test.
func newBackend(t testing.TB, opts ...Option) *Backend {
	t.Helper()
	needDocker(t)
	base := []Option{WithAgentBinary(env.agent), WithStateDir(env.stateDir), WithNodeID(env.node), WithDefaultImage(env.image)}
	b, err := New(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
