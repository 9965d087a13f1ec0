// Package gateway is shardgate's request path: a fasthttp handler that
// routes each buffered request to an upstream, waits for admission, forwards
// it to the chosen backend and maps every failure to one status code.
package gateway

import (
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/accesslog"
	"shardgate/config"
	"shardgate/discovery"
	"shardgate/metrics"
	"shardgate/upstream"
)

// upstreamState is one upstream as the request path sees it.
type upstreamState struct {
	name       string
	balancer   string
	pool       *upstream.Pool
	metrics    *metrics.UpstreamMetrics
	retries    *metrics.RetryMetrics
	retryAfter string // whole seconds, the queue timeout rounded up

	// Body handling; see body.go. A route with its own buffering or
	// response_timeout gets a copy of its upstream's state with these set.
	bodies  *bodyConfig
	streams *atomic.Int64 // streams open now, shared by the copies
	stream  bool          // buffering: false
	timeout time.Duration // the route's response_timeout; 0: the upstream's

	discovery *discovery.Watcher // nil without discover (discover.go)

	tunnels         *tunnelSet // see tunnel.go
	connectTimeout  time.Duration
	responseTimeout time.Duration
}

// state is everything a reload replaces, swapped as one immutable value.
type state struct {
	router    router
	upstreams []*upstreamState
	trusted   []netip.Prefix
	limits    limits
}

// Gateway is the request handler and its reloadable state. Safe for
// concurrent use.
type Gateway struct {
	state    atomic.Pointer[state]
	draining atomic.Bool
	metrics  *metrics.Metrics
	access   *accesslog.Writer // nil when the access log is off
	log      *slog.Logger

	exchangers []*exchanger // one per GOMAXPROCS, chosen by listener shard
	spool      spooler
	tunnels    tunnelRegistry
	history    historian // the status page's graphs; see history.go

	// applying serialises Apply, DNS lookups included; mu serialises the
	// swaps of Apply and of DNS discovery, and protects what follows it.
	applying sync.Mutex
	mu       sync.Mutex
	pools    map[string]*upstream.Pool
	backends map[string]*upstream.Backend  // by upstream name + "|" + address
	cfg      *config.Config                // the config applied last
	watchers map[string]*discovery.Watcher // by upstream name: those with discover (discover.go)

	shared *upstream.Shared // nil: slots counted in this process only (shared.go)
	// clustered: limits are shared with other replicas (cluster.go)
	clustered bool
}

// New returns a gateway configured from cfg. metrics and access may be nil:
// then nothing is measured or logged.
func New(cfg *config.Config, m *metrics.Metrics, access *accesslog.Writer, log *slog.Logger, opts ...Option) (*Gateway, error) {
	g := &Gateway{
		metrics:  m,
		access:   access,
		log:      log,
		pools:    make(map[string]*upstream.Pool),
		backends: make(map[string]*upstream.Backend),
	}
	if m != nil {
		g.spool.metrics = m.Bodies()
	}
	for range runtime.GOMAXPROCS(0) {
		g.exchangers = append(g.exchangers, newExchanger())
	}
	for _, o := range opts {
		o(g)
	}
	if err := g.Apply(cfg); err != nil {
		return nil, err
	}
	g.startHistory()
	return g, nil
}

// Handler serves one client request. It is the fasthttp.RequestHandler.
func (g *Gateway) Handler(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.conn = ctx.Conn()
	rearm(s.conn)
	defer g.recoverPanic(ctx)
	h := &ctx.Request.Header
	// The client connection closes after this response if the client asked,
	// or while draining (it reconnects, to the new process in an upgrade).
	// Decided now, applied last: forwarding resets both close flags.
	if h.ConnectionClose() || g.draining.Load() {
		defer ctx.SetConnectionClose()
	}

	st := g.state.Load()
	if r := st.limits.check(h); r != nil {
		g.refuse(ctx, s, start, r)
		return
	}
	normalize(h, s)
	s.host = normalizeHost(s.host, h.Host())
	u := st.router.match(s.host, routePath(h.RequestURI(), &s.uri))
	if u == nil {
		reply(ctx, fasthttp.StatusNotFound, "no route", "")
		g.logAccess(ctx, s, start, nil, nil, 0, 0, "")
		return
	}
	if len(h.Host()) == 0 {
		// HTTP/1.0 allows a request without Host; name the address the
		// client connected to, as the request line cannot name a backend.
		h.SetHost(ctx.LocalAddr().String())
	}
	upgrade := upgradeRequested(h) // before rewriteRequest drops Connection and Upgrade
	if !rewriteRequest(h, peerAddr(s.conn), st.trusted, s) {
		reply(ctx, fasthttp.StatusBadRequest, "conflicting Content-Length and Transfer-Encoding", "")
		ctx.SetConnectionClose()
		g.logAccess(ctx, s, start, nil, nil, 0, 0, "")
		return
	}
	// fasthttp's client parses the URI and would otherwise rewrite Host
	// from it (lowercased, or from an absolute-form target): forward the
	// client's Host unchanged.
	ctx.Request.UseHostHeader = true
	if uri := h.RequestURI(); len(uri) > 0 && uri[0] != '/' {
		// An absolute-form target's user:password would become an
		// Authorization header the client never sent.
		u := ctx.Request.URI()
		u.SetUsernameBytes(nil)
		u.SetPasswordBytes(nil)
	}
	if upgrade != nil {
		g.startTunnel(ctx, u, upgrade, start)
		return
	}
	if !g.readBody(ctx, s, u, start) {
		return
	}
	g.forward(ctx, s, u, start)
}

