package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"corral/eventbus"
)

// ErrorIDBadAction is the error_id OpenHands gives observations of actions
// the runtime cannot run.
const ErrorIDBadAction = "AGENT_ERROR$BAD_ACTION"

const (
	execDefaultNoChange    = 10 * time.Second
	execDefaultHardTimeout = 120 * time.Second
	execDefaultMaxTransfer = 1 << 30
)

type config struct {
	workDir         string
	user            string
	env             []string
	noChangeTimeout time.Duration
	noChangeSet     bool
	defaultTimeout  time.Duration
	python          string
	pythonSet       bool
	maxTransfer     int64
	logger          *slog.Logger
}

// environ is the environment of processes the executor starts itself
// (python): the host's, then the configured extra variables.
func (c *config) environ() []string {
	return append(os.Environ(), c.env...)
}

// Option configures an Executor.
type Option func(*config)

// WithWorkDir sets the initial working directory of the main bash session
// (and of python). Default: the process's working directory.
func WithWorkDir(dir string) Option { return func(c *config) { c.workDir = dir } }

// WithUser sets the user commands run as. It only has an effect when the
// executor runs as root: shells and python then run as that user, file
// operations are refused where that user lacks permission, and new files
// are given to that user. Default: the current user.
func WithUser(name string) Option { return func(c *config) { c.user = name } }

// WithEnv adds KEY=VALUE variables to the environment of the shells and
// python, on top of the executor's own environment.
func WithEnv(env []string) Option {
	return func(c *config) { c.env = append([]string(nil), env...) }
}

// WithNoChangeTimeout sets bash's soft timeout: how long a command may print
// nothing before the observation returns with "no new output" (OpenHands'
// no_change_timeout_seconds). Default 10s, or NO_CHANGE_TIMEOUT_SECONDS from
// the environment when this option is not given.
func WithNoChangeTimeout(d time.Duration) Option {
	return func(c *config) { c.noChangeTimeout, c.noChangeSet = d, true }
}

// WithDefaultTimeout sets the hard timeout used for an action whose event has
// no timeout (OpenHands' sandbox.timeout). Default 120s.
func WithDefaultTimeout(d time.Duration) Option {
	return func(c *config) { c.defaultTimeout = d }
}

// WithPython sets the interpreter for run_ipython. Default: python3 found on
// PATH; with none, run_ipython answers with an error observation. An empty
// path disables run_ipython the same way.
func WithPython(path string) Option { return func(c *config) { c.python, c.pythonSet = path, true } }

// WithMaxTransferBytes limits UploadZip (bytes received and bytes unpacked)
// and DownloadZip (bytes packed). Default 1 GiB.
func WithMaxTransferBytes(n int64) Option { return func(c *config) { c.maxTransfer = n } }

// WithLogger sets the logger for internal failures. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// shell is the part of a bash session the executor uses (BashSession).
type shell interface {
	Run(ctx context.Context, a *eventbus.CmdRunAction, timeout *float64, onOutput func([]byte)) *eventbus.Event
	Cwd() string
	Interrupt() (bool, error)
	Close() error
}

// Executor runs actions inside a sandbox. Create it with New; it is safe for
// concurrent use: non-static actions run one at a time, static commands
// (is_static) run concurrently in their own shells.
type Executor struct {
	cfg    config
	ctx    context.Context // lives until Close; parent of every shell
	cancel context.CancelFunc

	access *accessChecker
	cred   *syscall.Credential // for python when running as root for a user
	editor *Editor

	mu         sync.Mutex // one action at a time; guards pyInitDone
	pyInitDone map[string]bool

	// pyMu guards py separately from mu so that Close can kill a cell that
	// is running under mu.
	pyMu sync.Mutex
	py   *pythonKernel
	// inCell is set while a run_ipython action runs (for Interrupt).
	inCell atomic.Bool

	main shell

	closeMu sync.Mutex
	closed  bool
	statics map[shell]struct{} // static shells in use; guarded by closeMu
	staticW sync.WaitGroup

	mcp mcpState // MCP servers (executor_mcp.go)

	browser browserState // Chromium for browse actions (executor_browser.go)
}

