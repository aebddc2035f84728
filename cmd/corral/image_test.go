package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

func TestRunImageRejectsBadUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", nil, 2, "usage: corral image build"},
		{"unknown subcommand", []string{"push"}, 2, `unknown subcommand "push"`},
		{"stray argument", []string{"build", "extra"}, 2, `unexpected argument "extra"`},
		{"unknown flag", []string{"build", "--nope"}, 2, "flag provided but not defined: -nope"},
		{"help", []string{"--help"}, 0, "--minimal"},
		{"help names the agent image", []string{"--help"}, 0, "corral image build --agent"},
		{"minimal and agent together", []string{"build", "--minimal", "--agent"}, 2, "--minimal and --agent build different images"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runImage(context.Background(), c.args, &out, &errb)
			if code != c.code || !strings.Contains(errb.String(), c.want) {
				t.Errorf("code %d (want %d), stderr %q (want %q)", code, c.code, errb.String(), c.want)
			}
		})
	}
}

// Without debootstrap the full build names the missing Debian package
// first, before anything that depends on it (the apt-source lookup reads
// debootstrap's scripts and used to blame --mirror/--suite instead).
func TestRunImageBuildWithoutDebootstrapNamesThePackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // a PATH without debootstrap, whatever is installed
	for _, args := range [][]string{{"build"}, {"build", "--mirror", "http://deb.example/debian", "--suite", "bookworm"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runImage(context.Background(), args, &out, &errb)
			want := "corral image build: the Debian package debootstrap is not installed"
			if code != 1 || !strings.HasPrefix(errb.String(), want) || !strings.Contains(errb.String(), "apt-get install -y debootstrap") {
				t.Fatalf("exit %d, stderr %q; want exit 1 and a message starting %q with the install command", code, errb.String(), want)
			}
			if strings.Contains(errb.String(), "--mirror") {
				t.Errorf("the message blames --mirror/--suite: %q", errb.String())
			}
		})
	}
}

func TestRunImageBuildMinimalPrintsTheImageID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		_, err = cli.Ping(ctx)
		cli.Close()
	}
	if err != nil {
		if os.Getenv("CORRAL_REQUIRE_DOCKER") == "1" {
			t.Fatalf("Docker Engine required (CORRAL_REQUIRE_DOCKER=1): %v", err)
		}
		t.Skipf("no Docker Engine reachable (%v); set CORRAL_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	var out, errb bytes.Buffer
	if code := runImage(ctx, []string{"build", "--minimal"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	last := strings.TrimSpace(out.String())
	last = last[strings.LastIndexByte(last, '\n')+1:]
	if !strings.HasPrefix(last, "built corral-sandbox:minimal sha256:") {
		t.Errorf("last line %q, want \"built corral-sandbox:minimal sha256:...\"", last)
	}
}

// TestRunImageBuildAgentPrintsTheImageID: `corral image build --agent`
// builds the agent image (under a test tag) from --agent-binary, and a
// missing binary is a clear error, exit 1.
func TestRunImageBuildAgentPrintsTheImageID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	missing := filepath.Join(t.TempDir(), "corral-agent")
	if code := runImage(ctx, []string{"build", "--agent", "--agent-binary", missing}, &out, &errb); code != 1 || !strings.Contains(errb.String(), missing) || !strings.Contains(errb.String(), "CGO_ENABLED=0 go build") {
		t.Fatalf("missing --agent-binary: exit %d, stderr %q; want exit 1 naming %s and how to build it", code, errb.String(), missing)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("CORRAL_REQUIRE_DOCKER") == "1" {
			t.Fatalf("Docker Engine required (CORRAL_REQUIRE_DOCKER=1): %v", err)
		}
		t.Skipf("no Docker Engine reachable (%v); set CORRAL_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	tag := fmt.Sprintf("corral-agent-test:%d", time.Now().UnixNano())
	t.Cleanup(func() {
		cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true})
		cli.Close()
	})
	agent := buildAgent(t)
	out.Reset()
	errb.Reset()
	if code := runImage(ctx, []string{"build", "--agent", "--agent-binary", agent, "--tag", tag}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	last := strings.TrimSpace(out.String())
	last = last[strings.LastIndexByte(last, '\n')+1:]
	if !strings.HasPrefix(last, "built "+tag+" sha256:") {
		t.Errorf("last line %q, want \"built %s sha256:...\"", last, tag)
	}
}
