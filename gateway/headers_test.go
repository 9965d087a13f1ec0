package gateway

import (
	"bufio"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// readRequestHeader parses a raw request head ("\r\n" line ends are added).
func readRequestHeader(t testing.TB, lines ...string) *fasthttp.RequestHeader {
	t.Helper()
	h := new(fasthttp.RequestHeader)
	raw := strings.Join(lines, "\r\n") + "\r\n\r\n"
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("RequestHeader.Read(%q) error = %v", raw, err)
	}
	return h
}

// readResponseHeader parses a raw response head ("\r\n" line ends are added).
func readResponseHeader(t testing.TB, lines ...string) *fasthttp.ResponseHeader {
	t.Helper()
	h := new(fasthttp.ResponseHeader)
	h.SetNoDefaultContentType(true) // as the gateway's server does
	raw := strings.Join(lines, "\r\n") + "\r\n\r\n"
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("ResponseHeader.Read(%q) error = %v", raw, err)
	}
	return h
}

// values returns every value of the header name, compared case-insensitively,
// in the order they would be sent.
func values[H interface {
	*fasthttp.RequestHeader | *fasthttp.ResponseHeader
}](h H, name string) []string {
	var out []string
	collect := func(k, v []byte) bool {
		if strings.EqualFold(string(k), name) {
			out = append(out, string(v))
		}
		return true
	}
	switch h := any(h).(type) {
	case *fasthttp.RequestHeader:
		h.All()(collect)
	case *fasthttp.ResponseHeader:
		h.All()(collect)
	}
	return out
}

var (
	peer4   = netip.MustParseAddr("203.0.113.7")
	proxy4  = netip.MustParseAddr("10.1.2.3")
	proxy6  = netip.MustParseAddr("2001:db8::5")
	trusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
)

