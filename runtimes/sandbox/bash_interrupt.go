package sandbox

import (
	"bytes"
	"fmt"
	"os"
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
	// meanwhile: a kernel ioctl, so cheap; a loop's next command gets the
	// interrupt within about this long after it starts.
	chaseTick = 5 * time.Millisecond
)

// Interrupt sends Ctrl-C to the command running in the session now, the
// way a person at the terminal does: the byte goes to the PTY master and
// the line discipline signals the foreground process group with SIGINT at
// once. It does not wait for a Run in progress (it may be called from any
// goroutine), so a Run waiting for `sleep 100` returns as soon as bash's
// prompt comes back, with exit code 130 (or whatever the program chose)
// and the suffix of a sent C-c: "[The command completed with exit code
// 130. CTRL+C was sent.]". A command left running by a timed-out Run is
// interrupted the same way; the next Run collects its end.
//
// A Ctrl-C that lands while bash itself is the foreground group (between
// two commands of a list or loop: `echo tick; sleep 0.5` in a loop) is
// taken by bash, which defers it and may drop it once the next command
// exits normally; a person would press Ctrl-C again. So for chaseFor after
// the Ctrl-C, until bash's prompt is back, every program that becomes the
// foreground and has not had a SIGINT gets one (see programKey: a child
// that took the signal between fork and exec lost it too): each program
// is interrupted once, as one Ctrl-C would; a program that handles SIGINT
// and keeps running is not signalled again.
//
// It reports whether a command was running. With none (bash at its
// prompt, or the session closed or exited) it sends nothing: a Ctrl-C at
// the prompt would only make bash print another one.
//
// When the byte cannot be written (the tty's input queue is full of typed
// input nobody reads), the foreground process group is sent SIGINT
// directly.
func (s *BashSession) Interrupt() (bool, error) {
	select {
	case <-s.closed: // a static shell ending as its command did
		return false, nil
	case <-s.readerDone:
		return false, nil
	default:
	}
	s.mu.Lock()
	select {
	case <-s.closed: // checked under mu: Close waits for chases after a mu barrier
		s.mu.Unlock()
		return false, nil
	default:
	}
	if !s.busy {
		s.mu.Unlock()
		return false, nil
	}
	s.intr = true
	startChase := !s.chasing
	if startChase {
		s.chasing = true
		s.chase.Add(1)
	}
	s.mu.Unlock()
	signalled := map[string]bool{}
	if pg, err := s.foreground(); err == nil && pg != s.shellPgrp {
		signalled[programKey(pg)] = true // the Ctrl-C below reaches it
	}
	err := s.sendCtrlC()
	if startChase {
		go s.chaseInterrupt(signalled)
	}
	return true, err
}

// sendCtrlC types Ctrl-C, or signals the foreground group when it cannot.
func (s *BashSession) sendCtrlC() error {
	werr := s.write(ctrlC)
	if werr == nil {
		return nil
	}
	pg, err := s.foreground()
	if err == nil {
		err = syscall.Kill(-pg, syscall.SIGINT)
	}
	if err != nil {
		return fmt.Errorf("bash session: typing Ctrl-C failed (%v) and so did signalling the foreground process group: %w", werr, err)
	}
	return nil
}

// chaseInterrupt sends SIGINT to each new foreground command until bash's
// prompt is back, the session closes or chaseFor has passed.
func (s *BashSession) chaseInterrupt(signalled map[string]bool) {
	defer s.chase.Done()
	defer func() {
		s.mu.Lock()
		s.chasing = false
		s.mu.Unlock()
	}()
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
		s.mu.Lock()
		busy := s.busy
		s.mu.Unlock()
		if !busy {
			return
		}
		pg, err := s.foreground()
		if err != nil {
			return
		}
		if pg == s.shellPgrp {
			continue
		}
		if key := programKey(pg); !signalled[key] {
			signalled[key] = true
			_ = syscall.Kill(-pg, syscall.SIGINT)
		}
	}
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
