package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"corral/runtimes/sandbox"
	"corral/transport/agentwire"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if os.Getpid() == 1 && os.Getenv(initChildEnv) == "" {
		os.Exit(runInit(os.Args[1:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	listen          string
	token           string
	tokenFile       string
	workdir         string
	user            string
	noChangeTimeout time.Duration
	resultTTL       time.Duration
	keepResults     int
	showVersion     bool

	tlsCert, tlsKey, tlsClientCA string
	insecurePlaintext            bool
	generateCert                 string
	certHosts                    string
	copyTo                       string
}

func newFlagSet(cfg *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("corral-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.listen, "listen", "", "where to listen: unix:///path/to.sock or HOST:PORT (required)")
	fs.StringVar(&cfg.token, "token", "", "agent token clients must present; else env CORRAL_AGENT_TOKEN, else --token-file, else env SESSION_API_KEY")
	fs.StringVar(&cfg.tokenFile, "token-file", "", "file holding the agent token (surrounding whitespace is ignored)")
	fs.StringVar(&cfg.workdir, "workdir", "", "initial working directory of the shell (default: the current directory)")
	fs.StringVar(&cfg.user, "user", "", "user to run commands as when the agent runs as root (default: the agent's own user)")
	fs.Var((*secondsOrDuration)(&cfg.noChangeTimeout), "no-change-timeout", "time without new output after which a running command returns control: `seconds` (10) or a duration (10s, 1m30s) (default: the executor's 10s)")
	cfg.resultTTL, cfg.keepResults = agentwire.DefaultResultTTL, agentwire.DefaultKeepResults
	fs.DurationVar(&cfg.resultTTL, "result-ttl", cfg.resultTTL, "how long a finished action's result (and buffered output) is kept for a controller that re-sends its request id, e.g. after the controller restarted")
	fs.IntVar(&cfg.keepResults, "keep-results", cfg.keepResults, "at most this many finished actions' results are kept (the oldest go first, even before --result-ttl)")
	fs.BoolVar(&cfg.showVersion, "version", false, "print the agent and agentwire protocol versions and exit")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "serve TLS on a HOST:PORT listener with this PEM certificate (with --tls-key)")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&cfg.tlsClientCA, "tls-client-ca", "", "require client certificates signed by this PEM CA (mutual TLS)")
	fs.BoolVar(&cfg.insecurePlaintext, "insecure-plaintext", false, "allow a non-loopback HOST:PORT listener without TLS (the token and all traffic cross the network in clear text)")
	fs.StringVar(&cfg.generateCert, "generate-cert", "", "write a self-signed agent.crt and agent.key into this directory for --cert-hosts, then exit")
	fs.StringVar(&cfg.copyTo, "copy-to", "", "copy this executable to `PATH` (mode 0755, atomically, creating its directory), then exit; how the Kubernetes backend's init container installs the agent into a pod")
	fs.StringVar(&cfg.certHosts, "cert-hosts", "127.0.0.1,localhost", "comma-separated IPs and DNS names --generate-cert puts in the certificate")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: corral-agent --listen ADDR [flags]\n\n"+
			"Runs commands, files and python for Corral inside a sandbox and serves them over\n"+
			"agentwire (WebSocket at /agentwire) and OpenHands' action-execution HTTP API on ADDR.\n"+
			"Prints \"listening on ADDR\" on stdout once it accepts connections. SIGTERM/SIGINT\n"+
			"stop it cleanly (exit 0).\n\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(stderr, "  --%s %s\n    \t%s\n", f.Name, name, usage)
		})
	}
	return fs
}

