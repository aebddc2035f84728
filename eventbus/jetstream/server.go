package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// MaxPayload is the embedded server's max_payload: a message (one commit
// group, or one part of a split group) may be this large.
const MaxPayload = 8 << 20

// ServerConfig describes one node's embedded NATS server.
type ServerConfig struct {
	NodeID      string // server_name: the node's id, unique in the cluster
	ClusterName string // the NATS cluster name; every node must use the same
	Host        string // address to listen on (client and route ports)
	ClientPort  int    // client port (0 = pick a free one)
	RoutePort   int    // cluster route port; used only when Routes is not empty
	// Routes are the other nodes' host:routeport. Empty: a single node that
	// runs JetStream standalone. This node's own address may be listed.
	Routes   []string
	StoreDir string       // JetStream's storage directory
	Logger   *slog.Logger // server warnings and errors go here (default slog.Default())
}

// Server is a running embedded NATS server with JetStream.
type Server struct {
	ns  *server.Server
	cfg ServerConfig
}

// StartServer starts the embedded server and returns once it accepts client
// connections (or fails when ctx ends first). JetStream in a new cluster
// still needs a few seconds to elect its meta leader; Open waits for that.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	opts, err := serverOptions(cfg)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("jetstream: configure the embedded NATS server %q: %w", cfg.NodeID, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ns.SetLoggerV2(&slogAdapter{l: logger.With("component", "nats", "node", cfg.NodeID)}, false, false, false)
	ns.Start()
	for !ns.ReadyForConnections(100 * time.Millisecond) {
		if err := ctx.Err(); err != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, fmt.Errorf("jetstream: the embedded NATS server %q did not accept connections on %s:%d before the context ended (port in use? see the warnings logged): %w",
				cfg.NodeID, cfg.Host, cfg.ClientPort, err)
		}
	}
	return &Server{ns: ns, cfg: cfg}, nil
}

// serverOptions checks cfg and turns it into nats-server options.
func serverOptions(cfg ServerConfig) (*server.Options, error) {
	switch {
	case cfg.NodeID == "":
		return nil, errors.New("jetstream: ServerConfig.NodeID is empty; every node needs a unique id")
	case cfg.StoreDir == "":
		return nil, fmt.Errorf("jetstream: ServerConfig.StoreDir is empty for node %q; give it a directory for JetStream's data", cfg.NodeID)
	case cfg.ClientPort < 0 || cfg.ClientPort > 65535 || cfg.RoutePort < 0 || cfg.RoutePort > 65535:
		return nil, fmt.Errorf("jetstream: node %q: ports must be 0-65535 (client %d, route %d)", cfg.NodeID, cfg.ClientPort, cfg.RoutePort)
	}
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := cfg.ClientPort
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: cfg.NodeID,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		MaxPayload: MaxPayload,
		NoSigs:     true, // the embedding process owns signal handling
	}
	self := net.JoinHostPort(host, strconv.Itoa(cfg.RoutePort))
	for _, r := range cfg.Routes {
		h, p, err := net.SplitHostPort(r)
		if err != nil || h == "" || p == "" {
			return nil, fmt.Errorf("jetstream: node %q: route %q is not host:port", cfg.NodeID, r)
		}
		if r == self {
			continue // our own address: nothing to connect to
		}
		opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: r})
	}
	if len(cfg.Routes) > 0 {
		if cfg.ClusterName == "" {
			return nil, fmt.Errorf("jetstream: node %q has routes but no ClusterName; every node of a cluster needs the same name", cfg.NodeID)
		}
		if cfg.RoutePort == 0 {
			return nil, fmt.Errorf("jetstream: node %q has routes but no RoutePort; the others route to it there", cfg.NodeID)
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: host, Port: cfg.RoutePort}
	}
	return opts, nil
}

// ClientURL is the URL clients (Open) connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// NodeID is the server's name.
func (s *Server) NodeID() string { return s.cfg.NodeID }

// Shutdown stops the server and waits until it has stopped.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// slogAdapter routes the server's log to slog: warnings and errors as such,
// notices at debug level (the server is chatty at start-up), debug and trace
// not at all.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }

// Errorf logs at ERROR, except the server's retries to reach a route that
// is down (a member not started yet, or dead): the first attempt is a
// warning, the retries (one a second, for as long as it is down) debug.
func (a *slogAdapter) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	switch {
	case !strings.HasPrefix(msg, "Error trying to connect to route"):
		a.l.Error(msg)
	case strings.Contains(msg, "(attempt 1)"):
		a.l.Warn(msg)
	default:
		a.l.Debug(msg)
	}
}
func (a *slogAdapter) Debugf(string, ...any) {}
func (a *slogAdapter) Tracef(string, ...any) {}