// forward waits for a slot, sends the request and records the outcome. A
// request that failed before the backend could have acted on it is sent
// again, to the same or another backend, when upstream.Resendable says it is
// safe and the upstream's retry budget allows (see retry.go); every failure
// counts towards the backend's ejection (upstream.Pool.Failed).
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, s *scratch, u *upstreamState, start time.Time) {
	var waited time.Duration
	u.pool.Sent(start)
	for attempt := 1; ; attempt++ {
		b, w, err := u.pool.Acquire(s)
		waited += w
		if err != nil {
			g.retried(u, attempt, false)
			g.shed(ctx, s, u, start, waited, err)
			return
		}
		sent := time.Now()
		s.pool, s.backend, s.ctx = u.pool, b, ctx
		s.bodies.prepare(g, u)
		err = g.exchangerFor(s.conn).run(s)
		s.pool, s.backend, s.ctx = nil, nil, nil
		took := time.Since(sent)
		if err == nil {
			u.pool.Answered(b, ctx.Response.StatusCode())
			g.retried(u, attempt, true)
			rewriteResponse(&ctx.Response.Header, s)
			g.finish(ctx, s, u, b, start, waited, took)
			return
		}
		kind := upstream.Classify(err)
		g.log.Debug("backend error", "upstream", u.name, "backend", b.Address(), "error", err)
		g.failed(u, b, err)
		if g.retry(ctx, u, b, err, attempt) {
			continue
		}
		g.retried(u, attempt, false)
		code, text := backendStatus(kind, err)
		reply(ctx, code, text, "")
		g.done(ctx, s, u, b, start, waited, took)
		return
	}
}

// done records a request that reached a backend.
func (g *Gateway) done(ctx *fasthttp.RequestCtx, s *scratch, u *upstreamState, b *upstream.Backend,
	start time.Time, waited, took time.Duration) {
	u.metrics.QueueWait(waited)
	u.metrics.Request(ctx.Response.StatusCode(), time.Since(start))
	g.logAccess(ctx, s, start, u, b, waited, took, "")
}

// shed answers a request that got no slot and records it.
func (g *Gateway) shed(ctx *fasthttp.RequestCtx, s *scratch, u *upstreamState, start time.Time,
	waited time.Duration, err error) {
	reason, _ := upstream.Reason(err)
	u.metrics.QueueWait(waited)
	u.metrics.Shed(reason)
	code := fasthttp.StatusServiceUnavailable
	if reason == upstream.ShedClientGone {
		code = statusClientGone
		ctx.SetConnectionClose()
	}
	reply(ctx, code, shedText[reason], u.retryAfter)
	u.metrics.Request(code, time.Since(start))
	g.logAccess(ctx, s, start, u, nil, waited, 0, reason.String())
}

// exchangerFor returns the worker pool of the listener shard that accepted
// c, so that shards share no channel.
func (g *Gateway) exchangerFor(c net.Conn) *exchanger {
	if lc, ok := c.(shardConn); ok {
		return g.exchangers[lc.Shard()%len(g.exchangers)]
	}
	return g.exchangers[0]
}

// Close stops the gateway's idle exchange workers. Call it once no request
// runs any more.
func (g *Gateway) Close() {
	for _, ex := range g.exchangers {
		ex.close()
	}
	g.stopChecks()
	g.stopHistory()
	g.stopWatchers()
}

func (g *Gateway) recoverPanic(ctx *fasthttp.RequestCtx) {
	if v := recover(); v != nil {
		g.log.Error("panic serving request", "panic", v, "stack", string(debug.Stack()))
		reply(ctx, fasthttp.StatusInternalServerError, "internal error", "")
		ctx.SetConnectionClose()
	}
}

// Drain makes the gateway close every client connection after its current
// response. Requests that arrive on open connections are still served, and
// admitted and queued ones finish.
func (g *Gateway) Drain() { g.draining.Store(true) }

func retryAfter(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(secs, 1), 10)
}
