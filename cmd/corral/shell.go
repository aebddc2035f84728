package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"corral/eventbus"
)

const shellUsage = `usage: corral shell [--runtime local|cli|docker] [--workspace DIR] [--config FILE] [-v]

Starts one session and runs each line you type as a command in its bash,
printing its output. Empty line: send nothing; "exit" or EOF
(Ctrl-D) ends the session.

flags:
`

func runShell(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o cliOpts
	fs := cliFlags("corral shell", shellUsage, stderr, &o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	cs, code, err := openCLISession(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "corral shell: %v\n", err)
		return code
	}
	defer cs.close()
	info, _ := cs.eng.Get(ctx, cs.sid)
	fmt.Fprintf(stdout, "corral shell: session %s, %s runtime, workspace %s\n", cs.sid, o.runtime, info.Workspace)
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		fmt.Fprint(stdout, "$ ")
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout)
			return exitInterrupt
		case line, ok = <-lines:
		}
		if !ok || strings.TrimSpace(line) == "exit" {
			fmt.Fprintln(stdout)
			return exitOK
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		id, err := cs.eng.Submit(ctx, cs.sid, eventbus.NewAction(eventbus.SourceUser, &eventbus.CmdRunAction{Command: line, SecurityRisk: eventbus.RiskUnknown}))
		if err != nil {
			fmt.Fprintf(stderr, "corral shell: %v\n", err)
			return exitFailed
		}
		obs, err := cs.eng.WaitObservation(ctx, cs.sid, id)
		if err != nil {
			if ctx.Err() != nil {
				return exitInterrupt
			}
			fmt.Fprintf(stderr, "corral shell: %v\n", err)
			return exitFailed
		}
		fmt.Fprintln(stdout, obs.Content)
	}
}
