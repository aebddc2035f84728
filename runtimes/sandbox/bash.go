package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"

	"corral/eventbus"
)

// TimeoutMessageTemplate is OpenHands' TIMEOUT_MESSAGE_TEMPLATE
// (openhands/runtime/utils/bash_constants.py), appended to every timeout
// and "NOT executed" suffix.
const TimeoutMessageTemplate = "You may wait longer to see additional output by sending empty command '', " +
	"send other commands to interact with the current process, " +
	`send keys ("C-c", "C-z", "C-d") to interrupt/kill the previous command before sending your new command, ` +
	"or use the timeout parameter in execute_bash for future commands."

// Texts the agent sees (OpenHands bash.py).
const (
	msgNoPrevLogs       = "ERROR: No previous running command to retrieve logs from."
	msgNoPrevInteract   = "ERROR: No previous running command to interact with."
	continuePrefix      = "[Below is the output of the previous command.]\n"
	msgSessionInterrupt = "Bash session was likely interrupted..."
)

const (
	defaultNoChangeTimeout = 10 * time.Second
	defaultMaxOutputChars  = 30000
	// Bytes kept at each end of a command's output (see outBuf); several
	// times the 15000 characters an observation keeps, even in 4-byte UTF-8.
	keepHeadBytes = 256 << 10
	keepTailBytes = 256 << 10
	// A canonical-mode tty line holds at most 4095 bytes; longer command
	// lines (and lines with tty control characters) are passed to bash
	// through a file instead of being typed.
	maxTypedLine  = 4000
	startTimeout  = 60 * time.Second // ~/.bashrc can be slow (pyenv init waits on a lock)
	writeTimeout  = 5 * time.Second
	killWaitLimit = 5 * time.Second
	killGrace     = 300 * time.Millisecond // between SIGHUP and SIGKILL in Close
	// Hard timeouts at or above this many seconds (about 31 years) count as
	// none, so that the conversion to a Duration cannot overflow.
	maxHardTimeout = 1e9
)

// BashOptions configure a session.
type BashOptions struct {
	WorkDir         string        // initial cwd (must exist); empty = the process's cwd
	User            string        // run as this user (empty = current); when root and User differs, bash starts via `su USER -`
	Env             []string      // extra environment KEY=VALUE
	NoChangeTimeout time.Duration // no-output soft timeout; <=0 means 10s
	MaxOutputChars  int           // observation content limit; <=0 means 30000
}

type cmdStatus int

const (
	statusNone cmdStatus = iota
	statusCompleted
	statusNoChangeTimeout
	statusHardTimeout
)

