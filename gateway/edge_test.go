package gateway

import (
	"bufio"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestRewriteRequestTrustedForwarded: X-Forwarded-Proto, -Host and -Port
// from a trusted proxy are kept, each one independently; from anyone else
// they are replaced. (Before, X-Forwarded-Proto was forced to http even
// behind a trusted TLS terminator, and Django's SECURE_SSL_REDIRECT looped.)
func TestRewriteRequestTrustedForwarded(t *testing.T) {
	fwd := []string{"X-Forwarded-Proto: https", "X-Forwarded-Host: www.example", "X-Forwarded-Port: 443"}
	tests := []struct {
		name string
		head []string
		peer []string // "trusted" or "untrusted"
		want map[string][]string
		gone []string
	}{{
		name: "trusted proxy keeps all three",
		head: append([]string{"GET / HTTP/1.1", "Host: h.test"}, fwd...),
		peer: []string{"trusted"},
		want: map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"www.example"}, "X-Forwarded-Port": {"443"}},
	}, {
		name: "trusted proxy that sends only the scheme",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "X-Forwarded-Proto: https"},
		peer: []string{"trusted"},
		want: map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"h.test"}},
		gone: []string{"X-Forwarded-Port"}, // no connection in this test to take a port from
	}, {
		name: "untrusted client's values replaced",
		head: append([]string{"GET / HTTP/1.1", "Host: h.test"}, fwd...),
		peer: []string{"untrusted"},
		want: map[string][]string{"X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"h.test"}},
		gone: []string{"X-Forwarded-Port"},
	}, {
		name: "trusted proxy's hop-by-hop X-Forwarded-Proto is not kept",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "Connection: X-Forwarded-Proto", "X-Forwarded-Proto: https"},
		peer: []string{"trusted"},
		want: map[string][]string{"X-Forwarded-Proto": {"http"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := readRequestHeader(t, tt.head...)
			peer := peer4
			if tt.peer[0] == "trusted" {
				peer = proxy4
			}
			if !rewriteRequest(h, peer, trusted, new(scratch)) {
				t.Fatal("rewriteRequest() = false")
			}
			checkHeaders(t, h, tt.want, tt.gone)
		})
	}
}

func TestRedirectHandler(t *testing.T) {
	for _, tt := range []struct {
		port, req, wantCode, wantLoc string
	}{
		{"8443", "GET /a?b=1 HTTP/1.1\r\nHost: shop.test:8080\r\n\r\n", "308", "https://shop.test:8443/a?b=1"},
		{"443", "GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n", "308", "https://shop.test/"},
		{"443", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", "308", "https://[2001:db8::1]/"},
		{"443", "GET http://other.test/x?y HTTP/1.1\r\nHost: shop.test\r\n\r\n", "308", "https://shop.test/x?y"},
		{"443", "GET / HTTP/1.0\r\n\r\n", "400", ""},
		{"443", "GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n", "400", ""},
	} {
		var ctx fasthttp.RequestCtx
		if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(tt.req))); err != nil {
			t.Fatalf("parsing %q: %v", tt.req, err)
		}
		called := false
		redirectHandler(tt.port, func(*fasthttp.RequestCtx) bool { called = true; return false })(&ctx)
		if got := ctx.Response.StatusCode(); strconv.Itoa(got) != tt.wantCode {
			t.Errorf("%q: status %d, want %s", tt.req, got, tt.wantCode)
		}
		if got := string(ctx.Response.Header.Peek("Location")); got != tt.wantLoc {
			t.Errorf("%q: Location %q, want %q", tt.req, got, tt.wantLoc)
		}
		if !called {
			t.Error("the ACME challenge hook was not asked")
		}
	}
}

// fakeTLSConn is a connection that looks like TLS to setForwarded.
type fakeTLSConn struct {
	net.Conn
	local *net.TCPAddr
}

func (c fakeTLSConn) ConnectionState() tls.ConnectionState { return tls.ConnectionState{} }
func (c fakeTLSConn) Handshake() error                     { return nil }
func (c fakeTLSConn) LocalAddr() net.Addr                  { return c.local }

// TestSetForwardedTLSAllocs: a request that came over TLS gets
// X-Forwarded-Proto https and the listener's port, without allocating.
func TestSetForwardedTLSAllocs(t *testing.T) {
	h := readRequestHeader(t, "GET / HTTP/1.1", "Host: h.test", "X-Forwarded-Proto: http")
	var c net.Conn = fakeTLSConn{local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}}
	setForwarded(h, false, c)
	checkHeaders(t, h, map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Port": {"8443"},
		"X-Forwarded-Host": {"h.test"}}, nil)
	if n := testing.AllocsPerRun(100, func() { setForwarded(h, false, c) }); n != 0 {
		t.Errorf("setForwarded allocates %v times per request, want 0", n)
	}
}
