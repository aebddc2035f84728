package actors

import (
	"context"
	"crypto/rand"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/sandbox"
)

// hookMarker identifies a pre-commit hook Corral (like OpenHands) installed.
const hookMarker = "This hook was installed by OpenHands"

// preCommitHook is OpenHands' hook text (base.py maybe_setup_git_hooks).
const preCommitHook = `#!/bin/bash
# This hook was installed by OpenHands
# It calls the pre-commit script in the .openhands directory

if [ -x ".openhands/pre-commit.sh" ]; then
    source ".openhands/pre-commit.sh"
    exit $?
else
    echo "Warning: .openhands/pre-commit.sh not found or not executable"
    exit 0
fi
`

// setupScriptCommand is run once per sandbox. OpenHands both adds it to the
// stream and runs it directly, so a runtime subscribed to its own stream
// may run it twice (reference §1.7); Corral runs it exactly once and records
// the action with its observation.
const setupScriptCommand = "chmod +x .openhands/setup.sh && source .openhands/setup.sh"

// setupRecord is the setup script's action and observation, appended to the
// stream as a pair.
type setupRecord struct{ action, obs *eventbus.Event }

// workspaceSetup runs OpenHands' post-start steps through the agent
// connection: env vars, git config, clone_or_init_repo, .openhands/setup.sh
// and the pre-commit hook. status reports a status change.
type workspaceSetup struct {
	conn    runtimes.AgentConn
	cfg     Config
	spec    SessionSpec
	hostEnv []string
	hostGit bool // the host user's git config: never `git config --global`
	// fresh: the workspace is a new empty directory the backend created, so
	// there is no .openhands/ to look for (unless a repository is cloned).
	fresh  bool
	status func(status, msg string)
}

func (w *workspaceSetup) run(ctx context.Context) (*setupRecord, error) {
	// add_env_vars(initial) then add_env_vars(runtime_startup_env_vars).
	initial := map[string]string{}
	for _, kv := range w.hostEnv {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "SANDBOX_ENV_") && len(k) > len("SANDBOX_ENV_") {
			initial[strings.TrimPrefix(k, "SANDBOX_ENV_")] = v
		}
	}
	for k, v := range w.spec.Env {
		initial[k] = v
	}
	if err := w.addEnvVars(ctx, initial); err != nil {
		return nil, err
	}
	if err := w.addEnvVars(ctx, w.cfg.RuntimeStartupEnvVars); err != nil {
		return nil, err
	}
	if !w.cfg.SkipGitConfig && !w.spec.SkipGitConfig && !w.hostGit {
		cmd := fmt.Sprintf(`git config --global user.name "%s" && git config --global user.email "%s"`, w.cfg.GitUserName, w.cfg.GitUserEmail)
		if _, err := w.runCmd(ctx, cmd, 60); err != nil {
			return nil, err
		} // a failing git config is only logged by OpenHands: ignore its exit code
	}
	if err := w.cloneOrInit(ctx); err != nil {
		return nil, err
	}
	if w.fresh && w.spec.Repository == "" {
		return nil, nil
	}
	rec, err := w.setupScript(ctx)
	if err != nil {
		return nil, err
	}
	if err := w.gitHooks(ctx); err != nil {
		return nil, err
	}
	return rec, nil
}

// addEnvVars is OpenHands' add_env_vars on Unix: one export command, then a
// second command that persists each key to ~/.bashrc unless it is there.
func (w *workspaceSetup) addEnvVars(ctx context.Context, vars map[string]string) error {
	if len(vars) == 0 {
		return nil
	}
	exp, err := sandbox.ExportEnvCommand(vars)
	if err != nil {
		return err
	}
	persist, err := sandbox.PersistEnvCommand(vars)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, strings.ToUpper(k))
	}
	sort.Strings(keys)
	for i, cmd := range []string{exp, persist} {
		obs, err := w.runCmd(ctx, cmd, 60)
		if err != nil {
			return err
		}
		if code := exitCode(obs); code != 0 {
			where := "environment"
			if i == 1 {
				where = ".bashrc"
			}
			return fmt.Errorf("failed to add env vars [%s] to %s: %s", strings.Join(keys, ", "), where, obs.Content)
		}
	}
	return nil
}

