package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"corral/actors"
	"corral/eventbus"
	"corral/metrics"
	"corral/runtimes"
	"corral/transport/api"
	"corral/transport/runtimeapi"
)

// serveConfig is the configuration file `corral serve` reads. Each section
// is its package's own Config with its defaults.
type serveConfig struct {
	Server api.Config      `toml:"server"`
	Engine actors.Config   `toml:"engine"`
	Events eventbus.Config `toml:"events"`
	// Runtime is the [runtime] section: enabled backends, and each
	// [runtime.<name>] section decoded by that backend's factory (see
	// runtimeFactories) into its own Config.
	Runtime serveRuntimeConfig `toml:"-"`
	// RuntimeTOML holds [runtime] undecoded while a file is read;
	// decodeSections moves it into Runtime and clears it.
	RuntimeTOML map[string]toml.Primitive `toml:"runtime"`
	RuntimeAPI  runtimeAPIConfig          `toml:"runtime_api"`
	// MCP is the [mcp] section: the MCP servers of sessions that name
	// none (see mcp.go); MCPTOML holds it while a file is read.
	MCP     eventbus.MCPConfig `toml:"-"`
	MCPTOML mcpTOML            `toml:"mcp"`
	// Cluster is the [cluster] section (cluster_config.go): without join,
	// serve is a single node.
	Cluster clusterConfig `toml:"cluster"`
}

// serveRuntimeConfig selects and configures the sandbox backends:
// Enabled lists the backends to start (the first is the default runtime
// unless [engine] default_runtime says otherwise) and Backends holds every
// known backend's Config (*docker.Config, *local.Config, ...).
type serveRuntimeConfig = runtimes.Config

// decodeSections implements sectionDecoder: every [runtime.<name>]
// section is decoded by its factory; unknown names list the known ones.
func (c *serveConfig) decodeSections(md toml.MetaData) error {
	if err := c.decodeMCP(); err != nil {
		return err
	}
	raw := c.RuntimeTOML
	c.RuntimeTOML = nil
	return runtimeFactories().Decode(md, "runtime", raw, &c.Runtime)
}

// runtimeAPIConfig turns on OpenHands' Runtime API under /runtime-api/.
type runtimeAPIConfig struct {
	// APIKey is the X-API-Key OpenHands sends; without one the Runtime API
	// is off. Env CORRAL_RUNTIME_API_KEY overrides.
	APIKey string `toml:"api_key"`
	// ImageRuntime is the backend /start runs images on (every image but
	// "local"): "docker" or "kubernetes"; "": docker when enabled, else
	// kubernetes when enabled.
	ImageRuntime string `toml:"image_runtime"`
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Server:  api.DefaultConfig(),
		Engine:  actors.DefaultConfig(),
		Events:  eventbus.DefaultConfig(),
		Runtime: runtimeFactories().DefaultConfig("local"),
		Cluster: defaultClusterConfig(),
	}
}

const serveUsage = `usage: corral serve [--listen HOST:PORT] [--config FILE] [--runtimes local,docker] [-v]
       corral serve --cluster-listen HOST:P --join HOST:P[,HOST:P...] --data DIR [--node-id ID] [...]

Starts the API server, the web UI and the engine. Events are stored under
[events] store_dir (default ~/.corral/sessions). Binding anything but a
loopback address needs [server] auth_tokens.

Environment overrides (after the file, before flags):
  CORRAL_SERVER_LISTEN, CORRAL_SERVER_AUTH_TOKENS (comma-separated),
  CORRAL_SERVER_ALLOWED_ORIGINS (comma-separated), CORRAL_EVENTS_STORE_DIR,
  CORRAL_CLUSTER_LISTEN, CORRAL_CLUSTER_JOIN (comma-separated),
  CORRAL_CLUSTER_DATA, CORRAL_CLUSTER_NODE_ID, CORRAL_CLUSTER_NAME
` + clusterUsage + `

flags:
`

