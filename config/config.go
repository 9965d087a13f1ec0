// Package config reads shardgate's YAML configuration: the schema, its
// defaults, and validation whose errors name the key path and the line of the
// offending value, such as
//
//	upstreams.app.backends[1].max_inflight: must be ≥ 0 (line 23)
//
// The package imports no runtime package; it only describes what they build.
// The one shardgate import is balancer, for the names of its policies, which
// are declared there once.
package config

import (
	"net/netip"
	"shardgate/balancer"
	"strconv"
	"strings"
	"time"
)

// Config is a loaded and validated configuration. Load and Parse return a new
// value each time and never modify it afterwards, so it is safe for concurrent
// reads; callers must not modify it while others read it.
type Config struct {
	// Listen is the list of client-facing listeners (YAML key listen).
	// Default, when the key is absent: one listener on ":8080" with 0 shards.
	Listen []Listen
	// Admin is the admin listener for /metrics, /healthz, /readyz and
	// /status (YAML key admin).
	Admin Admin
	// Server holds the client-side limits and timeouts (YAML key server).
	Server Server
	// Log configures the process log and the access log (YAML key log).
	Log Log
	// Upstreams maps each upstream name to its pool (YAML key upstreams).
	// At least one is required.
	Upstreams map[string]*Upstream
	// UpstreamNames lists the keys of Upstreams in sorted order, so callers
	// iterate deterministically. Filled by the loader.
	UpstreamNames []string
	// Routes maps requests to upstreams by host and path prefix, in file
	// order (YAML key routes). At least one is required.
	Routes []Route
	// Processes is the number of worker processes serving the listeners
	// (YAML key processes), between 1 and MaxProcesses. Default 1: one
	// process, no supervisor. See processes.go.
	Processes int
	// Cluster shares each backend's limit with other replicas through etcd
	// (YAML key cluster); nil = single instance. See cluster.go.
	Cluster *Cluster
}

// Listen is one client-facing listener.
type Listen struct {
	// Address is host:port to listen on (YAML key address, required). The
	// host may be empty to listen on every address; port 0 picks a free port.
	Address string
	// Shards is the number of SO_REUSEPORT sockets, each with its own accept
	// loop (YAML key shards). Default 0, which means one per GOMAXPROCS; the
	// runtime resolves it. At most 1024.
	Shards int
	// TLS, when not nil, terminates TLS on this listener (YAML key tls).
	// Default nil: plain HTTP.
	TLS *TLS
	// RedirectHTTPS makes a plain listener answer every request with 308
	// to the same host and target on the first TLS listener's port (YAML
	// key redirect_https). Default false. Needs a TLS listener; not valid
	// on one.
	RedirectHTTPS bool
	// ProxyProtocol requires a PROXY protocol v1 or v2 header at the start
	// of every connection and takes the client address from it (YAML key
	// proxy_protocol). The header must arrive within server.read_timeout;
	// a connection without a valid one is closed. Default false.
	ProxyProtocol bool
}

// Admin is the admin listener.
type Admin struct {
	// Address is host:port of the admin listener (YAML key address).
	// Default "127.0.0.1:9180". An explicit "" disables the admin listener.
	// It must not overlap any listen address.
	Address string
	// Allow lists the client networks that may use the admin listener
	// (YAML key allow: CIDRs or bare IPs). Default nil, which means
	// loopback only (Loopback), whatever the bind address; others get 403.
	Allow []netip.Prefix
	// MetricsAllow lists further networks that may fetch /metrics,
	// /healthz and /readyz only (YAML key metrics_allow), such as a
	// Prometheus server's. Default empty.
	MetricsAllow []netip.Prefix
	// Auth, when set, requires credentials on every path but /healthz and
	// /readyz (YAML key auth); a request without valid ones gets 401.
	// Default: none.
	Auth AdminAuth
	// Pprof serves /debug/pprof/ (YAML key pprof). Default false: 404.
	Pprof bool
	// TLS, when not nil, serves the admin listener over TLS (YAML key tls,
	// the shape of a listener's, without hsts). Default nil.
	TLS *TLS
}