// New starts an executor and its main bash session.
func New(ctx context.Context, opts ...Option) (*Executor, error) {
	cfg := config{defaultTimeout: execDefaultHardTimeout, maxTransfer: execDefaultMaxTransfer}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if !cfg.noChangeSet {
		cfg.noChangeTimeout = execDefaultNoChange
		if v := os.Getenv("NO_CHANGE_TIMEOUT_SECONDS"); v != "" {
			secs, err := strconv.ParseFloat(v, 64)
			if err != nil || secs <= 0 {
				return nil, fmt.Errorf("NO_CHANGE_TIMEOUT_SECONDS=%q is not a positive number of seconds", v)
			}
			cfg.noChangeTimeout = time.Duration(secs * float64(time.Second))
		}
	}
	if cfg.defaultTimeout <= 0 {
		return nil, fmt.Errorf("default timeout must be positive, got %s", cfg.defaultTimeout)
	}
	if cfg.maxTransfer <= 0 {
		return nil, fmt.Errorf("max transfer bytes must be positive, got %d", cfg.maxTransfer)
	}
	if cfg.workDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("determine working directory (pass WithWorkDir): %w", err)
		}
		cfg.workDir = wd
	}
	abs, err := filepath.Abs(cfg.workDir)
	if err != nil {
		return nil, fmt.Errorf("working directory %q: %w", cfg.workDir, err)
	}
	cfg.workDir = abs
	if st, err := os.Stat(cfg.workDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("working directory %q is not an existing directory (create it first): %v", cfg.workDir, err)
	}
	if !cfg.pythonSet {
		if p, err := exec.LookPath("python3"); err == nil {
			cfg.python = p
		}
	}
	access, err := newAccessChecker(cfg.user)
	if err != nil {
		return nil, err
	}
	x := &Executor{cfg: cfg, access: access, editor: NewEditor(cfg.workDir), statics: map[shell]struct{}{}}
	if access.asUser {
		x.cred = &syscall.Credential{Uid: uint32(access.uid), Gid: uint32(access.gid)}
	}
	x.ctx, x.cancel = context.WithCancel(context.Background())
	sh, err := x.newShell(ctx, cfg.workDir)
	if err != nil {
		x.cancel()
		return nil, fmt.Errorf("start main bash session in %s: %w", cfg.workDir, err)
	}
	x.main = sh
	return x, nil
}

// Cwd is the main bash session's current directory.
func (x *Executor) Cwd() string {
	if x.main == nil {
		return x.cfg.workDir
	}
	if c := x.main.Cwd(); c != "" {
		return c
	}
	return x.cfg.workDir
}

// Close ends the bash sessions and python, killing what they started. It
// does not wait for a running action to finish (that action gets an error
// observation). Idempotent.
func (x *Executor) Close() error {
	x.closeMu.Lock()
	if x.closed {
		x.closeMu.Unlock()
		return nil
	}
	x.closed = true
	statics := make([]shell, 0, len(x.statics))
	for s := range x.statics {
		statics = append(statics, s)
	}
	x.closeMu.Unlock()
	x.cancel()
	var err error
	if x.main != nil {
		err = x.main.Close()
	}
	for _, s := range statics {
		_ = s.Close()
	}
	// A running cell holds mu but not pyMu; closing the kernel under it
	// makes that cell return at once.
	x.pyMu.Lock()
	if x.py != nil {
		x.py.close()
	}
	x.pyMu.Unlock()
	x.closeMCP()
	x.closeBrowser()
	x.staticW.Wait()
	return err
}

func (x *Executor) isClosed() bool {
	x.closeMu.Lock()
	defer x.closeMu.Unlock()
	return x.closed
}