// runServe is `corral serve`: it returns the process exit code (0 after a
// clean shutdown on SIGINT/SIGTERM or ctx, 1 when serving failed, 2 for bad
// flags or configuration).
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) (exit int) {
	cfg, verbose, code := parseServeArgs(args, stderr)
	if code >= 0 {
		return code
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Listen first: a taken port is reported before anything starts.
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "corral serve: listen on %s: %v (is another corral running? pick another port with --listen)\n", cfg.Server.Listen, err)
		return 1
	}
	defer ln.Close()

	reg := metrics.New()
	var st *serveStack
	if cfg.Cluster.enabled() {
		st, err = openClusterStack(ctx, cfg, ln.Addr().String(), logger, reg)
	} else {
		st, err = openServeStack(ctx, cfg, logger, reg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "corral serve: %v\n", err)
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := st.close(sctx); err != nil {
			fmt.Fprintf(stderr, "corral serve: shutdown: %v\n", err)
			exit = max(exit, 1)
		}
	}()

	srv, err := api.New(api.NewEngineAdapter(st.eng), cfg.Server, append(st.apiOpts, api.WithMetrics(reg), api.WithLogger(logger))...)
	if err != nil {
		fmt.Fprintf(stderr, "corral serve: %v\n", err)
		return 2
	}
	handler, err := serveHandler(cfg, st, srv, logger)
	if err != nil {
		fmt.Fprintf(stderr, "corral serve: %v\n", err)
		return 2
	}
	if cfg.RuntimeAPI.APIKey != "" {
		fmt.Fprintf(stdout, "corral: OpenHands Runtime API on %sruntime-api (remote_runtime_api_url)\n", browseURL(ln.Addr().String()))
	}
	return serveUntilDone(ctx, cfg, st, srv, handler, ln, logger, stdout, stderr)
}

// parseServeArgs reads serve's flags, config file and environment into a
// validated config. code is the exit code when serve must stop now (0 for
// -h, 2 for bad input, reported on stderr), else -1.
func parseServeArgs(args []string, stderr io.Writer) (cfg serveConfig, verbose bool, code int) {
	fs := flag.NewFlagSet("corral serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "address to bind, HOST:PORT (default [server] listen, 127.0.0.1:7070)")
	configPath := fs.String("config", "", "TOML configuration file")
	runtimesFlag := fs.String("runtimes", "", "backends to start, comma-separated: local, cli, docker, kubernetes, remote (default [runtime] enabled, local)")
	v := fs.Bool("v", false, "log engine and request details")
	cf := clusterFlags(fs)
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, false, 0
		}
		return cfg, false, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "corral serve: unexpected argument %q (see corral serve -h)\n", fs.Arg(0))
		return cfg, false, 2
	}
	cfg = defaultServeConfig()
	if *configPath != "" {
		if err := loadConfigFile(*configPath, &cfg); err != nil {
			fmt.Fprintf(stderr, "corral serve: %v\n", err)
			return cfg, false, 2
		}
	}
	applyServeEnv(&cfg, os.Getenv)
	if *listen != "" {
		cfg.Server.Listen = *listen
	}
	if *runtimesFlag != "" {
		cfg.Runtime.Enabled = splitList(*runtimesFlag)
	}
	cf.apply(&cfg.Cluster)
	if err := errors.Join(cfg.Server.Validate(), cfg.Events.Validate(), cfg.Engine.Validate(), cfg.Cluster.validate(cfg.Server.Listen)); err != nil {
		fmt.Fprintf(stderr, "corral serve: invalid configuration:\n%v\n", err)
		return cfg, false, 2
	}
	if len(cfg.Runtime.Enabled) == 0 {
		fmt.Fprintln(stderr, "corral serve: no runtime enabled; set [runtime] enabled = [\"local\"] or --runtimes local")
		return cfg, false, 2
	}
	if _, err := imageRuntime(cfg.RuntimeAPI, cfg.Runtime.Enabled); err != nil && cfg.RuntimeAPI.APIKey != "" {
		fmt.Fprintf(stderr, "corral serve: %v\n", err)
		return cfg, false, 2
	}
	return cfg, *v, -1
}