func TestRewriteRequest(t *testing.T) {
	tests := []struct {
		name    string
		head    []string
		peer    netip.Addr
		trusted []netip.Prefix
		want    map[string][]string // exact list of values after the rewrite
		gone    []string            // headers that must not be forwarded
	}{{
		name: "hop-by-hop headers",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "Connection: keep-alive, Upgrade", "Keep-Alive: timeout=5",
			"Proxy-Connection: keep-alive", "TE: trailers", "Trailer: X-T", "Upgrade: websocket",
			"Proxy-Authorization: Basic Zm9vOmJhcg==", "Expect: 100-continue", "X-Keep: 1"},
		peer: peer4,
		want: map[string][]string{"X-Keep": {"1"}, "Host": {"h.test"}},
		gone: []string{"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
			"Proxy-Authorization", "Expect"},
	}, {
		name: "headers named in Connection",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "Connection: X-A, x-b", "Connection:  X-C ,\tX-D,, ",
			"CONNECTION: close,X-E", "X-A: 1", "X-B: 2", "X-C: 3", "X-D: 4", "X-E: 5", "X-Other: 6"},
		peer: peer4,
		want: map[string][]string{"X-Other": {"6"}},
		gone: []string{"Connection", "X-A", "X-B", "X-C", "X-D", "X-E"},
	}, {
		name: "underscore headers",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "X_Forwarded_For: 6.6.6.6", "SCRIPT_NAME: /evil",
			"x_forwarded_proto: https", "X-Ok: 1"},
		peer: peer4,
		want: map[string][]string{"X-Ok": {"1"}, "X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"http"}},
		gone: []string{"X_Forwarded_For", "SCRIPT_NAME", "x_forwarded_proto"},
	}, {
		name: "framing and Host are protected from Connection",
		head: []string{"POST / HTTP/1.1", "Host: h.test", "Content-Length: 3", "Content-Type: text/plain",
			"Connection: Host, Content-Length, Transfer-Encoding, Content-Type"},
		peer: peer4,
		want: map[string][]string{"Host": {"h.test"}, "Content-Length": {"3"}, "X-Forwarded-Host": {"h.test"}},
		gone: []string{"Content-Type"},
	}, {
		name: "Connection cannot remove the gateway's own headers",
		head: []string{"GET / HTTP/1.1", "Host: h.test",
			"Connection: X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host", "X-Forwarded-For: 6.6.6.6"},
		peer: proxy4, trusted: trusted,
		want: map[string][]string{"X-Forwarded-For": {"10.1.2.3"}, "X-Forwarded-Proto": {"http"},
			"X-Forwarded-Host": {"h.test"}},
	}, {
		name: "untrusted peer replaces X-Forwarded-For",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "X-Forwarded-For: 6.6.6.6"},
		peer: peer4, trusted: trusted,
		want: map[string][]string{"X-Forwarded-For": {"203.0.113.7"}},
	}, {
		name: "no trusted proxies replaces X-Forwarded-For",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "X-Forwarded-For: 6.6.6.6"},
		peer: proxy4,
		want: map[string][]string{"X-Forwarded-For": {"10.1.2.3"}},
	}, {
		name: "trusted IPv4 peer appends",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "X-Forwarded-For: 198.51.100.1"},
		peer: proxy4, trusted: trusted,
		want: map[string][]string{"X-Forwarded-For": {"198.51.100.1, 10.1.2.3"}},
	}, {
		name: "trusted IPv6 peer appends",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "x-forwarded-for: 198.51.100.1, 2001:db8::9"},
		peer: proxy6, trusted: trusted,
		want: map[string][]string{"X-Forwarded-For": {"198.51.100.1, 2001:db8::9, 2001:db8::5"}},
	}, {
		name: "trusted peer without prior value",
		head: []string{"GET / HTTP/1.1", "Host: h.test"},
		peer: proxy4, trusted: trusted,
		want: map[string][]string{"X-Forwarded-For": {"10.1.2.3"}},
	}, {
		name: "IPv4-mapped peer is not an IPv4 prefix member",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "X-Forwarded-For: 6.6.6.6"},
		peer: netip.MustParseAddr("::ffff:10.1.2.3"), trusted: trusted,
		want: map[string][]string{"X-Forwarded-For": {"::ffff:10.1.2.3"}},
	}, {
		name: "peer without an address",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "X-Forwarded-For: 6.6.6.6"},
		want: map[string][]string{"X-Forwarded-For": {"unknown"}},
	}, {
		// Regression: SetBytesV replaces the first of several header lines
		// only. gunicorn joins repeated headers with ", " and ProxyFix reads
		// the last entry, so a second client line would be the client IP.
		name: "repeated X-Forwarded-For from an untrusted client",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: 7.7.7.7"},
		peer: peer4, trusted: trusted,
		want: map[string][]string{"X-Forwarded-For": {"203.0.113.7"}},
	}, {
		name: "repeated X-Forwarded-For from a trusted proxy",
		head: []string{"GET / HTTP/1.1", "Host: h.test", "X-Forwarded-For: 198.51.100.1", "X-Forwarded-For: 198.51.100.2"},
		peer: proxy4, trusted: trusted,
		want: map[string][]string{"X-Forwarded-For": {"198.51.100.1, 198.51.100.2, 10.1.2.3"}},
	}, {
		name: "X-Forwarded-Proto and -Host replace the client's",
		head: []string{"GET / HTTP/1.1", "Host: h.test:8080", "X-Forwarded-Proto: https",
			"X-Forwarded-Proto: https", "X-Forwarded-Host: evil.test", "X-Forwarded-Host: evil2.test"},
		peer: peer4,
		want: map[string][]string{"X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"h.test:8080"},
			"Host": {"h.test:8080"}},
	}, {
		// Regression: an HTTP/1.0 request needs no Host, and then the
		// client's own X-Forwarded-Host was forwarded as if the gateway set it.
		name: "no Host drops the client's X-Forwarded-Host",
		head: []string{"GET / HTTP/1.0", "X-Forwarded-Host: evil.test"},
		peer: peer4,
		gone: []string{"X-Forwarded-Host"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := readRequestHeader(t, tt.head...)
			if !rewriteRequest(h, tt.peer, tt.trusted, new(scratch)) {
				t.Fatal("rewriteRequest() = false, want true")
			}
			checkHeaders(t, h, tt.want, tt.gone)
			if h.ConnectionClose() {
				t.Error("ConnectionClose() = true after rewrite, want false: the backend connection is the gateway's")
			}
		})
	}
}