// BashSession is one interactive bash on its own PTY and session, driven
// with OpenHands' CmdRunAction semantics. Run calls are serialised; Cwd and
// Close may be called at any time from any goroutine.
type BashSession struct {
	opts     BashOptions
	noChange time.Duration
	maxChars int

	cmd    *exec.Cmd
	master *os.File // PTY master, non-blocking so Close unblocks the reader
	pid    int      // bash (or su) pid = session id = process group id
	tmpDir string   // holds the file long commands are sourced from

	runMu  sync.Mutex // serialises Run
	prev   cmdStatus  // guarded by runMu
	hadObs bool       // an observation was already returned for the running command; guarded by runMu

	mu       sync.Mutex // guards the fields below
	out      outBuf
	total    int64  // bytes read from the PTY so far
	marks    int    // "###PS1END###" markers seen in the stream so far
	markTail []byte // last bytes of the stream, to find markers across reads
	cwd      string
	busy     bool // a command or input was typed and no prompt came back since
	intr     bool // Interrupt sent Ctrl-C to the command now running

	cmdStart  uint64         // when the running command was typed, in /proc clock ticks since boot
	shellPgrp int            // bash's own process group, foreground while it waits at its prompt
	chase     sync.WaitGroup // the interrupt chase goroutines

	cbMu sync.Mutex
	cb   func([]byte)

	notify     chan struct{} // output arrived (capacity 1)
	readerDone chan struct{} // the reader goroutine ended (EOF or Close)
	exited     chan struct{} // bash was reaped
	closed     chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// NewBashSession starts bash on a new PTY in its own session, installs the
// PS1 metadata prompt and waits for the first prompt.
func NewBashSession(ctx context.Context, opts BashOptions) (*BashSession, error) {
	s := &BashSession{
		opts:       opts,
		noChange:   opts.NoChangeTimeout,
		maxChars:   opts.MaxOutputChars,
		notify:     make(chan struct{}, 1),
		readerDone: make(chan struct{}),
		exited:     make(chan struct{}),
		closed:     make(chan struct{}),
	}
	if s.noChange <= 0 {
		s.noChange = defaultNoChangeTimeout
	}
	if s.maxChars <= 0 {
		s.maxChars = defaultMaxOutputChars
	}
	s.out = outBuf{headCap: keepHeadBytes, tailCap: keepTailBytes}

	workDir := opts.WorkDir
	if workDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("bash session: no WorkDir given and the current directory is unknown: %w", err)
		}
		workDir = wd
	}
	workDir, err := filepath.Abs(workDir)
	if err != nil {
		return nil, fmt.Errorf("bash session: work dir %q: %w", opts.WorkDir, err)
	}
	if st, err := os.Stat(workDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("bash session: work dir %q is not an existing directory; create it first: %v", workDir, err)
	}
	s.cwd = workDir
	for _, kv := range opts.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envNameRE.MatchString(k) {
			return nil, fmt.Errorf("bash session: environment entry %q is not NAME=VALUE with a valid shell variable name", kv)
		}
	}

	useSu, err := needSu(opts.User)
	if err != nil {
		return nil, err
	}
	var c *exec.Cmd
	if useSu {
		c = exec.Command("su", opts.User, "-")
	} else {
		c = exec.Command("/bin/bash", "-i")
	}
	c.Dir = workDir
	// TERM=dumb: no colour/cursor escapes from well-behaved programs; pagers
	// off so that git & co never wait for a key.
	c.Env = append(os.Environ(), "TERM=dumb", "PAGER=cat", "GIT_PAGER=cat")
	c.Env = append(c.Env, opts.Env...)
	letChildrenTakeSIGINT()
	ptmx, err := pty.StartWithSize(c, &pty.Winsize{Rows: 1000, Cols: 1000})
	if err != nil {
		return nil, fmt.Errorf("bash session: start %s on a pty: %w", c.Path, err)
	}
	s.cmd, s.pid = c, c.Process.Pid
	preferOOMKill(s.pid)
	go func() {
		_ = c.Wait()
		close(s.exited)
	}()
	// pty.Open made the master blocking (it calls Fd()); a blocking read
	// cannot be interrupted by Close, so read through a non-blocking dup.
	s.master, err = nonBlockingDup(ptmx)
	_ = ptmx.Close()
	if err != nil {
		s.killAll()
		<-s.exited
		return nil, fmt.Errorf("bash session: prepare pty master: %w", err)
	}
	go s.readLoop()

	tmp, err := os.MkdirTemp("", "corral-bash-")
	if err == nil {
		s.tmpDir = tmp
		if useSu {
			if u, uerr := user.Lookup(opts.User); uerr == nil {
				var uid, gid int
				fmt.Sscan(u.Uid, &uid)
				fmt.Sscan(u.Gid, &gid)
				_ = os.Chown(tmp, uid, gid)
			}
		}
	}

	if err := s.start(ctx, workDir, useSu); err != nil {
		_ = s.Close()
		return nil, err
	}
	// At its first prompt bash (the login shell under su) is the
	// terminal's foreground group: Interrupt tells it from commands by it.
	if pg, err := s.foreground(); err == nil {
		s.shellPgrp = pg
	} else {
		s.shellPgrp = s.pid
	}
	return s, nil
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func needSu(name string) (bool, error) {
	if name == "" {
		return false, nil
	}
	cur, err := user.Current()
	if err == nil && cur.Username == name {
		return false, nil
	}
	if os.Geteuid() != 0 {
		return false, fmt.Errorf("bash session: cannot run as user %q: switching users needs root and this process runs as uid %d; leave User empty to run as the current user", name, os.Geteuid())
	}
	if _, err := user.Lookup(name); err != nil {
		return false, fmt.Errorf("bash session: user %q: %w", name, err)
	}
	return true, nil
}

