package gateway

import (
	"bufio"
	"log/slog"
	"net"
	"net/netip"
	"shardgate/config"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// benchHead is a typical browser-ish request as a client sends it.
var benchHead = strings.Join([]string{
	"GET /api/v1/items?page=2 HTTP/1.1",
	"Host: app.test",
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench",
	"Accept: text/html,application/xhtml+xml",
	"Accept-Encoding: gzip, deflate",
	"Accept-Language: en-US,en;q=0.5",
	"Cookie: session=0123456789abcdef",
	"Connection: keep-alive",
	"X-Forwarded-For: 198.51.100.1",
}, "\r\n") + "\r\n\r\n"

var smallBody = []byte("hello, world\n")

// startSmallBackend serves a 13-byte body on loopback.
func startSmallBackend(tb testing.TB) string {
	return startBackend(tb, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.SetContentType("text/plain")
		ctx.Response.SetBody(smallBody)
	})
}

// benchLimits are the backend limits the handler is measured with: the
// unlimited fast path and a limited backend that takes the CAS path.
var benchLimits = []struct {
	name  string
	limit int
}{{"unlimited", 0}, {"limited", 64}}

// BenchmarkHandler measures one proxied GET end to end: a keep-alive client
// on an in-memory connection, the gateway's server and handler, and a
// fasthttp backend on loopback.
func BenchmarkHandler(b *testing.B) {
	for _, bl := range benchLimits {
		b.Run(bl.name, func(b *testing.B) {
			g, cfg := newTestGateway(b, oneUpstream(startSmallBackend(b), bl.limit, ""))
			c := serveInmemory(b, g, cfg.Server)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			if err := req.Read(bufio.NewReader(strings.NewReader(benchHead))); err != nil {
				b.Fatalf("Request.Read() error = %v", err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Fatalf("Do() = %d, %v; want 200", resp.StatusCode(), err)
				}
			}
		})
	}
}

// BenchmarkHandlerDirect calls the handler on a reused RequestCtx, without
// the client side: the gateway's own cost plus the backend round trip.
func BenchmarkHandlerDirect(b *testing.B) {
	for _, bl := range benchLimits {
		b.Run(bl.name, func(b *testing.B) {
			g, _ := newTestGateway(b, oneUpstream(startSmallBackend(b), bl.limit, ""))
			run := directRunner(b, g)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				run()
			}
		})
	}
}

// BenchmarkHandlerParallel sends from several goroutines at once, so the
// limited pool's CAS and the backend connection pool see contention.
func BenchmarkHandlerParallel(b *testing.B) {
	for _, bl := range benchLimits {
		b.Run(bl.name, func(b *testing.B) {
			g, cfg := newTestGateway(b, oneUpstream(startSmallBackend(b), bl.limit, ""))
			c := serveInmemory(b, g, cfg.Server)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				if err := req.Read(bufio.NewReader(strings.NewReader(benchHead))); err != nil {
					b.Errorf("Request.Read() error = %v", err)
					return
				}
				for pb.Next() {
					if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						b.Errorf("Do() = %d, %v; want 200", resp.StatusCode(), err)
						return
					}
				}
			})
		})
	}
}

// directRunner returns a func that serves benchHead through g.Handler on
// one reused RequestCtx and fails tb unless the backend answered 200.
func directRunner(tb testing.TB, g *Gateway) func() {
	tb.Helper()
	var tmpl fasthttp.Request
	if err := tmpl.Read(bufio.NewReader(strings.NewReader(benchHead))); err != nil {
		tb.Fatalf("Request.Read() error = %v", err)
	}
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&tmpl, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10).To4(), Port: 40000}, nil)
	return func() {
		tmpl.CopyTo(&ctx.Request)
		ctx.Response.Reset()
		g.Handler(ctx)
		if ctx.Response.StatusCode() != 200 {
			tb.Fatalf("Handler() status = %d (%q), want 200", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// benchRouter is a routing table of realistic size.
func benchRouter() *router {
	return newTestRouter(
		testRoute{"*", "/", "app"},
		testRoute{"*", "/static/", "static"},
		testRoute{"*", "/api", "api"},
		testRoute{"*", "/api/v2", "api2"},
		testRoute{"example.com", "/", "site"},
		testRoute{"example.com", "/admin", "admin"},
		testRoute{"*.example.com", "/", "tenants"},
		testRoute{"*.api.example.com", "/", "tenant-api"},
		testRoute{"other.test", "/api", "other"},
	)
}

func BenchmarkRouterMatch(b *testing.B) {
	r := benchRouter()
	cases := []struct{ name, host, uri string }{
		{"exact", "example.com", "/admin/users?id=1"},
		{"wildcard", "t1.example.com", "/orders/17"},
		{"fallthrough", "unknown.test", "/api/v2/items"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			host, uri := []byte(c.host), []byte(c.uri)
			var dst []byte
			var u fasthttp.URI
			b.ReportAllocs()
			for b.Loop() {
				dst = normalizeHost(dst, host)
				if r.match(dst, routePath(uri, &u)) == nil {
					b.Fatal("match() = nil")
				}
			}
		})
	}
}

func BenchmarkRewriteRequest(b *testing.B) {
	var tmpl, h fasthttp.RequestHeader
	if err := tmpl.Read(bufio.NewReader(strings.NewReader(benchHead))); err != nil {
		b.Fatalf("RequestHeader.Read() error = %v", err)
	}
	peer := netip.MustParseAddr("10.1.2.3")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	s := new(scratch)
	b.ReportAllocs()
	for b.Loop() {
		tmpl.CopyTo(&h)
		rewriteRequest(&h, peer, trusted, s)
	}
}

// BenchmarkHandlerMetrics is BenchmarkHandlerDirect with and without the
// Prometheus metrics, to show what measuring costs per request.
func BenchmarkHandlerMetrics(b *testing.B) {
	for _, on := range []bool{true, false} {
		name := "metrics=on"
		if !on {
			name = "metrics=off"
		}
		b.Run(name, func(b *testing.B) {
			yaml := oneUpstream(startSmallBackend(b), 64, "")
			g, _ := newTestGateway(b, yaml)
			if !on {
				cfg, err := config.Parse([]byte(yaml))
				if err != nil {
					b.Fatal(err)
				}
				if g, err = New(cfg, nil, nil, slog.New(slog.DiscardHandler)); err != nil {
					b.Fatal(err)
				}
			}
			run := directRunner(b, g)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				run()
			}
		})
	}
}
