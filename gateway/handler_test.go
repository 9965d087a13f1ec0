package gateway

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/config"
	"shardgate/internal/wait"
	"shardgate/upstream"
)

func TestHandlerForwards(t *testing.T) {
	addr := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Request.Header
		fmt.Fprintf(ctx, "%s %s host=%s xff=%s proto=%s xhost=%s secret=%q under=%q body=%s",
			h.Method(), h.RequestURI(), h.Host(), h.Peek("X-Forwarded-For"), h.Peek("X-Forwarded-Proto"),
			h.Peek("X-Forwarded-Host"), h.Peek("X-Secret"), h.Peek("X_Under"), ctx.PostBody())
		ctx.Response.Header.Set("Connection", "X-Backend-Hop")
		ctx.Response.Header.Set("X-Backend-Hop", "1")
		ctx.Response.Header.Set("X-App", "1")
	})
	g, cfg := newTestGateway(t, oneUpstream(addr, 0, ""))
	c := serveInmemory(t, g, cfg.Server)

	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI("/api/../x?q=1")
	req.Header.SetHost("app.test:8080")
	req.UseHostHeader = true
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "s")
	req.Header.Set("X_Under", "u")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.SetBodyString("hello")
	if err := c.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatalf("Do() error = %v", err)
	}
	want := `POST /api/../x?q=1 host=app.test:8080 xff=192.0.2.10 proto=http xhost=app.test:8080 secret="" under="" body=hello`
	if resp.StatusCode() != 200 || string(resp.Body()) != want {
		t.Errorf("backend saw %d %q, want 200 %q", resp.StatusCode(), resp.Body(), want)
	}
	if v := resp.Header.Peek("X-Backend-Hop"); v != nil {
		t.Errorf("X-Backend-Hop = %q, want it removed (named in the backend's Connection)", v)
	}
	if v := string(resp.Header.Peek("X-App")); v != "1" {
		t.Errorf("X-App = %q, want %q", v, "1")
	}
}

