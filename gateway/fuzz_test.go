package gateway

import (
	"bufio"
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// fuzzPeers are the client addresses FuzzRewriteRequest picks from: trusted
// and untrusted, IPv4 and IPv6, and none at all.
var fuzzPeers = []netip.Addr{
	netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("203.0.113.7"),
	netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("2001:db9::5"), {},
}

// FuzzRewriteRequest feeds random header blocks through fasthttp's parser
// and rewriteRequest. Whatever the client sends, the backend must get no
// header with "_" in its name, no hop-by-hop header, no header the client
// named in Connection (unless the gateway owns it), and an X-Forwarded-For
// that ends with the peer.
func FuzzRewriteRequest(f *testing.F) {
	for _, seed := range []string{
		"Host: h.test\r\nX-Forwarded-For: 6.6.6.6",
		"Host: h.test\r\nConnection: X-A, x-b\r\nConnection:  X-C ,\t,\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3",
		"Host: h.test\r\nX_Forwarded_For: 1\r\nSCRIPT_NAME: /x",
		"Host: h.test\r\nConnection: Host, Content-Length, X-Forwarded-For\r\nContent-Length: 0",
		"Host: h.test\r\nTE: trailers\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nKeep-Alive: 5",
		"Host: h.test\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2",
		"Host: h.test\r\nTransfer-Encoding: chunked\r\nConnection: close, Transfer-Encoding",
		"Host: h.test\r\nTrailer: X-T\r\nExpect: 100-continue\r\nProxy-Authorization: x",
		"X-Forwarded-Host: evil",
		"Host: h.test\r\nContent-Length: 1\r\nTransfer-Encoding: chunked",
	} {
		f.Add([]byte(seed), uint8(0))
		f.Add([]byte(seed), uint8(1))
	}
	f.Fuzz(func(t *testing.T, block []byte, pick uint8) {
		var h fasthttp.RequestHeader
		raw := append([]byte("GET / HTTP/1.1\r\n"), block...)
		raw = append(raw, "\r\n\r\n"...)
		if h.Read(bufio.NewReader(bytes.NewReader(raw))) != nil {
			return
		}
		// The handler checks every request before it rewrites one: what
		// the checks refuse (bare LF, obs-fold, ...) never gets here.
		if new(limits).check(&h) != nil {
			return
		}
		listed := connectionTokens(&h)
		peer := fuzzPeers[int(pick)%len(fuzzPeers)]
		framing := sent(&h, "Content-Length") && sent(&h, "Transfer-Encoding")
		if ok := rewriteRequest(&h, peer, trusted, new(scratch)); ok == framing {
			t.Fatalf("rewriteRequest() = %v with Content-Length and Transfer-Encoding both present: %v", ok, framing)
		} else if !ok {
			return
		}
		checkRewritten(t, &h, listed, peer)
	})
}

// connectionTokens returns the lowercased names listed in every Connection
// header of h.
func connectionTokens(h *fasthttp.RequestHeader) map[string]bool {
	listed := make(map[string]bool)
	for k, v := range h.AllInOrder() {
		if !strings.EqualFold(string(k), "Connection") {
			continue
		}
		for tok := range strings.SplitSeq(string(v), ",") {
			listed[strings.ToLower(strings.Trim(tok, " \t"))] = true
		}
	}
	return listed
}

// sent reports whether the client sent the header name at all (All hides a
// Content-Length that Transfer-Encoding overrode).
func sent(h *fasthttp.RequestHeader, name string) bool {
	for k := range h.AllInOrder() {
		if strings.EqualFold(string(k), name) {
			return true
		}
	}
	return false
}

// gatewayOwned are headers the gateway sets itself or never removes.
var gatewayOwned = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true,
	"x-forwarded-for": true, "x-forwarded-proto": true, "x-forwarded-host": true,
}

func checkRewritten(t *testing.T, h *fasthttp.RequestHeader, listed map[string]bool, peer netip.Addr) {
	t.Helper()
	var xff []string
	for k, v := range h.All() {
		name := strings.ToLower(string(k))
		switch {
		case strings.Contains(name, "_"):
			t.Errorf("header %q with an underscore was forwarded", k)
		case isHop(name):
			t.Errorf("hop-by-hop header %q: %q was forwarded", k, v)
		case listed[name] && !gatewayOwned[name]:
			t.Errorf("header %q named in Connection was forwarded", k)
		case name == "x-forwarded-for":
			xff = append(xff, string(v))
		}
	}
	want := "unknown"
	if peer.IsValid() {
		want = peer.String()
	}
	// gunicorn joins repeated lines with ", ": that is what the app reads.
	got := strings.Join(xff, ", ")
	if got != want && !strings.HasSuffix(got, ", "+want) {
		t.Errorf("X-Forwarded-For = %q, want it to end with the peer %q", got, want)
	}
}

func isHop(lower string) bool {
	for _, name := range hopHeaders {
		if strings.EqualFold(lower, name) {
			return true
		}
	}
	return false
}

// FuzzRoutePath feeds random request-targets to routePath and the router: no
// panic, the input is left alone, and the path routed on is absolute and has
// no dot segments, so "/public/../admin" cannot reach another route's
// upstream by its spelling.
func FuzzRoutePath(f *testing.F) {
	for _, seed := range []string{
		"/", "/api?q=1", "/a/../b", "/%2e%2e/admin", "/api/.%2E/x", "http://h.test/p?q", "*", "//admin",
		"/a\\..\\b", "/%", "/a%zz", "", "?", "http://[::1]:80/x", "/\x00", "/a/./b/../../../c",
	} {
		f.Add([]byte(seed))
	}
	r := benchRouter()
	f.Fuzz(func(t *testing.T, uri []byte) {
		orig := bytes.Clone(uri)
		var u fasthttp.URI
		path := routePath(uri, &u)
		if !bytes.Equal(uri, orig) {
			t.Fatalf("routePath changed its input %q to %q", orig, uri)
		}
		r.match([]byte("example.com"), path)
		if path == nil {
			return
		}
		if len(path) == 0 || path[0] != '/' {
			t.Errorf("routePath(%q) = %q, want an absolute path", uri, path)
		}
		if bytes.Contains(path, []byte("/../")) || bytes.HasSuffix(path, []byte("/..")) ||
			bytes.Contains(path, []byte("/./")) || bytes.HasSuffix(path, []byte("/.")) {
			t.Errorf("routePath(%q) = %q, which has dot segments", uri, path)
		}
	})
}
