package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ctrlC is the byte a terminal sends for Ctrl-C (VINTR).
var ctrlC = []byte{3}

const (
	// chaseFor bounds how long Interrupt keeps watching for commands that
	// bash starts after the Ctrl-C it swallowed (see Interrupt).
	chaseFor = 2 * time.Second
	// chaseTick is how often the terminal's foreground group is looked at
	// meanwhile (an ioctl and a /proc read, tens of microseconds): a SIGINT
	// bash took while it was starting the next command reaches that
	// command about this long after it starts.
	chaseTick = time.Millisecond
	// resendAfter is how long a signalled program may stay in the
	// foreground before it gets its second SIGINT.
	resendAfter = 250 * time.Millisecond
)

// Interrupt sends Ctrl-C to the command running in the session now, as a
// terminal does: the terminal's foreground process group gets SIGINT at
// once. It does not wait for a Run in progress (it may be called from any
// goroutine), so a Run waiting for `sleep 100` returns as soon as bash's
// prompt comes back, with exit code 130 (or whatever the program chose)
// and the suffix of a sent C-c: "[The command completed with exit code
// 130. CTRL+C was sent.]". A command left running by a timed-out Run is
// interrupted the same way; the next Run collects its end.
//
// The signal is sent with kill(2) rather than by typing the Ctrl-C byte:
// the byte would reach the line discipline later, from a kernel worker, and
// its flush of pending input could eat the next command typed after the
// interrupted one ended. Only a program that turned ISIG off (raw mode: it
// reads keys itself, like an editor) is sent the byte, which it reads as
// the key.
//
// A SIGINT that lands while bash itself is the foreground group (between
// two commands of a list or loop: `echo tick; sleep 0.5` in a loop) is
// taken by bash, which defers it and may drop it once the next command
// exits normally; a person would press Ctrl-C again. So for chaseFor after
// the Ctrl-C, until bash's prompt is back, every program that becomes the
// foreground and has not had a SIGINT gets one (see programKey: a child
// that took the signal between fork and exec lost it too), and a program
// still in the foreground resendAfter later gets a second and last one: a
// program that handles SIGINT and keeps running is interrupted at most
// twice, as a person pressing Ctrl-C again would.
//
// It reports whether a command was running. With none (bash at its
// prompt, or the session closed or exited) it sends nothing: a Ctrl-C at
// the prompt would only make bash print another one.
func (s *BashSession) Interrupt() (bool, error) {
	select {
	case <-s.readerDone:
		return false, nil
	default:
	}
	// Under mu: Run takes it before typing a command, so the group
	// signalled here is never the next command's.
	s.mu.Lock()
	select {
	case <-s.closed: // a static shell ending as its command did; Close waits for chases after a mu barrier
		s.mu.Unlock()
		return false, nil
	default:
	}
	if !s.busy {
		s.mu.Unlock()
		return false, nil
	}
	s.intr = true
	raw, err := s.rawMode()
	if err == nil && raw {
		s.mu.Unlock()
		return true, s.write(ctrlC) // the program reads the key itself
	}
	signalled := map[string]*sent{}
	pg, err := s.foreground()
	if err == nil {
		err = syscall.Kill(-pg, syscall.SIGINT)
		if pg != s.shellPgrp {
			signalled[programKey(pg)] = &sent{at: time.Now(), n: 1}
		}
	}
	if err != nil {
		err = fmt.Errorf("bash session: send SIGINT to the foreground process group: %w", err)
	}
	// Every interrupt has its own chase: one still running for an earlier
	// command ends when it sees that command's prompt.
	s.chase.Add(1)
	go s.chaseInterrupt(signalled, s.marks)
	s.mu.Unlock()
	return true, err
}

// chaseInterrupt sends SIGINT to each new foreground program until bash's
// prompt is back (a PS1 marker after marks), the session closes or
// chaseFor has passed.
func (s *BashSession) chaseInterrupt(signalled map[string]*sent, marks int) {
	defer s.chase.Done()
	deadline := time.NewTimer(chaseFor)
	defer deadline.Stop()
	tick := time.NewTicker(chaseTick)
	defer tick.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-s.readerDone:
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
		if !s.chaseOnce(signalled, marks) {
			return
		}
	}
}

// chaseOnce signals the foreground program if it is new; false once the
// chase is over. It holds mu, so no next command can be typed meanwhile.
func (s *BashSession) chaseOnce(signalled map[string]*sent, marks int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.marks != marks || !s.busy {
		return false
	}
	pg, err := s.foreground()
	if err != nil {
		return false
	}
	if pg != s.shellPgrp {
		signalOnce(pg, signalled)
		return true
	}
	// bash holds the terminal but its command has not ended: a child it
	// waits for may run in a group of its own that the terminal no longer
	// names (bash took the terminal back when the rest of a pipeline died).
	// Children older than the command (jobs left in the background) are
	// not the command's and are left alone.
	for _, c := range childrenOf(s.pid) {
		if c.pgrp != s.shellPgrp && c.start >= s.cmdStart {
			signalOnce(c.pgrp, signalled)
		}
	}
	return true
}

// sent records the SIGINTs a program got from one interrupt.
type sent struct {
	at time.Time
	n  int
}

