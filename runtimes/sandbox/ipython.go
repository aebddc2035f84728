package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"corral/eventbus"
)

//go:embed ipython_driver.py
var pythonDriver string

// The agent skills OpenHands imports into its kernel (open_file,
// search_dir, parse_pdf, ...); the driver serves them as the modules
// agentskills (imported at start) and agentskills_readers (the document
// parsers, compiled on first use).
var (
	//go:embed agentskills.py
	agentSkills string
	//go:embed agentskills_readers.py
	agentSkillsReaders string
)

// skillModules is the driver's module arguments: name, source, ...
func skillModules() []string {
	return []string{"agentskills", agentSkills, "agentskills_readers", agentSkillsReaders}
}

const (
	// pythonStartTimeout bounds how long a new interpreter may take to say
	// it is ready.
	pythonStartTimeout = 30 * time.Second
	// pythonInterruptGrace is how long an interrupted cell may take to stop
	// before the interpreter is killed (and restarted on the next cell).
	pythonInterruptGrace = 5 * time.Second
	noOutputText         = "[Code executed successfully with no output]"
)

// ansiColour is the pattern OpenHands' Jupyter plugin strips from output.
var ansiColour = regexp.MustCompile(`\x1B\[\d+(;\d+){0,2}m`)

// pythonKernel is one persistent python3 process that runs cells in a
// single globals dict (see ipython_driver.py). It is used by one goroutine
// at a time (the Executor's action lock); close may be called concurrently.
type pythonKernel struct {
	cmd    *exec.Cmd
	req    *os.File // write end of the request pipe (fd 3 in the child)
	nonce  string
	exe    string
	events chan kernelEvent
	done   chan struct{} // closed when the reader goroutine ended
	waited chan struct{} // closed when cmd.Wait returned
	cellID int
	cwd    string // directory the kernel last chdir'ed to
	dead   bool
	// running is the id of the cell in flight, 0 between cells; read by
	// interrupts, which do not hold the action lock.
	running atomic.Int64

	closeOnce sync.Once
}

// kernelEvent is output bytes or the end of a cell, in stream order.
type kernelEvent struct {
	data   []byte
	doneID int
	status string
	ready  string // interpreter path, for the ready marker
}

func startPythonKernel(ctx context.Context, python string, env []string, cred *syscall.Credential, dir string) (*pythonKernel, error) {
	return startPythonKernelWith(ctx, python, env, cred, dir, skillModules())
}

// startPythonKernelWith starts the driver serving modules (name, Python
// source pairs; none for a bare interpreter).
func startPythonKernelWith(ctx context.Context, python string, env []string, cred *syscall.Credential, dir string, modules []string) (*pythonKernel, error) {
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start python: request pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, fmt.Errorf("start python: output pipe: %w", err)
	}
	nb := make([]byte, 12)
	_, _ = rand.Read(nb)
	k := &pythonKernel{
		req:    reqW,
		nonce:  hex.EncodeToString(nb),
		events: make(chan kernelEvent, 64),
		done:   make(chan struct{}),
		waited: make(chan struct{}),
		cwd:    dir,
	}
	cmd := exec.Command(python, append([]string{"-u", "-c", pythonDriver}, modules...)...)
	cmd.Env = append(append([]string{}, env...), "CORRAL_PY_NONCE="+k.nonce, "PYTHONUNBUFFERED=1", "PYTHONIOENCODING=utf-8")
	cmd.Dir = dir
	cmd.Stdout = outW
	cmd.Stderr = outW
	cmd.ExtraFiles = []*os.File{reqR}
	// Own process group: Close kills everything the cells started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		reqR.Close()
		reqW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("start python interpreter %s: %w", python, err)
	}
	preferOOMKill(cmd.Process.Pid)
	reqR.Close()
	outW.Close()
	k.cmd = cmd
	go func() { _ = cmd.Wait(); close(k.waited) }()
	go k.readLoop(outR)

	timer := time.NewTimer(pythonStartTimeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-k.events:
			if !ok {
				k.close()
				return nil, fmt.Errorf("python interpreter %s exited during start-up", python)
			}
			if ev.ready != "" {
				k.exe = ev.ready
				return k, nil
			}
		case <-timer.C:
			k.close()
			return nil, fmt.Errorf("python interpreter %s did not start within %s", python, pythonStartTimeout)
		case <-ctx.Done():
			k.close()
			return nil, fmt.Errorf("start python interpreter: %w", ctx.Err())
		}
	}
}

