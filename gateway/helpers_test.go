package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"shardgate/accesslog"
	"shardgate/config"
	"shardgate/metrics"
)

// clientAddr is the address every in-memory test client connects from.
var clientAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10).To4(), Port: 40000}

// startBackend serves h with a fasthttp.Server on 127.0.0.1:0 and returns
// its address. The server stops when the test ends.
func startBackend(t testing.TB, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen() error = %v", err)
	}
	srv := &fasthttp.Server{Handler: h, CloseOnShutdown: true, NoDefaultDate: true}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) //nolint:errcheck // ends when the listener closes
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWithContext(ctx) //nolint:errcheck // best effort
		<-done
	})
	return ln.Addr().String()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen() error = %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// oneUpstream is a YAML config with one upstream "app" routed for every
// host; settings is YAML for the upstream's other keys, indented by four.
func oneUpstream(backend string, limit int, settings string) string {
	return fmt.Sprintf(`
admin: {address: ""}
upstreams:
  app:
%s
    backends:
      - {address: %q, max_inflight: %d}
routes:
  - {host: "*", path_prefix: /, upstream: app}
`, settings, backend, limit)
}

// newTestGateway returns a gateway built from the YAML text and closes its
// idle backend connections when the test ends.
func newTestGateway(t testing.TB, yaml string) (*Gateway, *config.Config) {
	t.Helper()
	return newLoggingGateway(t, yaml, nil)
}

// newLoggingGateway is newTestGateway with an access log.
func newLoggingGateway(t testing.TB, yaml string, access *accesslog.Writer) (*Gateway, *config.Config) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config.Parse() error = %v\n%s", err, yaml)
	}
	g, err := New(cfg, metrics.NewMetrics("test"), access, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	t.Cleanup(func() {
		for _, u := range g.state.Load().upstreams {
			for _, b := range u.pool.Backends() {
				b.CloseIdleConnections()
			}
		}
	})
	return g, cfg
}

// serveInmemory serves g with the server settings the binary uses on an
// in-memory listener (the server of the first leanAbove connections) and
// returns a keep-alive client for it.
func serveInmemory(t testing.TB, g *Gateway, sc config.Server) *fasthttp.HostClient {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	s := NewServer(g, sc, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.fast.Serve(ln) //nolint:errcheck // ends when the listener closes
	}()
	c := &fasthttp.HostClient{
		Addr:                      "gateway.test",
		Dial:                      func(string) (net.Conn, error) { return ln.DialWithLocalAddr(clientAddr) },
		MaxIdemponentCallAttempts: 1,
		DisablePathNormalizing:    true, // send targets exactly as written
		ReadTimeout:               10 * time.Second,
		WriteTimeout:              10 * time.Second,
	}
	t.Cleanup(func() {
		c.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.fast.ShutdownWithContext(ctx) //nolint:errcheck // best effort
		ln.Close()
		<-done
	})
	return c
}

// result is what a client got for one request.
type result struct {
	status     int
	body       string
	retryAfter string
	connClose  bool
	err        error
}

// send makes one request through c; host defaults to "app.test".
func send(c *fasthttp.HostClient, method, host, uri, body string) result {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	if host == "" {
		host = "app.test"
	}
	req.Header.SetHost(host)
	req.UseHostHeader = true
	if body != "" {
		req.SetBodyString(body)
	}
	err := c.DoTimeout(req, resp, 10*time.Second)
	return result{
		status:     resp.StatusCode(),
		body:       string(resp.Body()),
		retryAfter: string(resp.Header.Peek("Retry-After")),
		connClose:  resp.ConnectionClose(),
		err:        err,
	}
}

// rawBackend is a hand-written HTTP/1.1 server for misbehaving backends: it
// parses each request and lets respond write whatever bytes it likes.
type rawBackend struct {
	addr     string
	accepted atomic.Int64
}

// startRawBackend serves on 127.0.0.1:0. respond answers one request, whose
// body was read, on c; it returns false to stop serving c (the backend then closes it).
func startRawBackend(t testing.TB, respond func(c net.Conn, r *http.Request, body []byte) bool) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen() error = %v", err)
	}
	rb := &rawBackend{addr: ln.Addr().String()}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // protects conns
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rb.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serveRaw(c, respond) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return rb
}

func serveRaw(c net.Conn, respond func(c net.Conn, r *http.Request, body []byte) bool) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if !respond(c, r, body) {
			return
		}
	}
}

// serveTCP serves g as the binary does on 127.0.0.1:0 and returns the address.
func serveTCP(t *testing.T, g *Gateway, cfg *config.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen() error = %v", err)
	}
	s := NewServer(g, cfg.Server, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.fast.Serve(ln) //nolint:errcheck // ends when the listener closes
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.fast.ShutdownWithContext(ctx) //nolint:errcheck // best effort
		<-done
	})
	return ln.Addr().String()
}

// dialRaw connects to addr and writes raw.
func dialRaw(t *testing.T, addr, raw string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("Dial(%s) error = %v", addr, err)
	}
	if _, err := c.Write([]byte(raw)); err != nil {
		c.Close()
		t.Fatalf("Write() error = %v", err)
	}
	return c
}
