package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/client"

	"corral/runtimes/docker"
)

const imageUsage = `usage: corral image build [--minimal | --agent] [--tag TAG] [flags]

Builds the sandbox image on the local Docker Engine (nothing is pulled).

  corral image build             Debian (debootstrap minbase + bash, coreutils,
                                 git, python3) from this machine's apt mirror,
                                 tagged ` + docker.DefaultImage + `; needs root and debootstrap
  corral image build --minimal   FROM scratch with static bash + busybox, tagged
                                 ` + docker.MinimalImage + `; needs bash-static and busybox-static
  corral image build --agent     FROM scratch with only the static corral-agent at
                                 /corral-agent, tagged ` + docker.AgentImage + `: the
                                 Kubernetes backend's agent_image (its init container
                                 copies the agent into each pod)

Flags:
`

// runImage implements `corral image ...`. args excludes "image".
func runImage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fs := imageFlags(stderr, new(imageOpts))
		fmt.Fprint(stderr, imageUsage)
		fs.PrintDefaults()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] != "build" {
		fmt.Fprintf(stderr, "corral image: unknown subcommand %q (want: build)\n", args[0])
		return 2
	}
	var o imageOpts
	fs := imageFlags(stderr, &o)
	fs.Usage = func() { fmt.Fprint(stderr, imageUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "corral image build: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.minimal && o.agent {
		fmt.Fprintln(stderr, "corral image build: --minimal and --agent build different images; give one")
		return 2
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintf(stderr, "corral image build: Docker client from the environment: %v\n", err)
		return 1
	}
	defer cli.Close()

	var id string
	switch {
	case o.agent:
		id, err = docker.BuildAgentImage(ctx, cli, docker.AgentImageOptions{
			Tag: o.tagOr(docker.AgentImage), Agent: o.agentBinary, Progress: stdout, Force: o.force,
		})
	case o.minimal:
		id, err = docker.BuildMinimalImage(ctx, cli, docker.MinimalImageOptions{
			Tag: o.tagOr(docker.MinimalImage), Bash: o.bash, Busybox: o.busybox, Progress: stdout, Force: o.force,
		})
	default:
		var include []string
		if o.include != "" {
			include = strings.Split(o.include, ",")
		}
		id, err = docker.BuildFullImage(ctx, cli, docker.FullImageOptions{
			Tag: o.tagOr(docker.DefaultImage), Mirror: o.mirror, Suite: o.suite, Include: include, Progress: stdout,
		})
	}
	if err != nil {
		fmt.Fprintf(stderr, "corral image build: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "built %s %s\n", o.tagOr(o.defaultTag()), id)
	return 0
}

type imageOpts struct {
	tag, bash, busybox, mirror, suite, include, agentBinary string
	minimal, agent, force                                   bool
}

// defaultTag is the tag of the image the flags select.
func (o *imageOpts) defaultTag() string {
	switch {
	case o.agent:
		return docker.AgentImage
	case o.minimal:
		return docker.MinimalImage
	}
	return docker.DefaultImage
}

func (o *imageOpts) tagOr(def string) string {
	if o.tag != "" {
		return o.tag
	}
	return def
}

func imageFlags(stderr io.Writer, o *imageOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("corral image build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.tag, "tag", "", "image tag (default "+docker.DefaultImage+", "+docker.MinimalImage+" with --minimal, "+docker.AgentImage+" with --agent)")
	fs.BoolVar(&o.minimal, "minimal", false, "build the FROM-scratch static bash + busybox image (seconds; no python3)")
	fs.BoolVar(&o.agent, "agent", false, "build the FROM-scratch image holding only the static corral-agent (the Kubernetes backend's [runtime.kubernetes] agent_image)")
	fs.StringVar(&o.agentBinary, "agent-binary", "", "--agent: the static corral-agent to put in it (default: next to corral, then $PATH)")
	fs.BoolVar(&o.force, "force", false, "--minimal, --agent: rebuild even if an up-to-date image exists")
	fs.StringVar(&o.bash, "bash", "/bin/bash-static", "--minimal: static bash binary (Debian bash-static)")
	fs.StringVar(&o.busybox, "busybox", "/bin/busybox", "--minimal: static busybox binary (Debian busybox-static)")
	fs.StringVar(&o.mirror, "mirror", "", "Debian mirror (default: from /etc/apt/sources.list{,.d})")
	fs.StringVar(&o.suite, "suite", "", "Debian suite (default: from the apt sources)")
	fs.StringVar(&o.include, "include", "", "comma-separated packages (default "+strings.Join(docker.DefaultFullImagePackages(), ",")+")")
	return fs
}