// readLoop splits the child's output into data and markers. It owns r and
// ends at EOF (the child exited or was killed).
func (k *pythonKernel) readLoop(r *os.File) {
	defer close(k.done)
	defer close(k.events)
	defer r.Close()
	prefix := []byte("\x00" + k.nonce + ":")
	var buf []byte
	chunk := make([]byte, 32*1024)
	for {
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			i := bytes.Index(buf, prefix)
			if i < 0 {
				// Keep a tail that might be the start of a marker.
				keep := partialPrefix(buf, prefix)
				if len(buf)-keep > 0 {
					k.events <- kernelEvent{data: append([]byte(nil), buf[:len(buf)-keep]...)}
				}
				buf = append(buf[:0], buf[len(buf)-keep:]...)
				break
			}
			end := bytes.IndexByte(buf[i+len(prefix):], 0)
			if end < 0 {
				if i > 0 {
					k.events <- kernelEvent{data: append([]byte(nil), buf[:i]...)}
					buf = append(buf[:0], buf[i:]...)
				}
				break
			}
			if i > 0 {
				k.events <- kernelEvent{data: append([]byte(nil), buf[:i]...)}
			}
			k.events <- parseMarker(string(buf[i+len(prefix) : i+len(prefix)+end]))
			buf = append(buf[:0], buf[i+len(prefix)+end+1:]...)
		}
		if err != nil {
			if len(buf) > 0 {
				k.events <- kernelEvent{data: buf}
			}
			return
		}
	}
}

// partialPrefix returns the length of the longest suffix of b that is a
// proper prefix of p.
func partialPrefix(b, p []byte) int {
	for n := min(len(b), len(p)-1); n > 0; n-- {
		if bytes.Equal(b[len(b)-n:], p[:n]) {
			return n
		}
	}
	return 0
}

func parseMarker(s string) kernelEvent {
	kind, rest, _ := strings.Cut(s, ":")
	switch kind {
	case "ready":
		return kernelEvent{ready: rest}
	case "done":
		id, status, _ := strings.Cut(rest, ":")
		n, _ := strconv.Atoi(id)
		return kernelEvent{doneID: n, status: status}
	}
	return kernelEvent{data: []byte(s)}
}

// cellResult is the outcome of one cell.
type cellResult struct {
	text     string
	timedOut bool
}

// run executes code after changing to cwd (when it differs from the last
// one), streaming output to onOutput. On timeout the cell is interrupted with
// SIGINT, as Jupyter's interrupt does; if it does not stop within
// pythonInterruptGrace the interpreter is killed.
func (k *pythonKernel) run(ctx context.Context, code, cwd string, timeout time.Duration, onOutput func([]byte)) (cellResult, error) {
	k.cellID++
	id := k.cellID
	k.running.Store(int64(id))
	defer k.running.Store(0)
	req := map[string]any{"id": id, "code": code}
	if cwd != "" && cwd != k.cwd {
		req["cwd"] = cwd
	}
	body, _ := json.Marshal(req)
	if _, err := k.req.Write(append([]byte(strconv.Itoa(len(body))+"\n"), body...)); err != nil {
		k.dead = true
		return cellResult{}, fmt.Errorf("send cell to python: %w", err)
	}
	if cwd != "" {
		k.cwd = cwd
	}
	var out bytes.Buffer
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	interrupted := false
	var grace <-chan time.Time
	ctxDone := ctx.Done()
	for {
		select {
		case ev, ok := <-k.events:
			if !ok {
				k.dead = true
				if interrupted {
					return cellResult{timedOut: true}, nil
				}
				return cellResult{text: out.String()}, errors.New("the Python interpreter exited while running the cell; its variables are lost and it will be restarted for the next cell")
			}
			if ev.data != nil {
				if !interrupted {
					out.Write(ev.data)
					if onOutput != nil {
						onOutput(ev.data)
					}
				}
				continue
			}
			if ev.status != "" && ev.doneID == id {
				if interrupted {
					return cellResult{timedOut: true}, nil
				}
				return cellResult{text: out.String()}, nil
			}
		case <-timer.C:
			interrupted = true
			k.interrupt()
			grace = time.After(pythonInterruptGrace)
		case <-ctxDone:
			ctxDone = nil
			if !interrupted {
				interrupted = true
				k.interrupt()
				grace = time.After(pythonInterruptGrace)
			}
		case <-grace:
			k.close()
			k.dead = true
			return cellResult{timedOut: true}, nil
		}
	}
}