func nonBlockingDup(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}

// start sends the setup line and waits for the first PS1 block.
func (s *BashSession) start(ctx context.Context, workDir string, useSu bool) error {
	var b strings.Builder
	// No tty echo and no readline: what we type never shows up in the
	// output, so OpenHands' "remove the echoed command" step is not needed.
	b.WriteString("stty -echo 2>/dev/null; set +o emacs +o vi; ")
	if useSu { // a login shell starts with a clean environment
		for _, kv := range s.opts.Env {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&b, "export %s=%s; ", k, shellQuote(v))
		}
		b.WriteString("export TERM=dumb PAGER=cat GIT_PAGER=cat; ")
	}
	fmt.Fprintf(&b, "cd -- %s; export PS2=''; export PROMPT_COMMAND=%s\r", shellQuote(workDir), shellQuote(promptCommand))
	if err := s.write([]byte(b.String())); err != nil {
		return fmt.Errorf("bash session: send setup: %w", err)
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		blocks := findPS1Blocks(s.out.tail)
		if len(blocks) > 0 {
			s.applyMeta(blocks[len(blocks)-1].meta)
			s.out.reset()
			s.mu.Unlock()
			return nil
		}
		seen := string(bytes.Clone(s.out.tail))
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-s.readerDone:
			return fmt.Errorf("bash session: bash exited during setup; its output: %q", seen)
		case <-timer.C:
			return fmt.Errorf("bash session: no prompt %v after start; output so far: %q", startTimeout, seen)
		case <-ctx.Done():
			return fmt.Errorf("bash session: setup: %w", ctx.Err())
		}
	}
}

// applyMeta records the working directory of a PS1 block. Callers hold mu.
func (s *BashSession) applyMeta(md eventbus.CmdOutputMetadata) {
	if md.WorkingDir != nil && *md.WorkingDir != "" {
		s.cwd = *md.WorkingDir
	}
}

func (s *BashSession) readLoop() {
	defer close(s.readerDone)
	buf := make([]byte, 64<<10)
	norm := make([]byte, 0, 64<<10)
	live := make([]byte, 0, 64<<10)
	var conv crlf
	var prompts ps1Filter // live output never shows the PS1 blocks
	endMarker := []byte(ps1End)
	for {
		n, err := s.master.Read(buf)
		if n > 0 {
			norm = conv.convert(norm[:0], buf[:n])
			// cbMu is held from before the bytes become visible to Run until
			// they are delivered, so Run (whose deferred setCallback(nil)
			// takes cbMu) can never return before the callback saw output
			// it has already counted — the last chunk with the prompt too.
			s.cbMu.Lock()
			s.mu.Lock()
			s.out.write(norm)
			s.total += int64(len(norm))
			marksBefore := s.marks
			// Count end markers in the new bytes, and those straddling the
			// previous read (they start in markTail, end in norm's head).
			s.marks += bytes.Count(norm, endMarker)
			keep := len(endMarker) - 1
			edge := append(s.markTail, norm[:min(keep, len(norm))]...)
			s.marks += bytes.Count(edge, endMarker)
			if len(norm) >= keep {
				s.markTail = append(s.markTail[:0], norm[len(norm)-keep:]...)
			} else {
				s.markTail = append(s.markTail[:0], edge[max(0, len(edge)-keep):]...)
			}
			if s.marks > marksBefore {
				s.busy = false // the prompt is back: nothing runs any more
			}
			s.mu.Unlock()
			live = prompts.write(live[:0], norm)
			if s.cb != nil && len(live) > 0 {
				s.cb(bytes.Clone(live))
			}
			s.cbMu.Unlock()
			select {
			case s.notify <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *BashSession) setCallback(cb func([]byte)) {
	s.cbMu.Lock()
	s.cb = cb
	s.cbMu.Unlock()
}

func (s *BashSession) write(p []byte) error {
	if err := s.master.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err := s.master.Write(p)
	return err
}

// Cwd returns the last known working directory (from the PS1 metadata).
func (s *BashSession) Cwd() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cwd
}

// Close kills bash and every process of its session and process group, and
// waits for them to be reaped. It is idempotent; a Run in progress returns
// promptly with an error observation.
func (s *BashSession) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		// An Interrupt that got mu before this barrier has added its chase
		// (one after it sees closed); the chase ends on closed, before the
		// pids it looks at can be reused.
		s.mu.Lock()
		s.mu.Unlock() //nolint:staticcheck // an empty critical section is the barrier
		s.chase.Wait()
		s.killAll()
		_ = s.master.Close()
		select {
		case <-s.exited:
		case <-time.After(killWaitLimit):
			s.closeErr = fmt.Errorf("bash session: bash (pid %d) not reaped %v after SIGKILL", s.pid, killWaitLimit)
		}
		<-s.readerDone
		if s.tmpDir != "" {
			_ = os.RemoveAll(s.tmpDir)
		}
	})
	return s.closeErr
}