// TestRewriteRequestRefusesConflictingFraming pins that a request with both
// Content-Length and Transfer-Encoding, in any spelling, is refused and left
// as it was.
func TestRewriteRequestRefusesConflictingFraming(t *testing.T) {
	tests := [][]string{
		{"POST / HTTP/1.1", "Host: h.test", "Content-Length: 3", "Transfer-Encoding: chunked", "Connection: X-A", "X-A: 1"},
		{"POST / HTTP/1.1", "Host: h.test", "transfer-encoding: chunked", "content-length: 0", "Connection: X-A", "X-A: 1"},
	}
	for _, head := range tests {
		t.Run(head[2], func(t *testing.T) {
			h := readRequestHeader(t, head...)
			before := string(h.Header())
			if rewriteRequest(h, peer4, nil, new(scratch)) {
				t.Error("rewriteRequest() = true, want false for conflicting framing")
			}
			if after := string(h.Header()); after != before {
				t.Errorf("refused request changed from\n%s\nto\n%s", before, after)
			}
		})
	}
}

// TestRewriteRequestReusesScratch pins that names collected for one request
// are not applied to the next one that reuses the pooled scratch.
func TestRewriteRequestReusesScratch(t *testing.T) {
	s := new(scratch)
	first := readRequestHeader(t, "GET / HTTP/1.1", "Host: h.test", "Connection: X-A", "X_B: 1", "X-A: 1")
	rewriteRequest(first, peer4, nil, s)
	second := readRequestHeader(t, "GET / HTTP/1.1", "Host: h.test", "X-A: 2", "X-B: 3")
	rewriteRequest(second, peer4, nil, s)
	for name, want := range map[string]string{"X-A": "2", "X-B": "3"} {
		if got := values(second, name); !slices.Equal(got, []string{want}) {
			t.Errorf("second request %s = %q, want [%q]", name, got, want)
		}
	}
}

func TestRewriteResponse(t *testing.T) {
	tests := []struct {
		name string
		head []string
		want map[string][]string
		gone []string
	}{{
		name: "hop-by-hop headers",
		head: []string{"HTTP/1.1 200 OK", "Content-Length: 0", "Connection: keep-alive", "Keep-Alive: timeout=2",
			"Proxy-Authenticate: Basic", "Upgrade: h2c", "TE: trailers", "Set-Cookie: a=1", "X-App: 1"},
		want: map[string][]string{"X-App": {"1"}, "Content-Length": {"0"}},
		gone: []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Upgrade", "TE"},
	}, {
		name: "headers named in Connection",
		head: []string{"HTTP/1.1 200 OK", "Content-Length: 2", "Connection: X-A ,\tx-b", "X-A: 1", "X-B: 2", "X-C: 3"},
		want: map[string][]string{"X-C": {"3"}},
		gone: []string{"Connection", "X-A", "X-B"},
	}, {
		// Regression: Peek returns the first Connection line only.
		name: "headers named in repeated Connection lines",
		head: []string{"HTTP/1.1 200 OK", "Content-Length: 0", "Connection: X-A", "Connection: X-B",
			"X-A: 1", "X-B: 2", "X-C: 3"},
		want: map[string][]string{"X-C": {"3"}},
		gone: []string{"Connection", "X-A", "X-B"},
	}, {
		name: "backend close is not passed on",
		head: []string{"HTTP/1.1 200 OK", "Content-Length: 0", "Connection: close"},
		gone: []string{"Connection"},
	}, {
		name: "framing is protected from Connection",
		head: []string{"HTTP/1.1 200 OK", "Content-Length: 5", "Content-Type: text/plain", "Connection: Content-Length, Content-Type"},
		want: map[string][]string{"Content-Length": {"5"}},
		gone: []string{"Content-Type"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := readResponseHeader(t, tt.head...)
			rewriteResponse(h, new(scratch))
			checkHeaders(t, h, tt.want, tt.gone)
			if h.ConnectionClose() {
				t.Error("ConnectionClose() = true after rewrite, want false: the client connection is the gateway's")
			}
		})
	}
}

