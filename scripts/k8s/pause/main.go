// Command pause is the testbed's pod sandbox ("infra") container: the
// process that holds a pod's namespaces open while its containers come and
// go. The testbed has no registry to pull registry.k8s.io/pause from, so
// scripts/k8s/up.sh builds this static binary into a FROM-scratch image
// tagged registry.k8s.io/pause:3.10 and imports it into the cluster's
// containerd.
//
// It does what the upstream pause does: wait for SIGTERM or SIGINT and exit
// 0, and, being PID 1 when a pod shares its process namespace, reap every
// zombie re-parented to it. It must never exit on its own, print on a
// healthy path, or leave a zombie unreaped.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("corral testbed pause 3.10")
		return
	}
	run(nil)
}

// run waits for SIGTERM or SIGINT, reaping children on every SIGCHLD, and
// returns then (main exits 0: stopping the sandbox is the normal end of a
// pod). ready, if set, is called once the signals are caught (tests).
func run(ready func()) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	if ready != nil {
		ready()
	}
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return
		}
		reap()
	}
}

// reap collects every child that has exited. Signals coalesce, so one
// SIGCHLD may stand for several zombies: loop until none is left.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