// killAll ends bash's process group and every process in its session or
// below it in the process tree (jobs get their own process groups under job
// control): SIGHUP first, like a closing terminal, so that shells and
// scripts run their exit traps (pyenv's rehash lock, temp files), then
// SIGKILL after a short grace period for whatever is left. Processes that
// left the session and were re-parented (a double-forking daemon) escape, as
// they would a tmux kill-session.
func (s *BashSession) killAll() {
	signalAll := func(sig syscall.Signal) int {
		_ = syscall.Kill(-s.pid, sig)
		victims := sessionProcesses(s.pid)
		for _, p := range victims {
			_ = syscall.Kill(p, sig)
		}
		_ = syscall.Kill(s.pid, sig)
		return len(victims)
	}
	signalAll(syscall.SIGHUP)
	deadline := time.Now().Add(killGrace)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			if len(liveProcesses(sessionProcesses(s.pid))) == 0 {
				return
			}
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 3 {
		if signalAll(syscall.SIGKILL) == 0 {
			break
		}
	}
}

// liveProcesses drops zombies (exited, waiting to be reaped) from pids.
func liveProcesses(pids []int) []int {
	var live []int
	for _, p := range pids {
		if st, ok := procState(p); ok && st != "Z" && st != "X" {
			live = append(live, p)
		}
	}
	return live
}

// procState returns the state letter from /proc/PID/stat.
func procState(pid int) (string, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+3 > len(data) {
		return "", false
	}
	return string(data[i+2 : i+3]), true
}

// sessionProcesses lists processes whose session id is sid or whose
// ancestry reaches sid, from /proc.
func sessionProcesses(sid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	type info struct{ ppid, sid int }
	procs := map[int]info{}
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil || pid <= 0 {
			continue
		}
		ppid, psid, ok := procStat(pid)
		if ok {
			procs[pid] = info{ppid, psid}
		}
	}
	var out []int
	for pid, in := range procs {
		if pid == sid {
			continue
		}
		if in.sid == sid {
			out = append(out, pid)
			continue
		}
		for p, depth := in.ppid, 0; p > 1 && depth < 64; depth++ {
			if p == sid {
				out = append(out, pid)
				break
			}
			p = procs[p].ppid
		}
	}
	return out
}

// procStat returns the parent pid and session id from /proc/PID/stat.
func procStat(pid int) (ppid, sid int, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	var state string
	var pgrp int
	if _, err := fmt.Sscan(string(data[i+1:]), &state, &ppid, &pgrp, &sid); err != nil {
		return 0, 0, false
	}
	return ppid, sid, true
}