// checkHeaders compares every line of the named headers with want and
// checks that the gone ones have no line left.
func checkHeaders[H interface {
	*fasthttp.RequestHeader | *fasthttp.ResponseHeader
}](t *testing.T, h H, want map[string][]string, gone []string) {
	t.Helper()
	for name, w := range want {
		if got := values(h, name); !slices.Equal(got, w) {
			t.Errorf("%s = %q, want %q", name, got, w)
		}
	}
	for _, name := range gone {
		if got := values(h, name); len(got) != 0 {
			t.Errorf("%s = %q, want it removed", name, got)
		}
	}
}

func TestEqFold(t *testing.T) {
	tests := []struct {
		b, s string
		want bool
	}{
		{"Connection", "Connection", true},
		{"connection", "Connection", true},
		{"CONNECTION", "connection", true},
		{"Connectio", "Connection", false},
		{"Connection ", "Connection", false},
		{"", "", true},
		{"", "a", false},
		{"Content-Length", "content-length", true},
		{"Content_Length", "Content-Length", false},
		{"X-1", "x-1", true},
		{"@", "`", false}, // differ by 0x20 but are not letters
		{"[", "{", false},
		{"\r", "-", false},
		{"\xcb", "\xeb", false},
		{"keep-alive", "Keep-Alive", true},
	}
	for _, tt := range tests {
		t.Run(tt.b+"/"+tt.s, func(t *testing.T) {
			if got := eqFold([]byte(tt.b), tt.s); got != tt.want {
				t.Errorf("eqFold(%q, %q) = %v, want %v", tt.b, tt.s, got, tt.want)
			}
		})
	}
}

// addrConn is a net.Conn that only knows its remote address.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

func TestPeerAddr(t *testing.T) {
	tests := []struct {
		name     string
		conn     net.Conn
		want     string // "" for an invalid address
		wantPort string
	}{
		{"IPv4", addrConn{remote: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1).To4(), Port: 1234}}, "10.0.0.1", "10.0.0.1:1234"},
		{"IPv4 in 16 bytes", addrConn{remote: &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1}}, "10.0.0.1", "10.0.0.1:1"},
		{"IPv4-mapped IPv6", addrConn{remote: &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 2}}, "192.0.2.1", "192.0.2.1:2"},
		{"IPv6", addrConn{remote: &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}}, "2001:db8::1", "[2001:db8::1]:443"},
		{"not TCP", addrConn{remote: &net.UnixAddr{Name: "pipe", Net: "unix"}}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := peerAddr(tt.conn)
			if s := addrString(got); s != tt.want {
				t.Errorf("peerAddr() = %q, want %q", s, tt.want)
			}
			if s := string(peerAddrPort(nil, tt.conn)); s != tt.wantPort {
				t.Errorf("peerAddrPort() = %q, want %q", s, tt.wantPort)
			}
		})
	}
	if got := peerAddr(nil); got.IsValid() {
		t.Errorf("peerAddr(nil) = %v, want an invalid address", got)
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// TestMappedPeerIsTrusted pins the whole chain for a dual-stack listener: a
// proxy at 10.1.2.3 arrives as ::ffff:10.1.2.3 and must still be trusted.
func TestMappedPeerIsTrusted(t *testing.T) {
	conn := addrConn{remote: &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 5}}
	h := readRequestHeader(t, "GET / HTTP/1.1", "Host: h.test", "X-Forwarded-For: 198.51.100.1")
	rewriteRequest(h, peerAddr(conn), trusted, new(scratch))
	if got, want := values(h, "X-Forwarded-For"), []string{"198.51.100.1, 10.1.2.3"}; !slices.Equal(got, want) {
		t.Errorf("X-Forwarded-For = %q, want %q", got, want)
	}
}
