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
	"shardgate/admin"
	"shardgate/config"
	"shardgate/upstream"
)

// upstreamState is one upstream as the request path sees it.
type upstreamState struct {
	name       string
	balancer   string
	pool       *upstream.Pool
	metrics    *admin.UpstreamMetrics
	retryAfter string // whole seconds, the queue timeout rounded up
}

// state is everything a reload replaces, swapped as one immutable value.
type state struct {
	router    router
	upstreams []*upstreamState
	trusted   []netip.Prefix
}

// Gateway is the request handler and its reloadable state. Safe for
// concurrent use.
type Gateway struct {
	state    atomic.Pointer[state]
	draining atomic.Bool
	metrics  *admin.Metrics
	access   *accesslog.Writer // nil when the access log is off
	log      *slog.Logger

	exchangers []*exchanger // one per GOMAXPROCS, chosen by listener shard

	// mu serialises Apply; it protects pools and backends.
	mu       sync.Mutex
	pools    map[string]*upstream.Pool
	backends map[string]*upstream.Backend // by upstream name + "|" + address
}

// New returns a gateway configured from cfg. metrics and access may be nil:
// then nothing is measured or logged.
func New(cfg *config.Config, metrics *admin.Metrics, access *accesslog.Writer, log *slog.Logger) (*Gateway, error) {
	g := &Gateway{
		metrics:  metrics,
		access:   access,
		log:      log,
		pools:    make(map[string]*upstream.Pool),
		backends: make(map[string]*upstream.Backend),
	}
	for range runtime.GOMAXPROCS(0) {
		g.exchangers = append(g.exchangers, newExchanger())
	}
	if err := g.Apply(cfg); err != nil {
		return nil, err
	}
	return g, nil
}

var scratchPool = sync.Pool{New: func() any { return &scratch{done: make(chan struct{}, 1)} }}

// Handler serves one client request. It is the fasthttp.RequestHandler.
func (g *Gateway) Handler(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.conn = ctx.Conn()
	defer g.recoverPanic(ctx)
	h := &ctx.Request.Header
	// The client connection closes after this response if the client asked,
	// or while draining (it reconnects, to the new process in an upgrade).
	// Decided now, applied last: forwarding resets both close flags.
	if h.ConnectionClose() || g.draining.Load() {
		defer ctx.SetConnectionClose()
	}

	st := g.state.Load()
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
	g.forward(ctx, s, u, start)
}

// forward waits for a slot, sends the request and records the outcome. A
// backend that refuses the connection (or does not accept it within
// connect_timeout) has seen nothing of the request, so the request is sent
// to another backend of the pool and the refusing one is ejected for
// upstream.EjectTime.
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, s *scratch, u *upstreamState, start time.Time) {
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		b, w, err := u.pool.Acquire(s)
		waited += w
		if err != nil {
			g.shed(ctx, s, u, start, waited, err)
			return
		}
		sent := time.Now()
		s.pool, s.backend, s.ctx = u.pool, b, ctx
		err = g.exchangerFor(s.conn).run(s)
		s.pool, s.backend, s.ctx = nil, nil, nil
		took := time.Since(sent)
		bm, _ := b.Tag().(*admin.BackendMetrics) // set by Gateway.backend
		if err == nil {
			bm.Response(took)
			rewriteResponse(&ctx.Response.Header, s)
			g.done(ctx, s, u, b, start, waited, took)
			return
		}
		kind, code, text := classify(err)
		bm.Error(kind)
		g.log.Debug("backend error", "upstream", u.name, "backend", b.Address(), "error", err)
		if kind == admin.ErrConnect {
			if u.pool.Eject(b) {
				g.log.Warn("backend ejected: connect failed", "upstream", u.name, "backend", b.Address(),
					"for", upstream.EjectTime, "error", err)
			}
			if attempt < maxConnectAttempts && u.pool.Healthy() {
				continue
			}
		}
		reply(ctx, code, text, "")
		g.done(ctx, s, u, b, start, waited, took)
		return
	}
}

// maxConnectAttempts bounds the backends one request tries to connect to.
const maxConnectAttempts = 3

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
	u.metrics.Shed(admin.ShedReason(reason))
	code := fasthttp.StatusServiceUnavailable
	if reason == upstream.ShedClientGone {
		code = statusClientGone
		ctx.SetConnectionClose()
	}
	reply(ctx, code, shedText[reason], u.retryAfter)
	u.metrics.Request(code, time.Since(start))
	g.logAccess(ctx, s, start, u, nil, waited, 0, shedNames[reason])
}

// exchangerFor returns the worker pool of the listener shard that accepted
// c, so that shards share no channel.
func (g *Gateway) exchangerFor(c net.Conn) *exchanger {
	if lc, ok := c.(sharded); ok { // *listener.Conn, or a TLS or PROXY wrapper of one
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
}

// statusClientGone is recorded for requests whose client left while they
// waited; the client never sees it (nginx's 499).
const statusClientGone = 499

var (
	shedText  = [...]string{"queue full", "queue timeout", "client gone", "no healthy backend"}
	shedNames = [...]string{"queue_full", "queue_timeout", "client_gone", "no_backend"}
)

// reply replaces the response with the gateway's own: a status and one line
// of text naming the reason.
func reply(ctx *fasthttp.RequestCtx, code int, text, retryAfter string) {
	r := &ctx.Response
	r.Reset()
	r.SetStatusCode(code)
	r.Header.SetContentType("text/plain; charset=utf-8")
	if retryAfter != "" {
		r.Header.Set("Retry-After", retryAfter)
	}
	r.SetBodyString(text + "\n")
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

func (g *Gateway) logAccess(ctx *fasthttp.RequestCtx, s *scratch, start time.Time, u *upstreamState,
	b *upstream.Backend, waited, took time.Duration, shed string) {
	if g.access == nil {
		return
	}
	e := accesslog.Entry{
		Time:        start,
		Method:      ctx.Request.Header.Method(),
		Host:        ctx.Request.Header.Host(),
		Path:        ctx.Request.Header.RequestURI(),
		Status:      ctx.Response.StatusCode(),
		Bytes:       int64(len(ctx.Response.Body())),
		QueueWait:   waited,
		BackendTime: took,
		Total:       time.Since(start),
		Shed:        shed,
		Shard:       -1,
	}
	if c, ok := s.conn.(sharded); ok {
		e.Shard = c.Shard()
	}
	if s.conn != nil {
		s.buf = peerAddrPort(s.buf[:0], s.conn)
		e.Client = s.buf
	}
	if u != nil {
		e.Upstream = u.name
	}
	if b != nil {
		e.Backend = b.Address()
	}
	g.access.Log(&e)
}

func retryAfter(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(secs, 1), 10)
}