// interrupt sends SIGINT to the interpreter's process group: the
// interpreter may sit behind a wrapper (a pyenv shim), and commands the cell
// started are interrupted too, as Ctrl-C in a terminal would.
func (k *pythonKernel) interrupt() {
	_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGINT)
}

// close kills the interpreter and everything it started, and waits for the
// reader goroutine. Idempotent.
func (k *pythonKernel) close() {
	k.closeOnce.Do(func() {
		k.req.Close()
		if k.cmd != nil && k.cmd.Process != nil {
			_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
			<-k.waited
		}
		// Drain so the reader never blocks on a full channel.
		for range k.events {
		}
		<-k.done
	})
}

// formatSeconds prints a timeout as OpenHands does (an int timeout has no
// decimals; fractional ones keep them).
func formatSeconds(s float64) string {
	if s == float64(int64(s)) {
		return strconv.FormatInt(int64(s), 10)
	}
	return strconv.FormatFloat(s, 'f', -1, 64)
}

// runIPython runs a run_ipython action.
func (x *Executor) runIPython(ctx context.Context, a *eventbus.IPythonRunCellAction, timeout float64, onOutput func([]byte)) *eventbus.Event {
	if x.cfg.python == "" {
		return eventbus.NewError(eventbus.InvalidID, "", "Cannot run IPython cell: no python3 interpreter was found on PATH in the sandbox. Install python3 or configure its path (WithPython), or use the bash tool instead.")
	}
	cwd := x.Cwd()
	k, err := x.kernel(ctx, cwd)
	if err != nil {
		return eventbus.NewError(eventbus.InvalidID, "", "Cannot run IPython cell: "+err.Error())
	}
	d := time.Duration(timeout * float64(time.Second))
	if init := a.KernelInitCode; init != "" && !x.pyInitDone[init] {
		if _, err := k.run(ctx, init, cwd, d, nil); err == nil {
			x.pyInitDone[init] = true
		}
	}
	res, err := k.run(ctx, a.Code, cwd, d, onOutput)
	text := res.text
	switch {
	case res.timedOut:
		text = "[Execution timed out (" + formatSeconds(timeout) + " seconds).]"
	case err != nil:
		text = strings.TrimRight(text, " \t\r\n")
		if text != "" {
			text += "\n"
		}
		text += "[" + err.Error() + "]"
	case text == "":
		text = noOutputText
	}
	text = strings.TrimRightFunc(ansiColour.ReplaceAllString(text, ""), isPySpace)
	if a.IncludeExtra {
		text += "\n[Jupyter current working directory: " + cwd + "]"
		text += "\n[Jupyter Python interpreter: " + k.exePath() + "]"
	}
	return eventbus.NewObservation(eventbus.InvalidID, text, &eventbus.IPythonRunCellObservation{Code: a.Code})
}

// kernel returns the live interpreter, starting one when there is none or
// the last one died. Called under the action lock.
func (x *Executor) kernel(ctx context.Context, cwd string) (*pythonKernel, error) {
	x.pyMu.Lock()
	defer x.pyMu.Unlock()
	if x.py != nil && !x.py.dead {
		return x.py, nil
	}
	if x.py != nil {
		x.py.close()
		x.py = nil
	}
	// Checked under pyMu: Close sets closed before taking pyMu, so no
	// interpreter can be started after Close has looked for one.
	if x.isClosed() {
		return nil, errors.New("the sandbox executor is closed")
	}
	k, err := startPythonKernel(ctx, x.cfg.python, x.cfg.environ(), x.cred, cwd)
	if err != nil {
		return nil, err
	}
	x.py = k
	x.pyInitDone = map[string]bool{}
	return k, nil
}

func (k *pythonKernel) exePath() string {
	if k == nil {
		return ""
	}
	return k.exe
}

func isPySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0:
		return true
	}
	return r == 0x2028 || r == 0x2029 || r == 0x3000 || (r >= 0x2000 && r <= 0x200a)
}
