// Package mcptest builds and watches the test MCP server (../testdata/mcpserver)
// for the tests of mcptools and of its users (the sandbox executor, the
// agent). It must never be imported by non-test code.
package mcptest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// BuildTestServer builds the test MCP server (mcptools/testdata/mcpserver)
// into dir with go build and returns its path.
func BuildTestServer(dir string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the mcptools sources")
	}
	bin := filepath.Join(dir, "mcpserver")
	cmd := exec.Command("go", "build", "-o", bin, "../testdata/mcpserver")
	cmd.Dir = filepath.Dir(file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build the test MCP server: %w\n%s", err, out.String())
	}
	return bin, nil
}

// CountProcesses counts the running processes whose argv[0] is path. An
// unreaped (zombie) process has no command line and is not counted.
func CountProcesses(path string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if arg0, _, _ := bytes.Cut(cmdline, []byte{0}); string(arg0) == path {
			n++
		}
	}
	return n
}

// Server builds the test MCP server into t.TempDir() and, at cleanup, fails
// t if any of its processes outlived the test.
func Server(t testing.TB) string {
	t.Helper()
	bin, err := BuildTestServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n := CountProcesses(bin); n != 0 {
			t.Errorf("%d test MCP server processes outlived the test", n)
		}
	})
	return bin
}