// serveHandler is what the HTTP server serves: the API and web UI, and
// under /runtime-api/ OpenHands' Runtime API when it has an API key.
func serveHandler(cfg serveConfig, st *serveStack, srv *api.Server, logger *slog.Logger) (http.Handler, error) {
	if cfg.RuntimeAPI.APIKey == "" {
		return srv, nil
	}
	prov, err := newProvisioner(cfg, st)
	if err != nil {
		return nil, err
	}
	rh, err := runtimeapi.New(prov, cfg.RuntimeAPI.APIKey, runtimeapi.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	// In a cluster a call about another member's session is proxied
	// there (outside StripPrefix, so the forwarded path keeps the prefix).
	mux.Handle("/runtime-api/", srv.RouteRuntimeAPI("/runtime-api", http.StripPrefix("/runtime-api", rh)))
	mux.Handle("/", srv)
	return mux, nil
}

// serveUntilDone serves handler on ln until ctx ends (SIGINT, SIGTERM) or
// serving fails, then lets a cluster member hand its sessions over while
// its API still answers, and shuts the HTTP server down.
func serveUntilDone(ctx context.Context, cfg serveConfig, st *serveStack, srv *api.Server, handler http.Handler,
	ln net.Listener, logger *slog.Logger, stdout, stderr io.Writer) (exit int) {
	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(srv.Close) // end followed logs and WebSockets: Shutdown would wait for them
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	fmt.Fprintf(stdout, "corral: serving the API and web UI on %s (runtimes: %s; events in %s)\n",
		ln.Addr(), strings.Join(cfg.Runtime.Enabled, ", "), st.store.Dir())
	fmt.Fprintf(stdout, "open %s\n", browseURL(ln.Addr().String()))

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "corral: shutting down")
	case err := <-serveErr:
		fmt.Fprintf(stderr, "corral serve: %v\n", err)
		exit = 1
	}
	st.leave(cfg.Cluster.DrainTimeout.D(), stderr)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "corral serve: HTTP shutdown: %v\n", err)
	}
	srv.Close() // WebSocket clients: "going away"
	return exit
}

// browseURL is the URL to print for addr: a wildcard bind is reachable at
// loopback from this machine.
func browseURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// applyServeEnv applies CORRAL_* overrides.
func applyServeEnv(cfg *serveConfig, getenv func(string) string) {
	if v := getenv("CORRAL_SERVER_LISTEN"); v != "" {
		cfg.Server.Listen = v
	}
	if v := getenv("CORRAL_SERVER_AUTH_TOKENS"); v != "" {
		cfg.Server.AuthTokens = splitList(v)
	}
	if v := getenv("CORRAL_SERVER_ALLOWED_ORIGINS"); v != "" {
		cfg.Server.AllowedOrigins = splitList(v)
	}
	if v := getenv("CORRAL_EVENTS_STORE_DIR"); v != "" {
		cfg.Events.StoreDir = v
	}
	if v := getenv("CORRAL_RUNTIME_API_KEY"); v != "" {
		cfg.RuntimeAPI.APIKey = v
	}
	applyClusterEnv(&cfg.Cluster, getenv)
}

// serveStack is what the server runs on: the store, the backends, the engine.
type serveStack struct {
	store    *eventbus.Store
	eng      *actors.Engine
	backends *backendSet
	closers  []func() error // backends, in start order
	// Cluster mode (cluster_serve.go): the API's router option, the
	// node's leaving (drain) and what closes after the store (the
	// replicated log, the NATS server), in start order.
	apiOpts []api.Option
	node    clusterMember
	after   []func() error
	// detach ends the engine without stopping its sessions (cluster mode):
	// a session still here after the drain (the last node, or no quorum)
	// stays recorded as running in the replicated store with its sandbox
	// kept, and the member that adopts it later re-attaches it.
	detach bool
}

