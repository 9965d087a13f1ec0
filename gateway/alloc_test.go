//go:build !race

package gateway

import (
	"bufio"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"shardgate/accesslog"
)

// TestHandlerAllocs pins docs/DESIGN.md, "Performance rules": "the request
// path allocates nothing in steady state": a proxied GET through the
// handler, backend on loopback.
func TestHandlerAllocs(t *testing.T) {
	for _, bl := range benchLimits {
		t.Run(bl.name, func(t *testing.T) {
			g, _ := newTestGateway(t, oneUpstream(startSmallBackend(t), bl.limit, ""))
			run := directRunner(t, g)
			for range 100 { // dial, grow buffers, fill pools
				run()
			}
			if n := testing.AllocsPerRun(1000, run); n != 0 {
				t.Errorf("Handler() allocates %v times per request, want 0", n)
			}
		})
	}
}

func TestHandlerAllocsAccessLog(t *testing.T) {
	// Each ring slot grows its line buffer on first use, so warm up with
	// more requests than the ring has slots.
	const lines = 64
	w := accesslog.New(io.Discard, lines)
	t.Cleanup(func() { w.Close() })
	g, _ := newLoggingGateway(t, oneUpstream(startSmallBackend(t), 0, ""), w)
	run := directRunner(t, g)
	for range 10 * lines {
		run()
	}
	if n := testing.AllocsPerRun(1000, run); n != 0 {
		t.Errorf("Handler() with the access log on allocates %v times per request, want 0", n)
	}
}

func TestHandlerAllocsNoRoute(t *testing.T) {
	g, _ := newTestGateway(t, strings.Replace(oneUpstream(closedAddr(t), 0, ""), `host: "*"`, `host: "app.test"`, 1))
	var tmpl fasthttp.Request
	if err := tmpl.Read(bufio.NewReader(strings.NewReader(strings.Replace(benchHead, "app.test", "other.test", 1)))); err != nil {
		t.Fatalf("Request.Read() error = %v", err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&tmpl, clientAddr, nil)
	run := func() {
		tmpl.CopyTo(&ctx.Request)
		g.Handler(&ctx)
	}
	run()
	if ctx.Response.StatusCode() != 404 {
		t.Fatalf("Handler() status = %d, want 404", ctx.Response.StatusCode())
	}
	if n := testing.AllocsPerRun(1000, run); n != 0 {
		t.Errorf("Handler() allocates %v times per 404, want 0", n)
	}
}

func TestRouterAllocs(t *testing.T) {
	r := benchRouter()
	for _, uri := range []string{"/admin/users?id=1", "/api/../admin", "http://example.com/admin", "*"} {
		t.Run(uri, func(t *testing.T) {
			host, target := []byte("EXAMPLE.com:8080"), []byte(uri)
			var dst []byte
			var u fasthttp.URI
			run := func() {
				dst = normalizeHost(dst, host)
				if r.match(dst, routePath(target, &u)) == nil {
					t.Fatal("match() = nil")
				}
			}
			run()
			if n := testing.AllocsPerRun(1000, run); n != 0 {
				t.Errorf("route allocates %v times, want 0", n)
			}
		})
	}
}

func TestRewriteRequestAllocs(t *testing.T) {
	var tmpl, h fasthttp.RequestHeader
	head := strings.Replace(benchHead, "Connection: keep-alive", "Connection: keep-alive, X-A\r\nX-A: 1\r\nX_B: 2", 1)
	if err := tmpl.Read(bufio.NewReader(strings.NewReader(head))); err != nil {
		t.Fatalf("RequestHeader.Read() error = %v", err)
	}
	for _, peer := range []string{"10.1.2.3", "203.0.113.9", "2001:db8::1"} {
		t.Run(peer, func(t *testing.T) {
			p := netip.MustParseAddr(peer)
			s := new(scratch)
			run := func() {
				tmpl.CopyTo(&h)
				rewriteRequest(&h, p, trusted, s)
			}
			run()
			if n := testing.AllocsPerRun(1000, run); n != 0 {
				t.Errorf("rewriteRequest() allocates %v times, want 0", n)
			}
		})
	}
}

func TestRewriteResponseAllocs(t *testing.T) {
	var tmpl, h fasthttp.ResponseHeader
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\nKeep-Alive: timeout=2\r\n\r\n"
	if err := tmpl.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("ResponseHeader.Read() error = %v", err)
	}
	s := new(scratch)
	run := func() {
		tmpl.CopyTo(&h)
		rewriteResponse(&h, s)
	}
	run()
	if n := testing.AllocsPerRun(1000, run); n != 0 {
		t.Errorf("rewriteResponse() allocates %v times, want 0", n)
	}
}

// TestServerAllocs measures the whole client-facing path: the gateway's
// fasthttp.Server as NewServer configures it, on a keep-alive in-memory
// connection. It counts every allocation in the process, client included.
func TestServerAllocs(t *testing.T) {
	g, cfg := newTestGateway(t, oneUpstream(startSmallBackend(t), 0, ""))
	c := serveInmemory(t, g, cfg.Server)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if err := req.Read(bufio.NewReader(strings.NewReader(benchHead))); err != nil {
		t.Fatalf("Request.Read() error = %v", err)
	}
	run := func() {
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("Do() = %d, %v; want 200", resp.StatusCode(), err)
		}
	}
	for range 100 {
		run()
	}
	// The fast server (the first leanAbove connections) allocates nothing.
	// The lean one would show one allocation, fasthttp's: with
	// ReduceMemoryUsage its acquireByteReader lets a one-byte read buffer
	// escape each time a kept-alive connection wakes up.
	if n := testing.AllocsPerRun(1000, run); n != 0 {
		t.Errorf("a keep-alive request through the server allocates %v times, want 0", n)
	}
}
