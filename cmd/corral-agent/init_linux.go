package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// initChildEnv marks the agent process started by runInit.
const initChildEnv = "CORRAL_AGENT_INIT_CHILD"

// runInit is what corral-agent does as PID 1 (a container entrypoint): it
// re-executes itself as a child and stays behind as a minimal init that
// forwards signals to that child and reaps every zombie.
//
// Why not reap in the agent itself: orphaned processes are re-parented to
// PID 1 and must be waited for, but a wait4(-1) loop inside the agent would
// also reap the executor's own os/exec and PTY children and steal their exit
// statuses (their Wait would fail with ECHILD and commands would report wrong
// exit codes). With the split, the init's only own child is the agent, so a
// wait4(-1) loop there steals nothing, while the agent keeps exact exit
// statuses for what it starts. The init holds no other state and exits with
// the agent's exit status (128+signal when it was killed).
func runInit(args []string) int {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP,
		syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	env := append(os.Environ(), initChildEnv+"=1")
	pid, err := syscall.ForkExec(exe, append([]string{os.Args[0]}, args...), &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "corral-agent (init): starting the agent: %v\n", err)
		return 1
	}
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			_ = syscall.Kill(pid, sig.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if p <= 0 || err != nil {
				break
			}
			if p == pid {
				// Reap what is left, then exit with the agent's status.
				for {
					if q, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); q <= 0 || err != nil {
						break
					}
				}
				if ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ws.ExitStatus()
			}
		}
	}
	return 1
}