// Execute runs one runnable action event and returns its observation event:
// Cause is the action's id (when it has one), tool_call_metadata is copied,
// hidden is propagated and the source is the action's. The hard timeout is
// the event's Timeout, or the default. onOutput, if not nil, receives live
// output of run and run_ipython. It never panics: every failure is an
// `error` observation.
func (x *Executor) Execute(ctx context.Context, action *eventbus.Event, onOutput func([]byte)) (obs *eventbus.Event) {
	defer func() {
		if r := recover(); r != nil {
			x.cfg.logger.Error("sandbox executor panic", "action", action.Type(), "panic", r, "stack", string(debug.Stack()))
			obs = eventbus.NewError(eventbus.InvalidID, "", fmt.Sprintf("Internal error in the sandbox executor while running action %s: %v", action.Type(), r))
		}
		if obs != nil && action != nil {
			finishObservation(action, obs)
		}
	}()
	if action == nil || action.Action == nil {
		t := "<none>"
		if action != nil && action.Observation != nil {
			t = action.Observation.ObservationType() + " (an observation)"
		}
		return eventbus.NewError(eventbus.InvalidID, ErrorIDBadAction, "Action "+t+" is not supported in the current runtime.")
	}
	t := action.Action.ActionType()
	if !action.Action.Runnable() {
		return eventbus.NewError(eventbus.InvalidID, ErrorIDBadAction, "Action "+t+" is not supported in the current runtime.")
	}
	if x.isClosed() {
		return eventbus.NewError(eventbus.InvalidID, "", "The sandbox executor is closed; action "+t+" was not run.")
	}
	timeout := x.cfg.defaultTimeout.Seconds()
	if action.Timeout != nil && *action.Timeout > 0 {
		timeout = *action.Timeout
	}
	if a, ok := action.Action.(*eventbus.CmdRunAction); ok && a.IsStatic {
		return x.runStatic(ctx, a, timeout, onOutput)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.dispatch(ctx, action.Action, timeout, onOutput)
}

func (x *Executor) dispatch(ctx context.Context, act eventbus.Action, timeout float64, onOutput func([]byte)) *eventbus.Event {
	switch a := act.(type) {
	case *eventbus.CmdRunAction:
		return x.runMain(ctx, a, timeout, onOutput)
	case *eventbus.IPythonRunCellAction:
		x.inCell.Store(true)
		defer x.inCell.Store(false)
		return x.runIPython(ctx, a, timeout, onOutput)
	case *eventbus.FileReadAction:
		if a.ImplSource == "oh_aci" {
			return x.readEditor(a, x.Cwd())
		}
		return x.readFile(a, x.Cwd())
	case *eventbus.FileWriteAction:
		return x.writeFile(a, x.Cwd())
	case *eventbus.FileEditAction:
		return x.edit(a)
	case *eventbus.BrowseURLAction:
		return x.browse(ctx, false, a.URL, a.ReturnAxtree, timeout)
	case *eventbus.BrowseInteractiveAction:
		return x.browse(ctx, true, a.BrowserActions, a.ReturnAxtree, timeout)
	case *eventbus.MCPAction:
		return x.callMCP(ctx, a, timeout)
	}
	return eventbus.NewError(eventbus.InvalidID, ErrorIDBadAction, "Action "+act.ActionType()+" is not supported in the current runtime.")
}

// finishObservation links obs to its action as OpenHands' runtime does.
func finishObservation(action, obs *eventbus.Event) {
	if action.ID >= 0 {
		id := action.ID
		obs.Cause = &id
	}
	if len(action.ToolCallMetadata) > 0 {
		obs.ToolCallMetadata = append(json.RawMessage(nil), action.ToolCallMetadata...)
	}
	if obs.Source == "" {
		obs.Source = action.Source
	}
	if action.Hidden() {
		if o, ok := obs.Observation.(*eventbus.CmdOutputObservation); ok {
			o.Hidden = true
		}
	}
}

// runMain runs a command in the main bash session.
func (x *Executor) runMain(ctx context.Context, a *eventbus.CmdRunAction, timeout float64, onOutput func([]byte)) *eventbus.Event {
	t := timeout
	obs := x.main.Run(ctx, a, &t, onOutput)
	if obs == nil {
		return eventbus.NewError(eventbus.InvalidID, "", "The bash session returned no observation for command "+strconv.Quote(a.Command)+".")
	}
	return obs
}

// runStatic runs an is_static command in a fresh shell in a.Cwd (default:
// the main session's cwd), closed afterwards; it never touches the main
// session's state.
func (x *Executor) runStatic(ctx context.Context, a *eventbus.CmdRunAction, timeout float64, onOutput func([]byte)) *eventbus.Event {
	x.staticW.Add(1)
	defer x.staticW.Done()
	dir := x.Cwd()
	if a.Cwd != nil && *a.Cwd != "" {
		dir = resolvePath(dir, *a.Cwd)
	}
	sh, err := x.newShell(ctx, dir)
	if err != nil {
		return eventbus.NewError(eventbus.InvalidID, "", "Could not start a bash session in "+dir+": "+err.Error())
	}
	x.closeMu.Lock()
	if x.closed {
		x.closeMu.Unlock()
		sh.Close()
		return eventbus.NewError(eventbus.InvalidID, "", "The sandbox executor is closed; action run was not run.")
	}
	x.statics[sh] = struct{}{}
	x.closeMu.Unlock()
	defer func() {
		x.closeMu.Lock()
		delete(x.statics, sh)
		x.closeMu.Unlock()
		sh.Close()
	}()
	t := timeout
	obs := sh.Run(ctx, a, &t, onOutput)
	if obs == nil {
		return eventbus.NewError(eventbus.InvalidID, "", "The bash session returned no observation for command "+strconv.Quote(a.Command)+".")
	}
	return obs
}

// edit runs an `edit` action with the str_replace_editor.
func (x *Executor) edit(a *eventbus.FileEditAction) *eventbus.Event {
	if a.ImplSource != "" && a.ImplSource != "oh_aci" {
		return eventbus.NewError(eventbus.InvalidID, ErrorIDBadAction, "Edit with impl_source "+strconv.Quote(a.ImplSource)+" is not supported in the sandbox: only oh_aci (str_replace_editor) edits are; LLM-based edits run in the controller.")
	}
	obsFor := func(content string, res *EditResult) *eventbus.Event {
		o := &eventbus.FileEditObservation{Path: a.Path, OldContent: a.OldStr, NewContent: a.NewStr, ImplSource: "oh_aci"}
		oldText, newText := "", ""
		if res != nil {
			o.PrevExist = res.PrevExist && !res.IsError
			if res.OldContent != nil {
				oldText = *res.OldContent
			}
			if res.NewContent != nil {
				newText = *res.NewContent
			}
		}
		d := editDiff(oldText, newText, a.Path)
		o.Diff = &d
		return eventbus.NewObservation(eventbus.InvalidID, content, o)
	}
	insertLine, err := parseInsertLine(a.InsertLine)
	if err != nil {
		return obsFor("ERROR:\n"+err.Error(), nil)
	}
	if filepath.IsAbs(a.Path) {
		p := pyPath(a.Path)
		var aerr error
		switch {
		case a.Command == "view":
			aerr = x.access.check(p, accessRead)
		case exists(p):
			aerr = x.access.check(p, accessRead|accessWrite)
		default:
			aerr = x.access.check(filepath.Dir(p), accessWrite)
		}
		if aerr != nil {
			return errorEvent(osErrorText(aerr))
		}
	}
	res := x.editor.Run(EditRequest{
		Command: a.Command, Path: a.Path, FileText: a.FileText,
		OldStr: a.OldStr, NewStr: a.NewStr, InsertLine: insertLine,
	})
	if a.Command == "create" && !res.IsError {
		x.chownNew(pyPath(a.Path))
	}
	return obsFor(res.Output, &res)
}

// parseInsertLine accepts insert_line as a JSON int, an integral float or a
// numeric string (agents send all three), like OpenHands' int() conversion.
func parseInsertLine(raw json.RawMessage) (*int, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("Invalid insert_line value: %s. Expected an integer.", s)
	}
	switch t := v.(type) {
	case float64:
		if t != float64(int(t)) {
			return nil, fmt.Errorf("Invalid insert_line value: %s. Expected an integer.", s)
		}
		n := int(t)
		return &n, nil
	case string:
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(t), "_", ""))
		if err != nil {
			return nil, fmt.Errorf("Invalid insert_line value: '%s'. Expected an integer.", t)
		}
		return &n, nil
	}
	return nil, errors.New("Invalid insert_line value: " + s + ". Expected an integer.")
}
