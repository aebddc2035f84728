package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"corral/actors"
)

// clusterConfig is the [cluster] section of corral serve's configuration.
// Without join, serve is a single node and every other key is unused.
type clusterConfig struct {
	// Listen is this node's cluster address HOST:P (--cluster-listen):
	// P is protoactor's remote, P+1 the health HTTP, P+2 NATS' client
	// port, P+3 NATS' route port (each overridable below). HOST is
	// advertised to the other members, so it must be one they reach.
	Listen string `toml:"listen"`
	// Join lists other members' listen addresses (--join); this node's
	// own address may be in it. Non-empty turns cluster mode on.
	Join []string `toml:"join"`
	// Data is the node's directory (--data): DIR/events, DIR/jetstream,
	// DIR/NODE_ID.
	Data string `toml:"data"`
	// NodeID overrides the id in DIR/NODE_ID (default <hostname>-<P>).
	NodeID string `toml:"node_id"`
	// Name is the cluster's name; members with another are refused.
	Name     string   `toml:"name"`
	Provider string   `toml:"provider"` // "automanaged" or "etcd"
	Etcd     []string `toml:"etcd"`     // etcd endpoints (provider "etcd")
	// Replicas is how many JetStream copies of each session's events;
	// 0: min(3, members named in join and this node).
	Replicas int `toml:"replicas"`
	// FailureTimeout: a member silent this long is dead and its sessions
	// move to the survivors.
	FailureTimeout actors.Duration `toml:"failure_timeout"`
	// JoinTimeout bounds the wait for a join member to answer at start.
	JoinTimeout actors.Duration `toml:"join_timeout"`
	// StartAlone starts a cluster of one when no join member answers
	// (false: refuse to start).
	StartAlone bool `toml:"start_alone"`
	// DrainTimeout bounds moving this node's sessions away on SIGTERM.
	DrainTimeout actors.Duration `toml:"drain_timeout"`
	// Ports derived from Listen's P when 0.
	RemotePort    int `toml:"remote_port"`
	HealthPort    int `toml:"health_port"`
	NATSPort      int `toml:"nats_port"`
	NATSRoutePort int `toml:"nats_route_port"`
}

func defaultClusterConfig() clusterConfig {
	return clusterConfig{
		Join:           []string{},
		Name:           "corral",
		Provider:       "automanaged",
		Etcd:           []string{},
		FailureTimeout: actors.Duration(5 * time.Second),
		JoinTimeout:    actors.Duration(30 * time.Second),
		DrainTimeout:   actors.Duration(30 * time.Second),
	}
}

// enabled reports whether serve runs as a cluster member.
func (c clusterConfig) enabled() bool { return len(c.Join) > 0 }

// applyClusterEnv applies the CORRAL_CLUSTER_* overrides.
func applyClusterEnv(c *clusterConfig, getenv func(string) string) {
	if v := getenv("CORRAL_CLUSTER_LISTEN"); v != "" {
		c.Listen = v
	}
	if v := getenv("CORRAL_CLUSTER_JOIN"); v != "" {
		c.Join = splitList(v)
	}
	if v := getenv("CORRAL_CLUSTER_DATA"); v != "" {
		c.Data = v
	}
	if v := getenv("CORRAL_CLUSTER_NODE_ID"); v != "" {
		c.NodeID = v
	}
	if v := getenv("CORRAL_CLUSTER_NAME"); v != "" {
		c.Name = v
	}
}

// nodePorts are the ports a cluster node binds on its host.
type nodePorts struct {
	Host                            string
	Remote, Health, NATS, NATSRoute int
}

// idPattern is what node ids and cluster names may hold: NATS takes them as
// server and cluster names, protoactor as member metadata.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// splitHostPort parses a HOST:P cluster address for what (a flag name).
func splitHostPort(what, addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(strings.TrimSpace(addr))
	if err != nil || host == "" {
		return "", 0, fmt.Errorf("%s %q is not HOST:PORT (e.g. 127.0.0.1:7100)", what, addr)
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("%s %q: port %q is not a number from 1 to 65535", what, addr, ps)
	}
	return host, p, nil
}

// ports derives the node's ports from Listen and the *_port overrides.
func (c clusterConfig) ports() (nodePorts, error) {
	host, p, err := splitHostPort("--cluster-listen", c.Listen)
	if err != nil {
		return nodePorts{}, err
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return nodePorts{}, fmt.Errorf("--cluster-listen %q: the other members dial this address; give one they reach (e.g. this host's IP), not a wildcard", c.Listen)
	}
	np := nodePorts{Host: host, Remote: p, Health: c.HealthPort, NATS: c.NATSPort, NATSRoute: c.NATSRoutePort}
	if c.RemotePort != 0 {
		np.Remote = c.RemotePort
	}
	derive := func(v *int, off int, key string) error {
		if *v == 0 {
			*v = p + off
		}
		if *v < 1 || *v > 65535 {
			return fmt.Errorf("[cluster] %s: port %d is outside 1-65535 (--cluster-listen port %d + %d); pick a port <= %d or set %s", key, *v, p, off, 65535-3, key)
		}
		return nil
	}
	if err := errors.Join(derive(&np.Remote, 0, "remote_port"), derive(&np.Health, 1, "health_port"),
		derive(&np.NATS, 2, "nats_port"), derive(&np.NATSRoute, 3, "nats_route_port")); err != nil {
		return nodePorts{}, err
	}
	return np, nil
}

