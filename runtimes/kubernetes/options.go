package kubernetes

import (
	"log/slog"
	"time"

	"k8s.io/client-go/rest"

	"corral/runtimes"
)

// Option configures New beyond the Config section.
type Option func(*options)

type options struct {
	logger *slog.Logger
	grace  time.Duration
	owner  runtimes.Owner
	rest   *rest.Config
}

// WithLogger sets the backend's logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithAgentGracePeriod is how long a lost agent connection may reconnect
// (resuming output) before the sandbox is declared lost (0: agentwire's
// default).
func WithAgentGracePeriod(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithOwner is recorded on pods started before any session asks.
func WithOwner(ow runtimes.Owner) Option { return func(o *options) { o.owner = ow } }

// WithRESTConfig connects with cfg instead of loading Config.Kubeconfig
// (tests: impersonation, a wrong host).
func WithRESTConfig(cfg *rest.Config) Option { return func(o *options) { o.rest = cfg } }