// signalOnce sends SIGINT to group pg unless its program had one; a
// program still in the foreground resendAfter its SIGINT gets a second and
// last one: a signal that reached a child of bash before its exec, or a
// process joining a pipeline's group, can be lost without any trace in
// /proc, and a person would press Ctrl-C again.
func signalOnce(pg int, signalled map[string]*sent) {
	key := programKey(pg)
	got := signalled[key]
	switch {
	case got == nil:
		signalled[key] = &sent{at: time.Now(), n: 1}
	case got.n == 1 && time.Since(got.at) >= resendAfter:
		got.n = 2
	default:
		return
	}
	_ = syscall.Kill(-pg, syscall.SIGINT)
}

// child is a child process: its group and start time (clock ticks since
// boot, /proc/PID/stat field 22).
type child struct {
	pgrp  int
	start uint64
}

// childrenOf lists pid's children from /proc (nil when the kernel does
// not list them).
func childrenOf(pid int) []child {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []child
	for _, f := range strings.Fields(string(data)) {
		stat, err := os.ReadFile("/proc/" + f + "/stat")
		if err != nil {
			continue
		}
		end := bytes.LastIndexByte(stat, ')')
		if end < 0 {
			continue
		}
		// After the command: state(3) ppid(4) pgrp(5) ... starttime(22).
		fs := strings.Fields(string(stat[end+1:]))
		if len(fs) <= 22-3 {
			continue
		}
		pg, err1 := strconv.Atoi(fs[5-3])
		st, err2 := strconv.ParseUint(fs[22-3], 10, 64)
		if err1 == nil && err2 == nil && pg > 1 {
			out = append(out, child{pgrp: pg, start: st})
		}
	}
	return out
}

// bootTicks is now in /proc's clock ticks since boot (USER_HZ, 100 on
// Linux); 0 when unknown, which makes every child count.
func bootTicks() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	ticks := uint64(ts.Sec)*100 + uint64(ts.Nsec)/10_000_000
	if ticks > 0 {
		ticks-- // starttime is rounded down too
	}
	return ticks
}

// rawMode reports whether the terminal has ISIG off: Ctrl-C is then a key
// the foreground program reads, not a signal.
func (s *BashSession) rawMode() (bool, error) {
	rc, err := s.master.SyscallConn()
	if err != nil {
		return false, err
	}
	var tio *unix.Termios
	var ierr error
	if err := rc.Control(func(fd uintptr) { tio, ierr = unix.IoctlGetTermios(int(fd), unix.TCGETS) }); err != nil {
		return false, err
	}
	if ierr != nil {
		return false, ierr
	}
	return tio.Lflag&unix.ISIG == 0, nil
}

// programKey names the program that process group pg runs: the group,
// its leader's command name and code address. It changes when the leader
// execs: a SIGINT that reached a child of bash between fork and exec ran
// bash's handler and was lost with it, so the program it exec'd is
// another one to interrupt. Under ASLR even bash exec'ing bash gets new
// addresses. Without /proc (or once the leader is gone) it is the group.
func programKey(pg int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pg) + "/stat")
	if err != nil {
		return strconv.Itoa(pg)
	}
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return strconv.Itoa(pg)
	}
	key := strconv.Itoa(pg) + "/" + string(data[open+1:end])
	// Fields after the command: state is field 3, startcode field 26.
	if f := strings.Fields(string(data[end+1:])); len(f) > 26-3 {
		key += "/" + f[26-3]
	}
	return key
}

// foreground returns the PTY's foreground process group.
func (s *BashSession) foreground() (int, error) {
	rc, err := s.master.SyscallConn()
	if err != nil {
		return 0, err
	}
	pgrp, ierr := 0, error(nil)
	// Control, not Fd(): Fd would make the master blocking, and Close
	// relies on it being non-blocking to end the reader.
	if err := rc.Control(func(fd uintptr) { pgrp, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPGRP) }); err != nil {
		return 0, err
	}
	if ierr != nil {
		return 0, fmt.Errorf("bash session: find the terminal's foreground process group: %w", ierr)
	}
	if pgrp <= 1 {
		return 0, fmt.Errorf("bash session: the terminal reports foreground process group %d", pgrp)
	}
	return pgrp, nil
}

// letChildrenTakeSIGINT makes sure the shells this process starts can be
// interrupted. A process started in the background by a non-interactive
// shell (`corral serve &` in a script, a CI runner) has SIGINT ignored, and
// an ignored signal stays ignored across fork and exec: bash would pass
// SIG_IGN to every command it runs (it cannot reset it: "signals ignored
// upon entry to the shell cannot be trapped or reset"), and Ctrl-C would
// reach no command. Catching SIGINT instead (into a channel nobody reads,
// so this process still does not react to it) leaves the children the
// default action, since exec resets caught signals. Processes that handle
// SIGINT already (corral, corral-agent) are unchanged.
//
// The kernel's view (/proc/self/status) decides, not signal.Ignored: Go
// clears its "ignored" flag before it installs the handler, so a session
// started concurrently could fork in between; this one waits until the
// kernel has the handler.
func letChildrenTakeSIGINT() {
	if !kernelIgnoresSIGINT() {
		return
	}
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT)
	for i := 0; i < 1000 && kernelIgnoresSIGINT(); i++ {
		time.Sleep(time.Millisecond) // another goroutine is installing it right now
	}
}

// kernelIgnoresSIGINT reads SigIgn of this process.
func kernelIgnoresSIGINT() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return signal.Ignored(syscall.SIGINT)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				break
			}
			return mask&(1<<(uint(syscall.SIGINT)-1)) != 0
		}
	}
	return signal.Ignored(syscall.SIGINT)
}
