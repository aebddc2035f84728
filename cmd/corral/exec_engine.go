package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"corral/actors"
	"corral/eventbus"
	"corral/runtimes"
)

// Exit codes of exec, replay and shell.
const (
	exitOK        = 0
	exitFailed    = 1 // an action got no observation, or the session failed while running
	exitUsage     = 2 // bad flags, configuration or input file
	exitNoSandbox = 3 // the sandbox did not start
	exitBadInput  = 4 // every action ran, but some input lines were malformed and skipped
	exitInterrupt = 130
)

// cliOpts are the flags exec, replay and shell share.
type cliOpts struct {
	runtime   string
	image     string
	workspace string
	config    string
	verbose   bool
	mcpConfig string // exec --mcp-config: a JSON mcp_config file
}

// cliSession is an engine with one session, for exec/replay/shell.
type cliSession struct {
	eng     *actors.Engine
	sid     string
	closers []func() error
}

// openCLISession builds the engine for o.runtime, creates one session and
// waits until it is ready. On error the returned code says which exit code
// applies.
func openCLISession(ctx context.Context, o cliOpts, stderr io.Writer) (*cliSession, int, error) {
	cfg := defaultServeConfig()
	if o.config != "" {
		if err := loadConfigFile(o.config, &cfg); err != nil {
			return nil, exitUsage, err
		}
	}
	var mcp *eventbus.MCPConfig
	if o.mcpConfig != "" {
		c, err := readMCPConfigFile(o.mcpConfig)
		if err != nil {
			return nil, exitUsage, err
		}
		mcp = c
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cs := &cliSession{}
	// Sandboxes are reaped below only when their owner is gone (a crashed
	// exec, farm or shell): a live process's are never touched.
	bs, err := buildBackends(ctx, cfg.Runtime, []string{o.runtime}, cfg.Engine.AgentGracePeriod.D(), runtimes.Owner{}, logger)
	if err != nil {
		code := exitNoSandbox
		if _, ok := errors.AsType[*runtimes.UnknownRuntimeError](err); ok {
			code = exitUsage
		}
		return nil, code, err
	}
	cs.closers = append(cs.closers, bs.close)
	ecfg := cfg.Engine
	ecfg.DefaultRuntime = o.runtime
	eng, err := actors.NewEngine(ecfg, bs.reg, actors.WithLogger(logger), actors.WithDefaultMCP(cfg.MCP))
	if err != nil {
		cs.closeBackends()
		return nil, exitNoSandbox, err
	}
	reapLeftovers(ctx, eng, logger)
	cs.eng = eng
	info, err := eng.CreateSession(ctx, actors.SessionSpec{Runtime: o.runtime, Workspace: o.workspace, Image: o.image, MCP: mcp})
	if err != nil {
		cs.close()
		return nil, exitNoSandbox, err
	}
	cs.sid = info.ID
	if err := eng.WaitReady(ctx, info.ID); err != nil {
		cs.close()
		return nil, exitNoSandbox, err
	}
	return cs, exitOK, nil
}

func (cs *cliSession) closeBackends() error {
	var err error
	for i := len(cs.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, cs.closers[i]())
	}
	cs.closers = nil
	return err
}

// close stops the session and the engine; it does not depend on the
// caller's (maybe cancelled) context.
func (cs *cliSession) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	if cs.eng != nil {
		err = cs.eng.Shutdown(ctx)
		cs.eng = nil
	}
	return errors.Join(err, cs.closeBackends())
}

// reapLeftovers removes sandboxes left by crashed Corral processes whose
// owner is gone; a failure is only logged (it concerns nobody alive).
func reapLeftovers(ctx context.Context, eng *actors.Engine, logger *slog.Logger) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reaped, err := eng.Reap(rctx)
	for _, h := range reaped {
		logger.Info("reaped a sandbox left by a Corral process that is gone", "backend", h.Backend, "id", h.ID)
	}
	if err != nil {
		logger.Warn("reaping leftover sandboxes", "err", err)
	}
}
