package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the pause binary: with this variable set,
// TestMain runs pause (announcing on stdout when its signals are caught)
// instead of the tests.
const helperEnv = "CORRAL_PAUSE_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		run(func() { fmt.Println("ready") })
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPauseExitsZeroOnStopSignal(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{
		{"SIGTERM ends it with 0", syscall.SIGTERM},
		{"SIGINT ends it with 0", syscall.SIGINT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"=1")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatalf("start pause: %v", err)
			}
			if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("pause's first line: %q, %v; want \"ready\"", line, err)
			}
			// A SIGCHLD must not end it: it only reaps.
			if err := cmd.Process.Signal(syscall.SIGCHLD); err != nil {
				t.Fatalf("send SIGCHLD: %v", err)
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatalf("send %v: %v", tc.sig, err)
			}
			err = cmd.Wait()
			if ctx.Err() != nil {
				t.Fatalf("pause did not exit within 30 s of %v", tc.sig)
			}
			if err != nil {
				t.Fatalf("pause ended with %v after %v, want exit status 0", err, tc.sig)
			}
		})
	}
}

func TestReapCollectsEveryExitedChild(t *testing.T) {
	// Children started without being waited for: once they have exited
	// (waitid with WNOWAIT leaves them zombies), one reap must collect all.
	var pids []int
	for i := 0; i < 3; i++ {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
		if err != nil {
			t.Fatalf("fork /bin/true: %v", err)
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
			t.Fatalf("waitid %d: %v", pid, err)
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			t.Fatalf("child %d: no zombie to reap before reap(): %v", pid, err)
		}
	}
	reap()
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("child %d still in /proc after reap (zombie left)", pid)
		}
	}
}