func (w *workspaceSetup) cloneOrInit(ctx context.Context) error {
	repo := w.spec.Repository
	if repo == "" {
		if w.cfg.InitGitInEmptyWorkspace {
			_, err := w.runCmd(ctx, `git init && git config --global --add safe.directory "$(pwd)"`, 60)
			return err
		}
		return nil
	}
	w.status(eventbus.StatusSettingUpWorkspace, "Setting up workspace...")
	dir := strings.TrimSuffix(path.Base(strings.TrimRight(repo, "/")), ".git")
	if _, err := w.runCmd(ctx, "git clone "+sandbox.ShellQuote(repo)+" "+sandbox.ShellQuote(dir), 600); err != nil {
		return err
	}
	checkout := "cd " + sandbox.ShellQuote(dir) + " && git checkout "
	if w.spec.Branch != "" {
		checkout += sandbox.ShellQuote(w.spec.Branch)
	} else {
		checkout += "-b openhands-workspace-" + randomSuffix(8)
	}
	_, err := w.runCmd(ctx, checkout, 120)
	return err
}

// setupScript runs .openhands/setup.sh once (see setupScriptCommand).
func (w *workspaceSetup) setupScript(ctx context.Context) (*setupRecord, error) {
	read, err := w.conn.Execute(ctx, "", eventbus.NewAction(eventbus.SourceEnvironment, &eventbus.FileReadAction{Path: ".openhands/setup.sh", Start: 0, End: -1, SecurityRisk: eventbus.RiskUnknown, ImplSource: "default"}), nil)
	if err != nil {
		return nil, err
	}
	if _, isErr := read.Observation.(*eventbus.ErrorObservation); isErr {
		return nil, nil
	}
	w.status(eventbus.StatusSettingUpWorkspace, "Setting up workspace...")
	act := eventbus.NewAction(eventbus.SourceEnvironment, &eventbus.CmdRunAction{Command: setupScriptCommand, Hidden: true, SecurityRisk: eventbus.RiskUnknown})
	act.SetHardTimeout(600, true)
	obs, err := w.conn.Execute(ctx, "", act, nil)
	if err != nil {
		return nil, err
	}
	return &setupRecord{action: act, obs: obs}, nil
}

// gitHooks installs the pre-commit hook of §1.7; a failing step aborts the
// hook set-up silently, as in OpenHands.
func (w *workspaceSetup) gitHooks(ctx context.Context) error {
	read, err := w.conn.Execute(ctx, "", eventbus.NewAction(eventbus.SourceEnvironment, &eventbus.FileReadAction{Path: ".openhands/pre-commit.sh", Start: 0, End: -1, SecurityRisk: eventbus.RiskUnknown, ImplSource: "default"}), nil)
	if err != nil {
		return err
	}
	if _, isErr := read.Observation.(*eventbus.ErrorObservation); isErr {
		return nil
	}
	w.status(eventbus.StatusSettingUpGitHooks, "Setting up git hooks...")
	prep := `mkdir -p .git/hooks && chmod +x .openhands/pre-commit.sh && if [ -f .git/hooks/pre-commit ] && ! grep -q "` + hookMarker + `" .git/hooks/pre-commit; then mv .git/hooks/pre-commit .git/hooks/pre-commit.local && chmod +x .git/hooks/pre-commit.local; fi`
	obs, err := w.runCmd(ctx, prep, 60)
	if err != nil || exitCode(obs) != 0 {
		return err
	}
	write := eventbus.NewAction(eventbus.SourceEnvironment, &eventbus.FileWriteAction{Path: ".git/hooks/pre-commit", Content: preCommitHook, Start: 0, End: -1, SecurityRisk: eventbus.RiskUnknown})
	wobs, err := w.conn.Execute(ctx, "", write, nil)
	if err != nil {
		return err
	}
	if _, isErr := wobs.Observation.(*eventbus.ErrorObservation); isErr {
		return nil
	}
	_, err = w.runCmd(ctx, "chmod +x .git/hooks/pre-commit", 60)
	return err
}

// runCmd runs a hidden, blocking command; err is set only when the agent
// could not be reached (a non-zero exit is in the observation).
func (w *workspaceSetup) runCmd(ctx context.Context, cmd string, timeout float64) (*eventbus.Event, error) {
	act := eventbus.NewAction(eventbus.SourceEnvironment, &eventbus.CmdRunAction{Command: cmd, Hidden: true, SecurityRisk: eventbus.RiskUnknown})
	act.SetHardTimeout(timeout, true)
	cctx, cancel := context.WithTimeout(ctx, time.Duration(timeout+30)*time.Second)
	defer cancel()
	obs, err := w.conn.Execute(cctx, "", act, nil)
	if err != nil {
		return nil, fmt.Errorf("workspace set-up command %q: %w", firstLine(cmd), err)
	}
	return obs, nil
}

func exitCode(obs *eventbus.Event) int {
	if o, ok := obs.Observation.(*eventbus.CmdOutputObservation); ok {
		return o.Metadata.ExitCode
	}
	return -1
}

func randomSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + "..."
	}
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}