// validate checks the section for a serve whose API listens on apiListen.
// It does not touch the file system (see prepareDataDir).
func (c clusterConfig) validate(apiListen string) error {
	if !c.enabled() {
		if c.Listen != "" || c.Data != "" || c.NodeID != "" {
			return errors.New("--cluster-listen, --data and --node-id need --join (other members' --cluster-listen addresses; this node's own address alone starts a cluster of one)")
		}
		return nil
	}
	if c.Listen == "" {
		return errors.New("--join needs --cluster-listen HOST:PORT, this node's cluster address (it uses PORT to PORT+3)")
	}
	np, err := c.ports()
	if err != nil {
		return err
	}
	var errs []error
	for _, j := range c.Join {
		if _, _, err := splitHostPort("--join entry", j); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.checkPorts(np, apiListen))
	if c.Data == "" {
		errs = append(errs, errors.New("--join needs --data DIR: the node's event cache, JetStream store and NODE_ID live there"))
	}
	if c.NodeID != "" && !idPattern.MatchString(c.NodeID) {
		errs = append(errs, fmt.Errorf("--node-id %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.NodeID))
	}
	if !idPattern.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("[cluster] name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Name))
	}
	switch c.Provider {
	case "automanaged":
	case "etcd":
		if len(c.Etcd) == 0 {
			errs = append(errs, errors.New(`[cluster] provider = "etcd" needs etcd = ["host:2379", ...]`))
		}
	default:
		errs = append(errs, fmt.Errorf(`[cluster] provider %q: want "automanaged" or "etcd"`, c.Provider))
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("[cluster] replicas = %d: want 0 (min(3, members)) to 5", c.Replicas))
	}
	if c.FailureTimeout <= 0 || c.JoinTimeout <= 0 || c.DrainTimeout < 0 {
		errs = append(errs, errors.New("[cluster] failure_timeout and join_timeout must be > 0, drain_timeout >= 0"))
	}
	return errors.Join(errs...)
}

// checkPorts refuses a node whose ports collide with each other or with
// the API's.
func (c clusterConfig) checkPorts(np nodePorts, apiListen string) error {
	named := []struct {
		name string
		port int
	}{{"remote_port (--cluster-listen)", np.Remote}, {"health_port", np.Health}, {"nats_port", np.NATS}, {"nats_route_port", np.NATSRoute}}
	if _, ps, err := net.SplitHostPort(apiListen); err == nil {
		if p, _ := strconv.Atoi(ps); p != 0 {
			named = append(named, struct {
				name string
				port int
			}{"the API's --listen", p})
		}
	}
	for i := range named {
		for j := i + 1; j < len(named); j++ {
			if named[i].port == named[j].port {
				return fmt.Errorf("port %d is both %s and %s; the cluster uses --cluster-listen's port to port+3, so pick ports that do not overlap", named[i].port, named[i].name, named[j].name)
			}
		}
	}
	return nil
}

// members are the distinct cluster addresses of join and this node.
func (c clusterConfig) members() []string {
	out := []string{normAddr(c.Listen)}
	for _, j := range c.Join {
		if a := normAddr(j); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func normAddr(a string) string {
	h, p, err := net.SplitHostPort(strings.TrimSpace(a))
	if err != nil {
		return a
	}
	if h == "localhost" {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, p)
}

// replicas is the JetStream replica count: [cluster] replicas, or
// min(3, members named).
func (c clusterConfig) replicas() int {
	if c.Replicas > 0 {
		return c.Replicas
	}
	return min(3, len(c.members()))
}

// otherMembers' addresses shifted by off (e.g. 3: their NATS route ports;
// others use the derived ports), without this node.
func (c clusterConfig) otherMembers(off int) []string {
	self := normAddr(c.Listen)
	var out []string
	for _, m := range c.members() {
		if m == self {
			continue
		}
		h, p, _ := splitHostPort("--join entry", m)
		out = append(out, net.JoinHostPort(h, strconv.Itoa(p+off)))
	}
	return out
}

// nodeIDFile is the file in the data directory that names the node.
const nodeIDFile = "NODE_ID"

// prepareDataDir creates DIR (and DIR/events, DIR/jetstream), checks it is
// writable, and returns the node id: DIR/NODE_ID's, written on first use
// from --node-id or <hostname>-<P>. A --node-id other than the file's is
// refused: the data belongs to the node that wrote it.
func (c clusterConfig) prepareDataDir(port int) (string, error) {
	for _, d := range []string{c.Data, filepath.Join(c.Data, "events"), filepath.Join(c.Data, "jetstream")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", fmt.Errorf("--data %s: %w (pick a directory this user can write)", c.Data, err)
		}
	}
	probe, err := os.CreateTemp(c.Data, ".write-test-*")
	if err != nil {
		return "", fmt.Errorf("--data %s is not writable: %w (pick a directory this user can write)", c.Data, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	path := filepath.Join(c.Data, nodeIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !idPattern.MatchString(id) {
			return "", fmt.Errorf("%s holds %q, not a node id; fix or remove the file", path, id)
		}
		if c.NodeID != "" && c.NodeID != id {
			return "", fmt.Errorf("--node-id %q, but %s says this data belongs to node %q; use that id, or another --data for a new node", c.NodeID, path, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	id := c.NodeID
	if id == "" {
		host, _ := os.Hostname()
		host = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
				return r
			}
			return '-'
		}, strings.Split(host, ".")[0])
		if host == "" {
			host = "node"
		}
		id = fmt.Sprintf("%s-%d", host, port)
	}
	if err := writeFileSync(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return id, nil
}

// writeFileSync writes path through a synced temporary file and a rename,
// so a crash leaves the old content or the new, never part of it.
func writeFileSync(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
