package api

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is the [server] section of corral's configuration file.
type Config struct {
	// Listen is the HOST:PORT to bind (default "127.0.0.1:7070"). Binding
	// anything but a loopback address requires at least one auth token.
	Listen string `toml:"listen"`
	// AuthTokens are the bearer tokens accepted on /api/* and /metrics
	// ("Authorization: Bearer <token>"; the WebSocket also accepts
	// ?access_token=). Empty: no authentication (loopback only).
	AuthTokens []string `toml:"auth_tokens"`
	// AllowedOrigins are the browser origins ("https://ui.example.com", or
	// "*") allowed to call the API cross-origin (CORS) and to open the event
	// WebSocket. The server's own origin is always allowed.
	AllowedOrigins []string `toml:"allowed_origins"`
	// MaxBodyBytes bounds JSON request bodies (default 8 MiB); larger ones
	// get 413.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// MaxUploadBytes bounds a file upload request (default 1 GiB).
	MaxUploadBytes int64 `toml:"max_upload_bytes"`
	// WSBuffer is how many frames wait in memory for a WebSocket client's
	// socket (default 1024). A live client falls behind, and is told so and
	// closed, when the engine's per-subscriber buffer (eventbus
	// subscriber_buffer) overflows on top of this.
	WSBuffer int `toml:"ws_buffer"`
	// WSPingInterval is how often the server pings each WebSocket client; a
	// client that does not answer within the interval is closed (default 20s).
	WSPingInterval time.Duration `toml:"ws_ping_interval"`
	// WSWriteTimeout bounds one frame write to a WebSocket client (default 10s).
	WSWriteTimeout time.Duration `toml:"ws_write_timeout"`
	// MaxPageSize bounds ?limit= on the event list (default 1000).
	MaxPageSize int `toml:"max_page_size"`
}

// Defaults.
const (
	DefaultListen         = "127.0.0.1:7070"
	DefaultMaxBodyBytes   = 8 << 20
	DefaultMaxUploadBytes = 1 << 30
	DefaultWSBuffer       = 1024
	DefaultWSPingInterval = 20 * time.Second
	DefaultWSWriteTimeout = 10 * time.Second
	DefaultMaxPageSize    = 1000
	defaultPageSize       = 100
)

// DefaultConfig returns the configuration used when the file says nothing.
func DefaultConfig() Config {
	return Config{
		Listen:         DefaultListen,
		MaxBodyBytes:   DefaultMaxBodyBytes,
		MaxUploadBytes: DefaultMaxUploadBytes,
		WSBuffer:       DefaultWSBuffer,
		WSPingInterval: DefaultWSPingInterval,
		WSWriteTimeout: DefaultWSWriteTimeout,
		MaxPageSize:    DefaultMaxPageSize,
	}
}

// Validate reports every invalid key, naming it, including a non-loopback
// listen address without auth tokens.
func (c Config) Validate() error {
	var errs []error
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("server config: listen = %q is not HOST:PORT (e.g. \"127.0.0.1:7070\"): %w", c.Listen, err))
	} else {
		if _, perr := net.LookupPort("tcp", port); perr != nil {
			errs = append(errs, fmt.Errorf("server config: listen = %q has an invalid port: %w", c.Listen, perr))
		}
		if !IsLoopback(host) && len(c.AuthTokens) == 0 {
			errs = append(errs, fmt.Errorf("server config: listen = %q is reachable from other hosts but auth_tokens is empty; refusing to start an unauthenticated server: set auth_tokens = [\"<a long random string>\"] or listen on 127.0.0.1", c.Listen))
		}
	}
	for i, t := range c.AuthTokens {
		if len(t) < 16 {
			errs = append(errs, fmt.Errorf("server config: auth_tokens[%d] is %d characters; use at least 16 random characters (e.g. `openssl rand -hex 32`)", i, len(t)))
		}
	}
	for i, o := range c.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("server config: allowed_origins[%d] = %q is not an origin like \"https://ui.example.com\" or \"http://localhost:3000\" (scheme and host, no path)", i, o))
		}
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("server config: max_body_bytes = %d must be at least 1024", c.MaxBodyBytes))
	}
	if c.MaxUploadBytes < 1024 {
		errs = append(errs, fmt.Errorf("server config: max_upload_bytes = %d must be at least 1024", c.MaxUploadBytes))
	}
	if c.WSBuffer < 1 || c.WSBuffer > 1<<20 {
		errs = append(errs, fmt.Errorf("server config: ws_buffer = %d must be between 1 and %d", c.WSBuffer, 1<<20))
	}
	if c.WSPingInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("server config: ws_ping_interval = %s must be at least 100ms", c.WSPingInterval))
	}
	if c.WSWriteTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("server config: ws_write_timeout = %s must be at least 10ms", c.WSWriteTimeout))
	}
	if c.MaxPageSize < 1 {
		errs = append(errs, fmt.Errorf("server config: max_page_size = %d must be at least 1", c.MaxPageSize))
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether host (from HOST:PORT) only accepts local
// connections: "localhost", 127.0.0.0/8 or ::1. An empty host means every
// interface, so it is not loopback.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