func openServeStack(ctx context.Context, cfg serveConfig, logger *slog.Logger, met *metrics.Registry) (*serveStack, error) {
	store, err := eventbus.OpenStore(cfg.Events, eventbus.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("open the event store: %w", err)
	}
	st := &serveStack{store: store}
	fail := func(err error) (*serveStack, error) {
		_ = st.close(context.Background())
		return nil, err
	}
	if err := st.startEngine(ctx, cfg, logger, met); err != nil {
		return fail(err)
	}
	eng, bs := st.eng, st.backends
	rep, err := eng.Recover(ctx)
	if err != nil {
		return fail(fmt.Errorf("recover the sessions of %s: %w", store.Dir(), err))
	}
	if len(rep.Sessions) > 0 {
		logger.Warn("recovering sessions that were running when the previous server ended", "count", len(rep.Sessions))
	}
	// Reaping only removes sandboxes nobody will use again (runtimes.Reap);
	// reap_orphans = false in an enabled backend's section ([runtime.docker],
	// [runtime.kubernetes]) or keep_runtime_alive turn it off.
	reapOff := cfg.Engine.KeepRuntimeAlive || bs.reapRefused
	if !reapOff {
		reaped, err := eng.Reap(ctx)
		for _, h := range reaped {
			logger.Info("reaped a sandbox nobody will use again", "backend", h.Backend, "id", h.ID, "session", h.SessionID)
		}
		if err != nil {
			logger.Warn("reaping leftover sandboxes", "err", err)
		}
	}
	return st, nil
}

// startEngine builds the backends and the engine on st.store; opts are
// added to the engine's (cluster mode: actors.WithCluster).
func (st *serveStack) startEngine(ctx context.Context, cfg serveConfig, logger *slog.Logger, met *metrics.Registry, opts ...actors.Option) error {
	// bs.reapRefused (reap_orphans = false in [runtime.docker] or
	// [runtime.kubernetes]) says the server must not reap this node's
	// leftover sandboxes at start; nor must it
	// not with [engine] keep_runtime_alive (those are meant to be kept).
	// Building the backends never reaps.
	bs, err := buildBackends(ctx, cfg.Runtime, cfg.Runtime.Enabled, cfg.Engine.AgentGracePeriod.D(), actors.StoreOwner(st.store, true), logger)
	if err != nil {
		return err
	}
	st.closers = append(st.closers, bs.close)
	st.backends = bs
	reg := bs.reg
	ecfg := cfg.Engine
	if !slices.Contains(cfg.Runtime.Enabled, ecfg.DefaultRuntime) {
		if ecfg.DefaultRuntime != "" && ecfg.DefaultRuntime != actors.DefaultConfig().DefaultRuntime {
			return fmt.Errorf("[engine] default_runtime = %q is not in [runtime] enabled = %q; enable it or pick one of those", ecfg.DefaultRuntime, cfg.Runtime.Enabled)
		}
		ecfg.DefaultRuntime = cfg.Runtime.Enabled[0]
	}
	opts = append([]actors.Option{actors.WithStore(st.store), actors.WithLogger(logger), actors.WithMetrics(met), actors.WithDefaultMCP(cfg.MCP)}, opts...)
	eng, err := actors.NewEngine(ecfg, reg, opts...)
	if err != nil {
		return fmt.Errorf("start the engine: %w", err)
	}
	st.eng = eng
	return nil
}

// close stops every session, then the backends, then the store (and in
// cluster mode, first leaves the cluster if leave did not, and last closes
// the replicated log and the NATS server).
func (st *serveStack) close(ctx context.Context) error {
	var errs []error
	if st.node != nil {
		errs = append(errs, st.node.Shutdown(ctx))
		st.node = nil
	}
	if st.eng != nil {
		end := st.eng.Shutdown
		if st.detach {
			end = st.eng.Detach
		}
		if err := end(ctx); err != nil {
			errs = append(errs, fmt.Errorf("engine: %w", err))
		}
	}
	for i := len(st.closers) - 1; i >= 0; i-- {
		errs = append(errs, st.closers[i]())
	}
	if st.store != nil {
		errs = append(errs, st.store.Close())
	}
	for i := len(st.after) - 1; i >= 0; i-- {
		errs = append(errs, st.after[i]())
	}
	return errors.Join(errs...)
}