// isSpecialKey is OpenHands' _is_special_key: "C-" plus one character.
func isSpecialKey(cmd string) bool {
	c := strings.TrimSpace(cmd)
	return strings.HasPrefix(c, "C-") && utf8.RuneCountInString(c) == 3
}

// controlByte maps the key of "C-<key>" to the byte a terminal sends.
func controlByte(key byte) ([]byte, bool) {
	switch {
	case key >= 'a' && key <= 'z':
		return []byte{key - 'a' + 1}, true
	case key >= 'A' && key <= 'Z':
		return []byte{key - 'A' + 1}, true
	case key == '@' || key == ' ' || key == '2':
		return []byte{0}, true
	case key == '[' || key == '3':
		return []byte{27}, true
	case key == '\\' || key == '4':
		return []byte{28}, true
	case key == ']' || key == '5':
		return []byte{29}, true
	case key == '^' || key == '6':
		return []byte{30}, true
	case key == '_' || key == '/' || key == '7':
		return []byte{31}, true
	case key == '?' || key == '8':
		return []byte{127}, true
	}
	return nil, false
}

// needsFile reports whether cmd cannot be typed on a canonical-mode tty:
// a line longer than the tty's line buffer, or control characters the line
// discipline would act on.
func needsFile(cmd string) bool {
	for _, line := range strings.Split(cmd, "\n") {
		if len(line) > maxTypedLine {
			return true
		}
	}
	for i := 0; i < len(cmd); i++ {
		if c := cmd[i]; (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

// Run executes one CmdRunAction with OpenHands semantics (reference §6.4).
// It runs every action in this session: is_static is the caller's job (start
// a fresh session in the action's cwd, Run, Close — the executor does).
// timeout is the action's hard timeout in seconds (nil or <=0 = none).
// onOutput, if non-nil, receives output bytes as they arrive (CRLF already
// turned into LF, PS1 blocks included); it is called from the session's
// reader goroutine, must not block for long, and is never called after Run
// returns. Run returns a "run" observation, or an "error" observation for
// the multiple-commands refusal and for a session that is closed or died.
func (s *BashSession) Run(ctx context.Context, a *eventbus.CmdRunAction, timeout *float64, onOutput func([]byte)) *eventbus.Event {
	if a == nil {
		return eventbus.NewError(eventbus.InvalidID, "", "ERROR: no command action given.")
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	select {
	case <-s.closed:
		return eventbus.NewError(eventbus.InvalidID, "", "ERROR: the bash session is closed; start a new session.")
	case <-s.readerDone:
		return eventbus.NewError(eventbus.InvalidID, "", "ERROR: the bash session has exited; start a new session.")
	default:
	}

	command := strings.TrimSpace(a.Command)
	running := s.prev == statusNoChangeTimeout || s.prev == statusHardTimeout
	if !running {
		if command == "" {
			return s.obs(msgNoPrevLogs, "", eventbus.DefaultMetadata(), false)
		}
		if a.IsInput {
			return s.obs(msgNoPrevInteract, "", eventbus.DefaultMetadata(), false)
		}
	}
	if parts := SplitBashCommands(command); len(parts) > 1 {
		var b strings.Builder
		b.WriteString("ERROR: Cannot execute multiple commands at once.\n" +
			"Please run each command separately OR chain them into a single command via && or ;\nProvided commands:")
		for i, p := range parts {
			fmt.Fprintf(&b, "\n(%d) %s", i+1, p)
		}
		return eventbus.NewError(eventbus.InvalidID, "", b.String())
	}

	s.mu.Lock()
	initial := len(findPS1Blocks(s.out.tail))
	prevDone := s.out.endsWithPS1End()
	seenMarks := s.marks
	s.mu.Unlock()

	if running && !prevDone && !a.IsInput && command != "" {
		content, _ := s.takeOutput(a.Hidden)
		md := eventbus.DefaultMetadata()
		md.Suffix = "\n[Your command \"" + command + "\" is NOT executed. " +
			"The previous command is still running - You CANNOT send new commands until the previous command is completed. " +
			"By setting `is_input` to `true`, you can interact with the current process: " +
			TimeoutMessageTemplate + "]"
		if s.hadObs {
			md.Prefix = continuePrefix
		}
		s.hadObs = true
		return s.obs(content, command, md, a.Hidden)
	}

	// Watch output before sending, so nothing is missed.
	s.setCallback(onOutput)
	defer s.setCallback(nil)

	// OpenHands also counts "the output ends with a prompt" as completion
	// (for prompts scrolled out of tmux's history). After sending, that
	// must be a new prompt, not the one already there.
	sent := command != ""
	s.mu.Lock()
	sentAt := s.total
	wasBusy := s.busy
	if sent {
		s.busy = true // before typing: the prompt may come back before send returns
		if !a.IsInput {
			s.intr = false // a new command: an earlier interrupt was for another one
			s.cmdStart = bootTicks()
		}
	}
	s.mu.Unlock()
	if sent {
		if err := s.send(command, a.IsInput); err != nil {
			s.mu.Lock()
			s.busy = wasBusy
			s.mu.Unlock()
			return eventbus.NewError(eventbus.InvalidID, "", fmt.Sprintf("ERROR: could not send %q to the bash session: %v. "+
				"The running process is probably not reading its input; send C-c to interrupt it.", command, err))
		}
	}

	var hardC <-chan time.Time
	if timeout != nil && *timeout > 0 && *timeout < maxHardTimeout { // NaN and +Inf: no timeout
		t := time.NewTimer(time.Duration(*timeout * float64(time.Second)))
		defer t.Stop()
		hardC = t.C
	}
	var ncTimer *time.Timer
	var ncC <-chan time.Time
	if !a.Blocking {
		ncTimer = time.NewTimer(s.noChange)
		defer ncTimer.Stop()
		ncC = ncTimer.C
	}
	count := initial
	completed := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.marks != seenMarks {
			seenMarks = s.marks
			count = len(findPS1Blocks(s.out.tail))
		}
		return count > initial || ((!sent || s.total > sentAt) && s.out.endsWithPS1End())
	}
	for {
		if completed() {
			return s.completedObs(command, a.Hidden)
		}
		select {
		case <-s.notify:
			if ncTimer != nil {
				ncTimer.Reset(s.noChange)
			}
			continue
		case <-ncC:
			if completed() {
				return s.completedObs(command, a.Hidden)
			}
			return s.timeoutObs(command, statusNoChangeTimeout,
				fmt.Sprintf("\n[The command has no new output after %s seconds. %s]", pySeconds(s.noChange), TimeoutMessageTemplate))
		case <-hardC:
			if completed() {
				return s.completedObs(command, a.Hidden)
			}
			return s.timeoutObs(command, statusHardTimeout,
				fmt.Sprintf("\n[The command timed out after %s seconds. %s]", pyFloat(*timeout), TimeoutMessageTemplate))
		case <-s.readerDone:
			if completed() {
				return s.completedObs(command, a.Hidden)
			}
			return s.interrupted("the bash process exited")
		case <-s.closed:
			return s.interrupted("the bash session was closed")
		case <-ctx.Done():
			return s.interrupted(ctx.Err().Error())
		}
	}
}

// interrupted answers a Run that cannot wait any longer. The command (if
// any) keeps running, so the session behaves as after a hard timeout.
func (s *BashSession) interrupted(why string) *eventbus.Event {
	s.prev = statusHardTimeout
	s.hadObs = true
	return eventbus.NewError(eventbus.InvalidID, "", msgSessionInterrupt+" ("+why+")")
}

// pySeconds prints a duration the way OpenHands prints its integer
// NO_CHANGE_TIMEOUT_SECONDS (or as a Python float when not whole).
func pySeconds(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprint(int64(d / time.Second))
	}
	return pyFloat(d.Seconds())
}

// send types command (or input, or a control key) into the PTY.
func (s *BashSession) send(command string, isInput bool) error {
	if isSpecialKey(command) {
		key := command[2:]
		if b, ok := controlByte(key[0]); ok && len(key) == 1 {
			return s.write(b)
		}
		return s.write([]byte(key))
	}
	if !isInput && s.tmpDir != "" && needsFile(command) {
		// One file, replaced atomically: bash reads a sourced file whole
		// before running it, and no earlier command is still being read.
		path := filepath.Join(s.tmpDir, "cmd.sh")
		if err := os.WriteFile(path+".tmp", []byte(command+"\n"), 0o644); err != nil {
			return fmt.Errorf("write command file: %w", err)
		}
		if fi, err := os.Stat(s.tmpDir); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				_ = os.Chown(path+".tmp", int(st.Uid), int(st.Gid))
			}
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return fmt.Errorf("write command file: %w", err)
		}
		command = ". " + shellQuote(path)
	}
	return s.write([]byte(command + "\r"))
}