// Server holds the client-side limits and timeouts.
type Server struct {
	// ReadTimeout bounds each read of a request body from the client, and
	// the header block when it is below HeaderTimeout (YAML key
	// read_timeout). Default 30s; must be > 0.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response held in memory to the client,
	// and each write of a spooled or streamed one (YAML key write_timeout).
	// Default 30s; must be > 0.
	WriteTimeout time.Duration
	// IdleTimeout is how long an idle keep-alive client connection stays
	// open (YAML key idle_timeout). Default 60s; must be > 0.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds the drain of in-flight and queued requests on
	// SIGTERM (YAML key shutdown_timeout). Default 30s; must be > 0.
	ShutdownTimeout time.Duration
	// MaxHeaderBytes is the largest request header block accepted, in bytes
	// (YAML key max_header_bytes, a size). Default 16 KiB; must be between
	// 1 KiB and 1 MiB.
	MaxHeaderBytes int
	// MaxBodyBytes is the largest request body accepted, in bytes (YAML key
	// max_body_bytes, a size). Default 10 MiB; must be > 0.
	MaxBodyBytes int
	// MaxHeaderCount is the most header fields a request may carry (YAML
	// key max_header_count); one more is refused with 431. Default 100;
	// must be between 1 and 10000.
	MaxHeaderCount int
	// MaxURIBytes is the longest request-target accepted, in bytes (YAML
	// key max_uri_bytes, a size); a longer one is refused with 414. Default
	// 8 KiB; must be between 256 B and 1 MiB. The request line must also
	// fit in max_header_bytes, so a target longer than that gets 431.
	MaxURIBytes int
	// TrustedProxies are the client networks whose X-Forwarded-For is kept
	// and appended to (YAML key trusted_proxies: CIDRs or bare IPs; a bare
	// IP becomes a /32 or /128). Prefixes are stored masked. Default empty:
	// X-Forwarded-For from clients is never trusted.
	TrustedProxies []netip.Prefix
	// Bodies configures buffering, spooling and the timeouts of long
	// transfers (keys listed on Bodies).
	Bodies
}

// Log configures logging.
type Log struct {
	// Format is the process log format, "text" (default) or "json"
	// (YAML key format).
	Format string
	// Level is the lowest level logged: "debug", "info" (default), "warn"
	// or "error" (YAML key level).
	Level string
	// AccessLog is where access log lines go: "" (default) turns the access
	// log off, "stdout" or "stderr" name those streams, anything else is a
	// file path (YAML key access_log).
	AccessLog string
	// AccessLogBuffer is how many access log lines may wait for the writer
	// before new ones are dropped and counted (YAML key access_log_buffer).
	// Default 4096; must be > 0.
	AccessLogBuffer int
}

// Upstream is one named pool of backends with its admission queue.
type Upstream struct {
	// Name is the upstream's key under upstreams, filled by the loader. It
	// matches [A-Za-z0-9_.-]+ and is used as a Prometheus label value.
	Name string
	// Balancer is the selection policy among backends with a free slot
	// (YAML key balancer): "least_inflight" (default), "p2c",
	// "round_robin" or "random".
	Balancer string
	// MaxInflight caps the requests in flight over the whole pool (YAML key
	// max_inflight). Default 0, which means the sum of the backend limits,
	// or unlimited when any backend is unlimited. Must be ≥ 0.
	MaxInflight int
	// Queue configures the admission queue (YAML key queue).
	Queue Queue
	// ConnectTimeout bounds dialing a backend (YAML key connect_timeout).
	// Default 1s; must be > 0.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds waiting for a backend's response header, and
	// each read of a body longer than response_buffer_bytes (YAML key
	// response_timeout). Default 30s; must be > 0. Keep it at or below the
	// backend's own worker timeout. A route may override it.
	ResponseTimeout time.Duration
	// IdleConnTimeout is how long an idle backend connection is kept for
	// reuse (YAML key idle_conn_timeout). Default 1s; must be > 0. Keep it
	// below the backend's keep-alive (gunicorn's default is 2s).
	IdleConnTimeout time.Duration
	// Backends are the pool's members, in file order. At least one,
	// unless Discover is set: then any number, and the gateway adds those
	// DNS gives.
	Backends []Backend
	// Discover fills the backends from DNS (YAML key discover); nil when
	// the key is absent.
	Discover *Discover
	// HealthCheck configures active checks (YAML key health_check). nil,
	// when the key is absent, means no active checks.
	HealthCheck *HealthCheck
	// OutlierDetection configures passive ejection (YAML key
	// outlier_detection); see its defaults.
	OutlierDetection OutlierDetection
	// RetryBudget bounds retries (YAML key retry_budget); see its defaults.
	RetryBudget RetryBudget
	// TunnelIdleTimeout closes an Upgrade tunnel (WebSocket) after no byte
	// went either way for this long (YAML key tunnel_idle_timeout).
	// Default 1h; must be > 0.
	TunnelIdleTimeout time.Duration
	// MaxTunnels caps the Upgrade tunnels open at once over the upstream
	// (YAML key max_tunnels); one more is answered 503. Default 0: no cap
	// besides the backend slots, one of which each tunnel holds. Must be ≥ 0.
	MaxTunnels int
	// TimeoutHold keeps a backend slot taken after a request timed out
	// (response_timeout) until the backend answers or closes the
	// connection, this long at most (YAML key timeout_hold): the worker is
	// still running the request. Default 60s; 0 releases the slot with
	// the 504. Must be ≥ 0.
	TimeoutHold time.Duration
}