// rawExchange writes raw to a new connection to the gateway behind c and
// reads one response.
func rawExchange(t *testing.T, c *fasthttp.HostClient, raw string) (int, string) {
	t.Helper()
	conn, err := c.Dial("")
	if err != nil {
		t.Fatalf("Dial() error = %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatalf("Write() error = %v", err)
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	return resp.StatusCode(), string(resp.Body())
}

// TestHandlerHostReachesBackend pins "Host unchanged": the backend sees the
// Host the gateway routed on, byte for byte.
func TestHandlerHostReachesBackend(t *testing.T) {
	addr := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		fmt.Fprintf(ctx, "host=%s uri=%s auth=%q", ctx.Request.Header.Host(), ctx.Request.Header.RequestURI(),
			ctx.Request.Header.Peek("Authorization"))
	})
	yaml := strings.Replace(oneUpstream(addr, 0, ""), `host: "*"`, `host: "app.test"`, 1)
	g, cfg := newTestGateway(t, yaml)
	c := serveInmemory(t, g, cfg.Server)
	tests := []struct {
		name, raw string
		status    int
		body      string
	}{
		{"mixed case", "GET /p HTTP/1.1\r\nHost: App.TEST\r\n\r\n", 200, `host=App.TEST uri=/p auth=""`},
		// Routed on Host: app.test; the backend must not be told another
		// host (RFC 9112 3.2.2 says the target's authority wins, so route on
		// it or refuse the request, but never split the two).
		{"absolute-form with another host", "GET http://other.test/p HTTP/1.1\r\nHost: app.test\r\n\r\n",
			200, `host=app.test uri=/p auth=""`},
		{"absolute-form with userinfo", "GET http://u:p@app.test/p HTTP/1.1\r\nHost: app.test\r\n\r\n",
			200, `host=app.test uri=/p auth=""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawExchange(t, c, tt.raw)
			if status != tt.status || body != tt.body {
				t.Errorf("backend saw %d %q, want %d %q", status, body, tt.status, tt.body)
			}
		})
	}
}

// TestHandlerHTTP10WithoutHost: an HTTP/1.0 request may omit Host. The
// client's X-Forwarded-Host must not then reach the backend as if the
// gateway had set it (Django's USE_X_FORWARDED_HOST trusts it).
func TestHandlerHTTP10WithoutHost(t *testing.T) {
	addr := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		fmt.Fprintf(ctx, "xhost=%q", ctx.Request.Header.Peek("X-Forwarded-Host"))
	})
	g, cfg := newTestGateway(t, oneUpstream(addr, 0, ""))
	c := serveInmemory(t, g, cfg.Server)
	status, body := rawExchange(t, c, "GET /p HTTP/1.0\r\nX-Forwarded-Host: evil.test\r\n\r\n")
	if status != 200 || strings.Contains(body, "evil.test") {
		t.Errorf("backend saw %d %s, want 200 without the client's X-Forwarded-Host", status, body)
	}
}

func TestHandlerStatus(t *testing.T) {
	tests := []struct {
		name   string
		config func(t *testing.T) string
		host   string
		status int
		body   string
	}{{
		name: "no route",
		config: func(t *testing.T) string {
			return strings.Replace(oneUpstream(startBackend(t, func(*fasthttp.RequestCtx) {
				t.Error("backend got a request that has no route")
			}), 0, ""), `host: "*"`, `host: "app.test"`, 1)
		},
		host: "other.test", status: 404, body: "no route\n",
	}, {
		name:   "connection refused",
		config: func(t *testing.T) string { return oneUpstream(closedAddr(t), 0, "") },
		status: 502, body: "backend unreachable\n",
	}, {
		name: "slow backend",
		config: func(t *testing.T) string {
			release := make(chan struct{})
			addr := startBackend(t, func(ctx *fasthttp.RequestCtx) { <-release })
			t.Cleanup(func() { close(release) }) // runs before the backend stops
			return oneUpstream(addr, 0, "    response_timeout: 100ms")
		},
		status: 504, body: "backend timeout\n",
	}, {
		name: "garbage response",
		config: func(t *testing.T) string {
			return oneUpstream(startRawBackend(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
				c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n\r\n"))
				return false
			}).addr, 0, "")
		},
		status: 502, body: "bad response from backend\n",
	}, {
		name: "backend closes without answering",
		config: func(t *testing.T) string {
			return oneUpstream(startRawBackend(t, func(net.Conn, *http.Request, []byte) bool {
				return false
			}).addr, 0, "")
		},
		status: 502, body: "backend closed the connection\n",
	}, {
		name: "truncated body",
		config: func(t *testing.T) string {
			return oneUpstream(startRawBackend(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"))
				return false
			}).addr, 0, "")
		},
		status: 502, body: "backend closed the connection\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, cfg := newTestGateway(t, tt.config(t))
			c := serveInmemory(t, g, cfg.Server)
			r := send(c, "GET", tt.host, "/x", "")
			if r.err != nil || r.status != tt.status || r.body != tt.body {
				t.Errorf("GET = %d %q (err %v), want %d %q", r.status, r.body, r.err, tt.status, tt.body)
			}
		})
	}
}

// blockingBackend starts a backend whose handler waits until release is
// called; started receives once per request that reached it.
func blockingBackend(t *testing.T) (addr string, started chan struct{}, release func()) {
	t.Helper()
	started = make(chan struct{}, 16)
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	addr = startBackend(t, func(ctx *fasthttp.RequestCtx) {
		started <- struct{}{}
		<-ch
		ctx.WriteString("ok")
	})
	return addr, started, release
}

func waitStarted(t *testing.T, started <-chan struct{}) {
	t.Helper()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the first request never reached the backend")
	}
}

func TestHandlerSheds(t *testing.T) {
	tests := []struct {
		name       string
		queue      string
		body       string
		retryAfter string
		minWait    time.Duration
	}{
		{"queue full", "    queue: {max_length: 0, timeout: 2500ms}", "queue full\n", "3", 0},
		{"queue timeout", "    queue: {max_length: 10, timeout: 100ms}", "queue timeout\n", "1", 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, started, release := blockingBackend(t)
			g, cfg := newTestGateway(t, oneUpstream(addr, 1, tt.queue))
			c := serveInmemory(t, g, cfg.Server)
			first := make(chan result, 1)
			go func() { first <- send(c, "GET", "", "/first", "") }()
			t.Cleanup(func() { release(); <-first })
			waitStarted(t, started)

			begin := time.Now()
			r := send(c, "GET", "", "/second", "")
			took := time.Since(begin)
			if r.err != nil || r.status != 503 || r.body != tt.body || r.retryAfter != tt.retryAfter {
				t.Errorf("GET = %d %q Retry-After %q (err %v), want 503 %q Retry-After %q",
					r.status, r.body, r.retryAfter, r.err, tt.body, tt.retryAfter)
			}
			if took < tt.minWait {
				t.Errorf("shed after %v, want at least the queue timeout %v", took, tt.minWait)
			}
			select {
			case <-started:
				t.Error("the shed request reached the backend")
			default:
			}
			release()
			if r := <-first; r.status != 200 || r.body != "ok" {
				t.Errorf("first GET = %d %q (err %v), want 200 %q", r.status, r.body, r.err, "ok")
			}
			first <- result{} // for the cleanup
		})
	}
}

// TestHandlerQueuedRequestRuns pins that a queued request is served once the
// slot frees, and that the backend never sees more than its limit.
func TestHandlerQueuedRequestRuns(t *testing.T) {
	addr, started, release := blockingBackend(t)
	g, cfg := newTestGateway(t, oneUpstream(addr, 1, "    queue: {max_length: 10, timeout: 5s}"))
	c := serveInmemory(t, g, cfg.Server)
	results := make(chan result, 2)
	go func() { results <- send(c, "GET", "", "/1", "") }()
	t.Cleanup(release)
	waitStarted(t, started)
	go func() { results <- send(c, "GET", "", "/2", "") }()
	pool := g.state.Load().upstreams[0].pool
	wait.For(t, "the second request to queue", func() bool { return pool.QueueLength() == 1 })
	select {
	case <-started:
		t.Fatal("the backend got a second request beyond its limit of 1")
	default:
	}
	release()
	for range 2 {
		if r := <-results; r.status != 200 || r.body != "ok" {
			t.Errorf("GET = %d %q (err %v), want 200 %q", r.status, r.body, r.err, "ok")
		}
	}
}

// While draining (SIGTERM, or the old process of a binary upgrade), a
// request that arrives on an open connection is still served, and its
// connection closed after the response, so the client reconnects — to the
// new process during an upgrade — instead of getting an error.
func TestHandlerDraining(t *testing.T) {
	addr := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.WriteString("ok") })
	g, cfg := newTestGateway(t, oneUpstream(addr, 0, ""))
	c := serveInmemory(t, g, cfg.Server)
	if r := send(c, "GET", "", "/", ""); r.connClose {
		t.Fatal("Connection: close before draining")
	}
	g.Drain()
	r := send(c, "GET", "", "/", "")
	if r.status != 200 || r.body != "ok" || !r.connClose {
		t.Errorf("GET while draining = %d %q close=%v, want 200 %q with Connection: close",
			r.status, r.body, r.connClose, "ok")
	}
}

// TestHandlerRecoversPanic makes the request path panic by routing to an
// upstream without a pool, which a real config cannot produce.
func TestHandlerRecoversPanic(t *testing.T) {
	addr := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.WriteString("ok") })
	g, cfg := newTestGateway(t, oneUpstream(addr, 0, ""))
	broken := &state{}
	broken.router.add("*", "/", &upstreamState{name: "broken"})
	broken.router.build()
	good := g.state.Swap(broken)
	c := serveInmemory(t, g, cfg.Server)

	r := send(c, "GET", "", "/", "")
	if r.err != nil || r.status != 500 || r.body != "internal error\n" {
		t.Errorf("GET = %d %q (err %v), want 500 %q", r.status, r.body, r.err, "internal error\n")
	}
	g.state.Store(good)
	if r := send(c, "GET", "", "/", ""); r.status != 200 || r.body != "ok" {
		t.Errorf("GET after the panic = %d %q (err %v), want 200 %q", r.status, r.body, r.err, "ok")
	}
}

const (
	smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"
	answerB  = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB"
)

// TestHandlerDirtyBackendConnection is the regression test for fasthttp
// reusing a backend connection that carries bytes nobody asked for: they
// would become the next request's response. B must get its own answer.
func TestHandlerDirtyBackendConnection(t *testing.T) {
	tests := []struct {
		name    string
		methodA string
		answerA []string // written in separate writes
	}{
		{"body after a HEAD response", "HEAD",
			[]string{fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(smuggled), smuggled)}},
		{"HEAD body in a later write", "HEAD",
			[]string{fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(smuggled)), smuggled}},
		{"bytes after a complete body", "GET",
			[]string{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA" + smuggled}},
		{"bytes after a complete body in a later write", "GET",
			[]string{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA", smuggled}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			written := make(chan struct{}, 1)
			rb := startRawBackend(t, func(c net.Conn, r *http.Request, _ []byte) bool {
				if r.URL.Path == "/b" {
					c.Write([]byte(answerB))
					return true
				}
				for _, w := range tt.answerA {
					c.Write([]byte(w))
				}
				written <- struct{}{}
				return true
			})
			g, cfg := newTestGateway(t, oneUpstream(rb.addr, 1, ""))
			c := serveInmemory(t, g, cfg.Server)
			if r := send(c, tt.methodA, "", "/a", ""); r.err != nil || r.status != 200 {
				t.Fatalf("%s /a = %d (err %v), want 200", tt.methodA, r.status, r.err)
			}
			<-written // every stray byte is on its way before B is sent
			for i := range 2 {
				if r := send(c, "GET", "", "/b", ""); r.status != 200 || r.body != "B" {
					t.Fatalf("GET /b #%d = %d %q (err %v), want 200 %q", i, r.status, r.body, r.err, "B")
				}
			}
		})
	}
}

// TestHandlerBackendClosedIdleConnection: a backend (gunicorn's keep-alive
// timeout) closes a pooled connection while it is idle. A POST, which is
// never resent, must go out on a fresh connection and succeed.
func TestHandlerBackendClosedIdleConnection(t *testing.T) {
	closed := make(chan struct{}, 1)
	rb := startRawBackend(t, func(c net.Conn, r *http.Request, body []byte) bool {
		if r.Method == "POST" {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			return true
		}
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"))
		c.(*net.TCPConn).CloseWrite() // FIN now; serveRaw closes it fully
		closed <- struct{}{}
		return false
	})
	g, cfg := newTestGateway(t, oneUpstream(rb.addr, 1, "    idle_conn_timeout: 1m"))
	c := serveInmemory(t, g, cfg.Server)
	if r := send(c, "GET", "", "/a", ""); r.status != 200 || r.body != "A" {
		t.Fatalf("GET /a = %d %q (err %v), want 200 %q", r.status, r.body, r.err, "A")
	}
	<-closed
	if r := send(c, "POST", "", "/b", "payload"); r.status != 200 || r.body != "payload" {
		t.Fatalf("POST /b = %d %q (err %v), want 200 %q", r.status, r.body, r.err, "payload")
	}
	if n := rb.accepted.Load(); n != 2 {
		t.Errorf("backend accepted %d connections, want 2 (the closed one is not reused)", n)
	}
}

// TestHandlerClientGoneWhileQueued pins docs/DESIGN.md, admission rule 4: a
// request whose client disconnects while it waits is dropped and never sent
// to the backend. The gateway serves real TCP so it can see the close.
func TestHandlerClientGoneWhileQueued(t *testing.T) {
	var mu sync.Mutex // protects paths
	var paths []string
	started := make(chan struct{}, 16)
	ch := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(ch) }) }
	addr := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		paths = append(paths, string(ctx.Path()))
		mu.Unlock()
		started <- struct{}{}
		<-ch
	})
	g, cfg := newTestGateway(t, oneUpstream(addr, 1, "    queue: {max_length: 10, timeout: 10s}"))
	gwAddr := serveTCP(t, g, cfg)
	t.Cleanup(release)

	first := dialRaw(t, gwAddr, "GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n")
	defer first.Close()
	waitStarted(t, started)
	gone := dialRaw(t, gwAddr, "GET /gone HTTP/1.1\r\nHost: app.test\r\n\r\n")
	pool := g.state.Load().upstreams[0].pool
	wait.For(t, "the second request to queue", func() bool { return pool.QueueLength() == 1 })
	gone.Close()
	wait.For(t, "the queue to drop the request", func() bool { return pool.QueueLength() == 0 })
	if n := pool.Shed(upstream.ShedClientGone); n != 1 {
		t.Errorf("Shed(client_gone) = %d, want 1", n)
	}
	release()
	wait.For(t, "the first request to finish", func() bool { return pool.Inflight() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/first" {
		t.Errorf("backend saw %q, want only [/first]", paths)
	}
}

// TestHandlerWithoutMetrics: New documents that metrics may be nil.
func TestHandlerWithoutMetrics(t *testing.T) {
	addr := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.WriteString("ok") })
	cfg, err := config.Parse([]byte(oneUpstream(addr, 1, "")))
	if err != nil {
		t.Fatalf("config.Parse() error = %v", err)
	}
	g, err := New(cfg, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	c := serveInmemory(t, g, cfg.Server)
	if r := send(c, "GET", "", "/", ""); r.status != 200 || r.body != "ok" {
		t.Errorf("GET = %d %q (err %v), want 200 %q", r.status, r.body, r.err, "ok")
	}
	if r := send(c, "GET", "", "/", ""); r.status != 200 {
		t.Errorf("second GET = %d (err %v), want 200", r.status, r.err)
	}
	for _, b := range g.state.Load().upstreams[0].pool.Backends() {
		b.CloseIdleConnections()
	}
}
