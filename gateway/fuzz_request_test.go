package gateway

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// sentRequest is one request as the gateway meant to send it (its
// fasthttp.Request after the exchange) or as the backend read it back.
type sentRequest struct {
	method, uri, proto string
	header             http.Header
	body               []byte
	chunked            bool
}

// netBackend is a backend that reads every byte the gateway sends with
// Go's net/http parser and records what it read, or that it could not.
type netBackend struct {
	ln net.Listener

	mu   sync.Mutex // protects got and errs
	got  []sentRequest
	errs []string
}

func startNetBackend(t testing.TB) *netBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen() error = %v", err)
	}
	b := &netBackend{ln: ln}
	go b.serve()
	t.Cleanup(func() { ln.Close() })
	return b
}

func (b *netBackend) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.serveConn(c)
	}
}

func (b *netBackend) serveConn(c net.Conn) {
	defer c.Close()
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &raw))
	for {
		req, err := http.ReadRequest(br)
		if err == io.EOF && raw.Len() == 0 {
			return
		}
		var body []byte
		if err == nil {
			body, err = io.ReadAll(req.Body)
		}
		b.mu.Lock()
		if err != nil {
			b.errs = append(b.errs, err.Error()+" in "+strings.ReplaceAll(raw.String(), "\r\n", "\\r\\n"))
		} else {
			b.got = append(b.got, sentRequest{
				method: req.Method, uri: req.RequestURI, proto: req.Proto, header: withFraming(req),
				body: body, chunked: len(req.TransferEncoding) > 0,
			})
		}
		b.mu.Unlock()
		if err != nil {
			return
		}
		raw.Reset()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Backend: 1\r\nContent-Length: 2\r\n\r\nok")
	}
}

// withFraming returns req's header with Host, which net/http moves out of
// it, put back.
func withFraming(req *http.Request) http.Header {
	h := req.Header.Clone()
	if req.Host != "" {
		h.Set("Host", req.Host)
	}
	return h
}

// take returns and forgets what the backend read so far.
func (b *netBackend) take() ([]sentRequest, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	got, errs := b.got, b.errs
	b.got, b.errs = nil, nil
	return got, errs
}

// meant records the requests the gateway forwarded, as it held them.
type meant struct {
	mu   sync.Mutex // protects reqs
	reqs []sentRequest
}

func (m *meant) record(ctx *fasthttp.RequestCtx) {
	r := &ctx.Request
	sr := sentRequest{
		method: string(r.Header.Method()), uri: string(r.Header.RequestURI()), proto: string(r.Header.Protocol()),
		header: http.Header{}, body: bytes.Clone(r.Body()),
	}
	for k, v := range r.Header.All() {
		sr.header.Add(string(k), string(v))
	}
	m.mu.Lock()
	m.reqs = append(m.reqs, sr)
	m.mu.Unlock()
}

func (m *meant) take() []sentRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	reqs := m.reqs
	m.reqs = nil
	return reqs
}

// headListener hands out its connections as headConns, as Server.split
// does.
type headListener struct{ net.Listener }

func (l headListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newHeadConn(c), nil
}

// FuzzRequestPath sends arbitrary bytes down the real request path: the
// gateway's fasthttp.Server and Handler on an in-memory connection, a
// backend that re-reads what it got with net/http. Whatever the client
// sends, the backend must read only well-formed HTTP/1.x requests, each
// exactly the one the gateway meant to send: same method, target,
// headers and body, framed by Content-Length, and nothing after them.
func FuzzRequestPath(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add([]byte(seed))
	}
	be := startNetBackend(f)
	g, cfg := newTestGateway(f, "server: {read_timeout: 50ms, idle_timeout: 10ms, max_header_bytes: 4KiB, max_body_bytes: 64KiB}\n"+
		oneUpstream(be.ln.Addr().String(), 0, ""))
	srv := newFastHTTP(g, cfg.Server, slog.New(slog.DiscardHandler), false)
	var m meant
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		// net/http refuses targets that fasthttp and gunicorn take (bad
		// %-escapes): the harness does not send those on.
		if _, err := url.ParseRequestURI(string(ctx.Request.Header.RequestURI())); err != nil {
			ctx.SetStatusCode(fasthttp.StatusTeapot)
			return
		}
		g.Handler(ctx)
		if len(ctx.Response.Header.Peek("X-Backend")) > 0 {
			m.record(ctx)
		}
	}
	ln := fasthttputil.NewInmemoryListener()
	go srv.Serve(headListener{ln}) //nolint:errcheck // ends when the listener closes
	f.Cleanup(func() { ln.Close() })

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ln.DialWithLocalAddr(clientAddr)
		if err != nil {
			t.Fatalf("Dial() error = %v", err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go c.Write(in) //nolint:errcheck // the gateway may close first
		io.Copy(io.Discard, c)
		c.Close()
		got, errs := be.take()
		want := m.take()
		for _, e := range errs {
			t.Errorf("the backend could not read what the gateway sent: %s", e)
		}
		if len(got) != len(want) {
			t.Fatalf("the backend read %d requests, the gateway sent %d", len(got), len(want))
		}
		for i := range got {
			compareSent(t, &got[i], &want[i])
		}
	})
}

func compareSent(t *testing.T, got, want *sentRequest) {
	t.Helper()
	if got.method != want.method || got.uri != want.uri || got.proto != want.proto {
		t.Errorf("backend read %s %s %s, the gateway sent %s %s %s",
			got.method, got.uri, got.proto, want.method, want.uri, want.proto)
	}
	if got.proto != "HTTP/1.1" && got.proto != "HTTP/1.0" {
		t.Errorf("backend read version %s", got.proto)
	}
	if got.chunked {
		t.Error("backend read a chunked body; the gateway frames bodies by Content-Length")
	}
	if !bytes.Equal(got.body, want.body) {
		t.Errorf("backend read body %q, the gateway sent %q", got.body, want.body)
	}
	for k, vs := range want.header {
		if g := got.header.Values(k); !equalStrings(g, vs) {
			t.Errorf("backend read %s: %q, the gateway sent %q", k, g, vs)
		}
	}
	for k, vs := range got.header {
		if len(want.header.Values(k)) == 0 {
			t.Errorf("backend read %s: %q, which the gateway did not send", k, vs)
		}
		if strings.Contains(k, "_") || isHop(k) {
			t.Errorf("backend read %s: %q", k, vs)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fuzzSeeds start FuzzRequestPath from requests the gateway must refuse
// and requests it must forward; testdata/fuzz/FuzzRequestPath holds more.
var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-forwarded-for: 1.2.3.4\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
	"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n1;e=1\r\na\r\n0\r\nX-T: 1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nGET /s HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nFoo Bar: x\r\n\r\n",
	"GET / HTTP/1.1\nHost: x\n\n",
	"GET / HTTP/1.1\nHost: x\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Content-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
	"GET http://x/p HTTP/1.1\r\nHost: x\r\nConnection: X-A, close\r\nX-A: 1\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: u@x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 002\r\nX_Forwarded_For: 1\r\n\r\nab",
}