func run(args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := newFlagSet(&cfg, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if cfg.showVersion {
		fmt.Fprintf(stdout, "corral-agent %s (agentwire protocol %d)\n", version, agentwire.ProtocolVersion)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "corral-agent: unexpected argument %q; see --help\n", fs.Arg(0))
		return 2
	}
	if isFlagSet(fs, "copy-to") {
		n, err := copySelf(cfg.copyTo)
		if err != nil {
			fmt.Fprintf(stderr, "corral-agent: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "copied corral-agent (%d bytes) to %s\n", n, cfg.copyTo)
		return 0
	}
	if cfg.resultTTL <= 0 || cfg.keepResults <= 0 {
		fmt.Fprintf(stderr, "corral-agent: --result-ttl (%s) and --keep-results (%d) must be positive\n", cfg.resultTTL, cfg.keepResults)
		return 2
	}
	if cfg.generateCert != "" {
		certPath, keyPath, err := generateCert(cfg.generateCert, strings.Split(cfg.certHosts, ","), 365*24*time.Hour)
		if err != nil {
			fmt.Fprintf(stderr, "corral-agent: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s and %s (give %s to the controller as ca_file)\n", certPath, keyPath, certPath)
		return 0
	}
	// The log goes to stderr and into a bounded ring the agent serves at
	// agentwire.PathLogs (how the remote runtime reads a sandbox's log).
	ring := agentwire.NewLogRing(0, 0)
	log := slog.New(slog.NewTextHandler(io.MultiWriter(ring, stderr), &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := serve(cfg, stdout, log, ring); err != nil {
		fmt.Fprintf(stderr, "corral-agent: %v\n", err)
		return 1
	}
	return 0
}

// isFlagSet reports whether name was given on the command line (even as
// an empty string, which then gets its own error).
func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// resolveToken applies the documented order: --token, CORRAL_AGENT_TOKEN,
// --token-file, SESSION_API_KEY.
func resolveToken(cfg config) (string, error) {
	if cfg.token != "" {
		return cfg.token, nil
	}
	if t := os.Getenv("CORRAL_AGENT_TOKEN"); t != "" {
		return t, nil
	}
	if cfg.tokenFile != "" {
		b, err := os.ReadFile(cfg.tokenFile)
		if err != nil {
			return "", fmt.Errorf("reading --token-file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("--token-file %s is empty", cfg.tokenFile)
		}
		return t, nil
	}
	if t := os.Getenv("SESSION_API_KEY"); t != "" {
		return t, nil
	}
	return "", errors.New("no token: pass --token, set CORRAL_AGENT_TOKEN, pass --token-file or set SESSION_API_KEY")
}

// listen opens addr; a stale unix socket file (nobody accepting) is removed
// first, a live one is an error.
func listen(addr string) (ln net.Listener, shown, sockPath string, err error) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		if p == "" {
			return nil, "", "", fmt.Errorf("--listen %q has no socket path; write unix:///path/to.sock", addr)
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
				c.Close()
				return nil, "", "", fmt.Errorf("--listen %s: another process is serving that socket", addr)
			}
			_ = os.Remove(p)
		}
		ln, err := net.Listen("unix", p)
		if err != nil {
			return nil, "", "", fmt.Errorf("--listen %s: %w", addr, err)
		}
		// The token guards access; the socket must be reachable by the
		// controller whatever user it runs as on the host.
		_ = os.Chmod(p, 0o666)
		return ln, "unix://" + p, p, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, "", "", fmt.Errorf("--listen %q is neither unix:///path/to.sock nor HOST:PORT: %w", addr, err)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		return nil, "", "", fmt.Errorf("--listen %s: %w", addr, err)
	}
	return ln, ln.Addr().String(), "", nil
}

func serve(cfg config, stdout io.Writer, log *slog.Logger, ring *agentwire.LogRing) error {
	if cfg.listen == "" {
		return errors.New("--listen is required (unix:///path/to.sock or HOST:PORT); see --help")
	}
	token, err := resolveToken(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	tlsCfg, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	tcp := !strings.HasPrefix(cfg.listen, "unix://")
	if tlsCfg != nil && !tcp {
		return errors.New("--tls-cert is for HOST:PORT listeners; a unix socket needs no TLS")
	}
	if _, _, perr := net.SplitHostPort(cfg.listen); tcp && tlsCfg == nil && perr == nil {
		if !isLoopback(cfg.listen) && !cfg.insecurePlaintext {
			return fmt.Errorf("--listen %s is reachable from the network but has no TLS: pass --tls-cert/--tls-key (or --generate-cert DIR first), or --insecure-plaintext to accept clear text", cfg.listen)
		}
		log.Warn("corral-agent: TCP listener without TLS: the token and all traffic are in clear text", "listen", cfg.listen)
	}

	// Listen first: a bad or busy address fails before any shell starts.
	ln, shown, sockPath, err := listen(cfg.listen)
	if err != nil {
		return err
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	cleanup := func() {
		ln.Close()
		if sockPath != "" {
			_ = os.Remove(sockPath)
		}
	}
	opts := []sandbox.Option{sandbox.WithLogger(log)}
	if cfg.workdir != "" {
		opts = append(opts, sandbox.WithWorkDir(cfg.workdir))
	}
	if cfg.user != "" {
		opts = append(opts, sandbox.WithUser(cfg.user))
	}
	if cfg.noChangeTimeout > 0 {
		opts = append(opts, sandbox.WithNoChangeTimeout(cfg.noChangeTimeout))
	}
	x, err := sandbox.New(ctx, opts...)
	if err != nil {
		cleanup()
		return fmt.Errorf("starting the sandbox executor: %w", err)
	}
	srv, err := agentwire.NewServer(x, token,
		agentwire.WithAgentVersion(version),
		agentwire.WithSessionAPIKey(os.Getenv("SESSION_API_KEY")),
		agentwire.WithResultRetention(cfg.resultTTL, cfg.keepResults),
		agentwire.WithLogRing(ring),
		agentwire.WithLogger(log))
	if err != nil {
		x.Close()
		cleanup()
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	// The readiness line stays the log's first line and the slog start line
	// its last at start: a local sandbox's log stamps a line without a time
	// with the one before it, so a tail of the unstamped readiness line would
	// differ from the same line in the whole log. Readers that need the start
	// line wait for it (the Docker log is copied asynchronously anyway).
	fmt.Fprintf(stdout, "listening on %s\n", shown)
	log.Info("corral-agent started", "version", version, "listen", shown, "pid", os.Getpid())

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("corral-agent: shutting down")
	case serveErr = <-served:
	}
	// Stop accepting first, then end the executor's process groups (running
	// actions get their error observation), then drop agentwire connections.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	shut := make(chan struct{})
	go func() { _ = hs.Shutdown(shutdownCtx); close(shut) }()
	xerr := x.Close()
	_ = srv.Close()
	<-shut
	_ = hs.Close()
	if sockPath != "" {
		_ = os.Remove(sockPath)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serving %s: %w", shown, serveErr)
	}
	if xerr != nil {
		log.Warn("corral-agent: closing the executor", "err", xerr)
	}
	return nil
}

// secondsOrDuration is a flag value that takes plain seconds (as OpenHands'
// NO_CHANGE_TIMEOUT_SECONDS) or a Go duration.
type secondsOrDuration time.Duration

func (d *secondsOrDuration) String() string { return time.Duration(*d).String() }

func (d *secondsOrDuration) Set(s string) error {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f <= 0 {
			return fmt.Errorf("must be positive, got %s", s)
		}
		*d = secondsOrDuration(time.Duration(f * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("want seconds (10) or a positive duration (10s), got %q", s)
	}
	*d = secondsOrDuration(v)
	return nil
}