// takeOutput returns the cleaned output since the last observation (PS1
// blocks removed) and the blocks found, and empties the buffer.
func (s *BashSession) takeOutput(hidden bool) (string, []ps1Block) {
	s.mu.Lock()
	head, tail, dropped := s.out.head, bytes.Clone(s.out.tail), s.out.dropped
	s.out.reset()
	s.mu.Unlock()
	if dropped == 0 {
		text := tail
		if head != nil {
			text = append(head, tail...)
		}
		combined, blocks := combineOutputs(text)
		content := cleanOutput(combined)
		if !hidden {
			content = truncateContent(content, s.maxChars)
		}
		return content, blocks
	}
	// The middle was dropped to bound memory: keep the two ends.
	hc, _ := combineOutputs(head)
	tc, blocks := combineOutputs(tail)
	half := s.maxChars / 2
	content := firstRunes(cleanOutput(hc), half) + truncationMarker + lastRunes(cleanOutput(tc), half)
	return content, blocks
}

func (s *BashSession) completedObs(command string, hidden bool) *eventbus.Event {
	content, blocks := s.takeOutput(hidden)
	md := eventbus.DefaultMetadata()
	if len(blocks) > 0 {
		md = blocks[len(blocks)-1].meta
		s.mu.Lock()
		s.applyMeta(md)
		s.mu.Unlock()
	}
	md.Prefix = ""
	s.mu.Lock()
	interrupted := s.intr
	s.intr = false
	s.mu.Unlock()
	switch {
	case isSpecialKey(command):
		md.Suffix = fmt.Sprintf("\n[The command completed with exit code %d. CTRL+%s was sent.]", md.ExitCode, strings.ToUpper(lastRune(command)))
	case interrupted:
		// Interrupt is the C-c an agent would send as its next action,
		// delivered at once: the same suffix (OpenHands bash.py).
		md.Suffix = fmt.Sprintf("\n[The command completed with exit code %d. CTRL+C was sent.]", md.ExitCode)
	default:
		md.Suffix = fmt.Sprintf("\n[The command completed with exit code %d.]", md.ExitCode)
	}
	s.prev = statusCompleted
	s.hadObs = false
	return s.obs(content, command, md, hidden)
}

func (s *BashSession) timeoutObs(command string, st cmdStatus, suffix string) *eventbus.Event {
	content, _ := s.takeOutput(false)
	md := eventbus.DefaultMetadata()
	md.Suffix = suffix
	if s.hadObs {
		md.Prefix = continuePrefix
	}
	s.prev = st
	s.hadObs = true
	return s.obs(content, command, md, false)
}

func (s *BashSession) obs(content, command string, md eventbus.CmdOutputMetadata, hidden bool) *eventbus.Event {
	return eventbus.NewObservation(eventbus.InvalidID, content, &eventbus.CmdOutputObservation{
		Command:  command,
		Metadata: md,
		Hidden:   hidden,
	})
}

func lastRune(s string) string {
	r, _ := utf8.DecodeLastRuneInString(s)
	return string(r)
}