// Queue configures an upstream's admission queue.
type Queue struct {
	// MaxLength is how many requests may wait for a slot (YAML key
	// max_length); one more is shed with 503 at once. Default 1000; must be
	// ≥ 0; 0 means no queue: shed at once when no slot is free.
	MaxLength int
	// Timeout is the longest a request waits for a slot before it is shed
	// with 503 and Retry-After (YAML key timeout). Default 5s; must be > 0.
	Timeout time.Duration
	// LIFOAfter switches the queue to newest-first while its oldest waiter
	// has waited longer than this (YAML key lifo_after). Default 500ms when
	// the key is absent; an explicit 0 keeps strict FIFO. Must be ≥ 0.
	LIFOAfter time.Duration
}

// Backend is one member of an upstream pool.
type Backend struct {
	// Address is the backend's host:port (YAML key address, required). The
	// host must not be empty; the port is 1-65535.
	Address string
	// MaxInflight is how many requests the backend can run at once (YAML
	// key max_inflight). Default 0, which means unlimited. Must be ≥ 0.
	// Set either MaxInflight or Workers, not both.
	MaxInflight int
	// Workers is gunicorn's -w, the number of worker processes (YAML key
	// workers). When > 0 the limit is Workers × max(Threads, 1). Default 0.
	Workers int
	// Threads is gunicorn's --threads, the threads per gthread worker (YAML
	// key threads). Default 0 (same as 1: sync workers); only valid with
	// Workers > 0.
	Threads int
	// Weight is the backend's share relative to its peers when limits do
	// not decide (YAML key weight). Default 1; must be between 1 and 1000.
	Weight int
}

// Limit returns how many requests the backend may run at once:
// Workers × max(Threads, 1) when Workers is set, else MaxInflight. 0 means
// unlimited.
func (b Backend) Limit() int {
	if b.Workers > 0 {
		return b.Workers * max(b.Threads, 1)
	}
	return b.MaxInflight
}

// Route sends requests whose host and path match to an upstream.
type Route struct {
	// Host is the host to match (YAML key host): an exact host
	// ("example.com"), a wildcard suffix ("*.example.com", which matches
	// subdomains only) or "*" for any host (default). It never has a port
	// and is stored lowercased; matching is case-insensitive.
	Host string
	// PathPrefix is the path prefix to match (YAML key path_prefix).
	// Default "/"; must start with "/".
	PathPrefix string
	// Upstream is the name of the upstream that serves the route (YAML key
	// upstream, required).
	Upstream string
	// Buffering is false to pass every response of the route through as it
	// arrives, holding the backend slot while it lasts (YAML key buffering).
	// Default true: responses are buffered or spooled, see Bodies.
	Buffering bool
	// ResponseTimeout overrides the upstream's response_timeout for this
	// route: the wait for the response header and between reads of a
	// streamed body (YAML key response_timeout). Default 0: the upstream's.
	ResponseTimeout time.Duration
}

// Error is one problem in a configuration file. Load and Parse join every
// problem they find with errors.Join, each one an *Error, so errors.As finds
// them. An Error is never modified after it is returned, so it is safe for
// concurrent use.
type Error struct {
	// Path is the dotted key path of the offending value, such as
	// "upstreams.app.backends[1].max_inflight"; "" for problems with the
	// file as a whole.
	Path string
	// Line is the 1-based line of the offending node; 0 when unknown.
	Line int
	// Msg describes the problem.
	Msg string
}

// Error formats e as "path: msg (line N)", leaving out the parts that are
// empty or zero.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		b.WriteString(" (line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(")")
	}
	return b.String()
}

// Defaults of the values the YAML may leave out.
const (
	defaultListen          = ":8080"
	defaultAdmin           = "127.0.0.1:9180"
	defaultBalancer        = balancer.Default
	defaultAccessLogBuffer = 4096
	defaultQueueLength     = 1000
	defaultWeight          = 1
)

func defaultConfig() *Config {
	return &Config{
		Listen: []Listen{{Address: defaultListen}},
		Admin:  Admin{Address: defaultAdmin},
		Server: Server{
			ReadTimeout:     30 * time.Second,
			WriteTimeout:    30 * time.Second,
			IdleTimeout:     60 * time.Second,
			ShutdownTimeout: 30 * time.Second,
			MaxHeaderBytes:  16 << 10,
			MaxBodyBytes:    10 << 20,
			Bodies:          defaultBodies(),
			MaxHeaderCount:  100,
			MaxURIBytes:     8 << 10,
		},
		Log:       Log{Format: "text", Level: "info", AccessLogBuffer: defaultAccessLogBuffer},
		Upstreams: map[string]*Upstream{},
		Processes: 1,
	}
}

func defaultUpstream(name string) *Upstream {
	return &Upstream{
		Name:     name,
		Balancer: defaultBalancer,
		Queue: Queue{
			MaxLength: defaultQueueLength,
			Timeout:   5 * time.Second,
			LIFOAfter: 500 * time.Millisecond,
		},
		ConnectTimeout:   time.Second,
		ResponseTimeout:  30 * time.Second,
		IdleConnTimeout:  time.Second,
		OutlierDetection: defaultOutlier(),
		RetryBudget:      defaultRetryBudget(),

		TunnelIdleTimeout: time.Hour,
		TimeoutHold:       time.Minute,
	}
}
