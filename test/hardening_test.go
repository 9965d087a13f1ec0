package test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The tests in this file pin README "Request hardening": requests that a
// backend could frame or read differently than the gateway are refused by
// the gateway itself, at once and with the connection closed, and what is
// accepted reaches the backend in one canonical form.

// hardeningConfig is hostileConfig with a small max_uri_bytes, so that the
// 414 case fits in the 4 KiB header buffer.
func hardeningConfig(backend string) string {
	return strings.Replace(hostileConfig(backend), "max_body_bytes: 64KiB}", "max_body_bytes: 64KiB, max_uri_bytes: 1KiB}", 1)
}

// manyFields returns n header lines "X-Fi: v".
func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "X-F%d: v\r\n", i)
	}
	return b.String()
}

// smuggled is a second request hidden where the gateway must not let a
// backend find one.
const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

// refusedCases are requests the gateway answers itself: status and the
// one-line body ("" for fasthttp's own "malformed request" and friends,
// when only the status is pinned).
var refusedCases = []struct {
	name, raw, status, text string
}{
	// The five reported cases.
	{"TE identity hides a request in the body", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n" + smuggled, "400", "unsupported transfer coding"},
	{"TE identity with Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nab", "400", ""},
	{"space inside a field name", "GET / HTTP/1.1\r\nHost: x\r\nFoo Bar: x\r\n\r\n", "400", "invalid header name"},
	{"every line ends in bare LF", "GET / HTTP/1.1\nHost: x\n\n", "400", "bare LF in header"},
	{"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", "505", "HTTP version not supported"},
	{"150 header fields", "GET / HTTP/1.1\r\nHost: x\r\n" + manyFields(150) + "\r\n", "431", "too many header fields"},

	// Framing.
	{"Content-Length with a sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nab", "400", ""},
	{"negative Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -2\r\n\r\nab", "400", ""},
	{"Content-Length with a space inside", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nab", "400", ""},
	{"Content-Length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nab", "400", ""},
	{"Content-Length overflow", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\nab", "400", ""},
	{"TE chunked, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", "400", ""},
	{"two TE lines", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400", ""},
	{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400", ""},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", "400", "obs-fold in header"},
	{"obs-fold with a tab", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tContent-Length: 2\r\n\r\n", "400", "obs-fold in header"},
	{"obs-fold of Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", "400", ""},
	{"bare LF before the empty line", "GET / HTTP/1.1\r\nHost: x\n\r\n", "400", "bare LF in header"},
	{"bare LF in one line", "GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", "400", "bare LF in header"},
	{"bare LF after a CRLF line", "GET / HTTP/1.1\r\nHost: x\r\n\n", "400", "bare LF in header"},
	{"chunk size overflow", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nab\r\n0\r\n\r\n", "400", ""},
	{"chunk lines in bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n", "400", ""},
	{"chunk size with leading space", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 2\r\nab\r\n0\r\n\r\n", "400", ""},
	{"chunk size with 0x", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n", "400", ""},
	{"space before a chunk extension", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2 ; a=b\r\nab\r\n0\r\n\r\n", "400", ""},
	{"chunk longer than its size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "400", ""},
	{"chunk size not hex", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", "400", ""},
	{"Content-Length as a trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\nContent-Length: 5\r\n\r\n", "400", ""},
	{"NUL in a name", "GET / HTTP/1.1\r\nHost: x\r\nX-\x00A: 1\r\n\r\n", "400", ""},
	{"tab in a name", "GET / HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n", "400", ""},
	{"DEL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n", "400", ""},
	{"control byte in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", "400", ""},
	{"DEL in the target", "GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", "400", ""},
	{"control byte in the target", "GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", "400", ""},

	// Request line.
	{"method not a token", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "400", ""},
	{"CONNECT", "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", "501", "CONNECT is not supported"},
	{"asterisk form for GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", "400", ""},
	{"request-target over max_uri_bytes", "GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\nHost: x\r\n\r\n", "414", "request-target too long"},
	{"HTTP/0.9", "GET /\r\n\r\n", "400", ""},
	{"HTTP/0.9 version", "GET / HTTP/0.9\r\nHost: x\r\n\r\n", "505", "HTTP version not supported"},
	{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: x\r\n\r\n", "505", "HTTP version not supported"},
	{"lowercase version", "GET / http/1.1\r\nHost: x\r\n\r\n", "400", ""},
	{"two spaces in the request line", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "400", ""},

	// Headers as gunicorn reads them.
	{"two Host lines", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "400", ""},
	{"Host with userinfo", "GET / HTTP/1.1\r\nHost: user:pw@x\r\n\r\n", "400", "invalid Host"},
	{"Host with a path", "GET / HTTP/1.1\r\nHost: x/admin\r\n\r\n", "400", ""},
	{"Host with a space", "GET / HTTP/1.1\r\nHost: x y\r\n\r\n", "400", ""},
	{"Expect other than 100-continue", "POST / HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nContent-Length: 2\r\n\r\nab", "417", "unsupported expectation"},
	{"150 header fields behind Expect: 100-continue", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n" + manyFields(150) + "\r\n", "431", "too many header fields"},
	{"obs-fold behind Expect: 100-continue", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nX-A: 1\r\n 2\r\n\r\n", "400", "obs-fold in header"},
	{"Expect list", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue, foo\r\nContent-Length: 2\r\n\r\nab", "417", "unsupported expectation"},
}

// Requests that a backend could read differently than the gateway are
// answered by the gateway with a 4xx or 5xx naming the reason, at once and
// with the connection closed, and no backend sees a byte of them.
func TestHardeningRefused(t *testing.T) {
	be := NewRawBackend(t, "")
	g := StartGateway(t, hardeningConfig(be.Addr()))
	for _, tc := range refusedCases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out := exchange(t, g.Addr, tc.raw)
			// read_timeout is 1s: an answer after it is the timeout's.
			if took := time.Since(start); took > 900*time.Millisecond {
				t.Errorf("answered after %v, want at once", took)
			}
			if !strings.HasPrefix(out, "HTTP/1.1 "+tc.status+" ") {
				t.Fatalf("response = %q, want status %s", firstLine(out), tc.status)
			}
			head, body, _ := strings.Cut(out, "\r\n\r\n")
			if !strings.Contains(head, "\r\nConnection: close") {
				t.Errorf("response head %q has no Connection: close", head)
			}
			if tc.text != "" && body != tc.text+"\n" {
				t.Errorf("body = %q, want %q", body, tc.text+"\n")
			}
		})
	}
	if heads := be.Heads(); len(heads) != 0 {
		t.Fatalf("backend saw %d of the refused requests, want 0; first:\n%s", len(heads), heads[0])
	}
}

// What the gateway accepts but rewrites: the backend gets one canonical
// request.
func TestHardeningNormalised(t *testing.T) {
	be := NewRawBackend(t, "")
	g := StartGateway(t, hardeningConfig(be.Addr()))
	for _, tc := range []struct {
		name, raw, line string
		present         []string // header lines the backend must get, exactly
		absent          []string // header names it must not get, in any case
	}{
		{"HTTP/1.2 is forwarded as HTTP/1.1", "GET /v HTTP/1.2\r\nHost: x\r\n\r\n", "GET /v HTTP/1.1", nil, nil},
		{"HTTP/1.0 stays HTTP/1.0", "GET /v HTTP/1.0\r\nHost: x\r\n\r\n", "GET /v HTTP/1.0", nil, nil},
		{"leading zeros in Content-Length", "POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 002\r\n\r\nab", "POST /cl HTTP/1.1",
			[]string{"Content-Length: 2"}, []string{"Content-Type", "Transfer-Encoding"}},
		{"chunked with an extension and a trailer", "POST /ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nTrailer: X-T\r\n\r\n" +
			"1;ext=1\r\na\r\n1 \r\nb\r\n0\r\nX-T: 1\r\n\r\n", "POST /ch HTTP/1.1",
			[]string{"Content-Length: 2"}, []string{"Transfer-Encoding", "Trailer", "X-T", "Content-Type"}},
		{"forwarding headers in every spelling", "GET /f HTTP/1.1\r\nHost: x\r\nx-forwarded-ssl: on\r\nX-FORWARDED-PROTO: https\r\n" +
			"X-Forwarded-Protocol: ssl\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /evil\r\nx-forwarded-for: 6.6.6.6\r\n" +
			"X-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\n\r\n", "GET /f HTTP/1.1",
			// The gateway's own X-Forwarded-Port is the port the client connected to.
			[]string{"X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", "X-Forwarded-Host: x", "X-Forwarded-Port: PORT"},
			[]string{"X-Forwarded-Ssl", "X-Forwarded-Protocol", "X-Forwarded-Prefix", "X-Real-Ip", "Forwarded", "X_Forwarded_For"}},
		{"trailer without a declaration or a body", "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-U: 1\r\n\r\n",
			"POST /t HTTP/1.1", []string{"Content-Length: 0"}, []string{"Transfer-Encoding", "Trailer", "X-U"}},
		{"absolute-form", "GET http://x/p?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", "GET /p?q=1 HTTP/1.1", []string{"Host: x"}, nil},
		{"asterisk form for OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "OPTIONS * HTTP/1.1", nil, nil},
		{"Expect 100-continue is answered by the gateway", "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nab",
			"POST /e HTTP/1.1", []string{"Content-Length: 2"}, []string{"Expect"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(be.Heads())
			// Close after the answer, so exchange returns without waiting.
			raw := strings.Replace(tc.raw, "Host: x\r\n", "Host: x\r\nConnection: close\r\n", 1)
			out := exchange(t, g.Addr, raw)
			if !strings.Contains(out, " 200 OK\r\n") {
				t.Fatalf("response = %q, want 200", out)
			}
			heads := be.Heads()
			if len(heads) != before+1 {
				t.Fatalf("backend got %d requests, want 1", len(heads)-before)
			}
			line, fields := ParseHead(heads[before])
			if line != tc.line {
				t.Errorf("backend request line = %q, want %q", line, tc.line)
			}
			lines := strings.Split(heads[before], "\r\n")
			_, port, _ := net.SplitHostPort(g.Addr)
			for _, want := range tc.present {
				want = strings.Replace(want, "PORT", port, 1)
				if !contains(lines, want) {
					t.Errorf("backend head lacks %q:\n%s", want, heads[before])
				}
			}
			for _, name := range tc.absent {
				if v := HeaderValues(fields, name); len(v) > 0 {
					t.Errorf("backend got %s: %q:\n%s", name, v, heads[before])
				}
			}
		})
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// Response header names reach the client as the backend spelled them
// (regression: ETag arrived as Etag), and hop-by-hop ones are still
// dropped in any spelling.
func TestResponseHeaderNamesKeepCase(t *testing.T) {
	be := NewRawBackend(t, "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nX-Request-ID: r1\r\nwww-authenticate: Basic\r\n"+
		"connection: keep-alive, X-Hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nUPGRADE: h2c\r\nContent-Length: 2\r\n\r\nok")
	g := StartGateway(t, hardeningConfig(be.Addr()))
	out := exchange(t, g.Addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	head, body, _ := strings.Cut(out, "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") || body != "ok" {
		t.Fatalf("response = %q, want 200 ok", out)
	}
	lines := strings.Split(head, "\r\n")
	for _, want := range []string{`ETag: "v1"`, "X-Request-ID: r1", "www-authenticate: Basic"} {
		if !contains(lines, want) {
			t.Errorf("response head lacks %q:\n%s", want, head)
		}
	}
	_, fields := ParseHead(head)
	for _, name := range []string{"X-Hop", "Keep-Alive", "Upgrade"} {
		if v := HeaderValues(fields, name); len(v) > 0 {
			t.Errorf("client got hop-by-hop %s: %q", name, v)
		}
	}
}

// An upload whose Content-Length is over max_body_bytes gets 413 at once,
// not 100 Continue first (nginx's behaviour); one within the limit still
// gets 100 Continue and reaches the backend.
func TestExpectContinueOverLimit(t *testing.T) {
	be := NewRawBackend(t, "")
	g := StartGateway(t, hardeningConfig(be.Addr())+"log: {access_log: stderr}\n")

	conn, br := DialRaw(t, g.Addr)
	io.WriteString(conn, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 15000000\r\nExpect: 100-continue\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to the head: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || string(body) != "request body too large\n" || !resp.Close {
		t.Fatalf("answer to a 15 MB upload = %d %q close=%v, want 413 at once and a closed connection",
			resp.StatusCode, body, resp.Close)
	}

	g.WaitForLog(t, `"path":"/up","status":413`, 5*time.Second) // refused, and logged

	conn, br = DialRaw(t, g.Addr)
	io.WriteString(conn, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
	if line, err := br.ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line = %q, %v; want 100 Continue", line, err)
	}
	br.ReadString('\n') // the empty line after it
	resp, _ = RawRoundTrip(t, conn, br, "POST", "ab")
	if resp.StatusCode != 200 {
		t.Fatalf("upload within the limit = %d, want 200", resp.StatusCode)
	}
	if heads := be.Heads(); len(heads) != 1 || !strings.HasPrefix(heads[0], "POST /up ") {
		t.Fatalf("backend got %q, want the one upload within the limit", heads)
	}
}

// A slow POST holds no backend slot: with max_inflight 1, another client
// is served while it trickles, and it is cut at read_timeout without ever
// reaching the backend.
func TestSlowPostHoldsNoSlot(t *testing.T) {
	be := NewRecorder(t, nil)
	g := StartGateway(t, strings.Replace(hardeningConfig(be.Addr()), "max_inflight: 4", "max_inflight: 1", 1))
	slow, br := DialRaw(t, g.Addr)
	io.WriteString(slow, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
	start := time.Now()
	for i := range 3 {
		if code, _ := get(t, g.URL+"/fast"); code != 200 {
			t.Fatalf("GET %d while a POST trickles = %d, want 200", i, code)
		}
	}
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(br)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("slow POST held its connection %v, want about read_timeout (1s)", took)
	}
	if len(out) > 0 && !strings.HasPrefix(string(out), "HTTP/1.1 408 ") {
		t.Fatalf("slow POST got %q, want 408 or a closed connection", firstLine(string(out)))
	}
	if n := be.Count(); n != 3 || be.Last().RequestURI != "/fast" {
		t.Fatalf("backend saw %d requests (last %q), want only the 3 fast ones", n, be.Last().RequestURI)
	}
}

// chunked encodes body as n-byte chunks.
func chunked(body string, n int) string {
	var b strings.Builder
	for len(body) > 0 {
		k := min(n, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", k, body[:k])
		body = body[k:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// Inputs that cost the gateway more than their bytes must stay bounded:
// many tiny chunks are re-framed into one Content-Length body and count
// against max_body_bytes decoded; a pipelined flood is answered in order.
func TestHardeningCost(t *testing.T) {
	be := NewRawBackend(t, "")
	g := StartGateway(t, hardeningConfig(be.Addr()))
	t.Run("many tiny chunks", func(t *testing.T) {
		out := exchange(t, g.Addr, "POST /tiny HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"+
			chunked(strings.Repeat("a", 30000), 1))
		if !strings.HasPrefix(out, "HTTP/1.1 200 ") {
			t.Fatalf("response = %q, want 200", firstLine(out))
		}
		heads := be.Heads()
		_, fields := ParseHead(heads[len(heads)-1])
		if cl := HeaderValues(fields, "Content-Length"); len(cl) != 1 || cl[0] != "30000" {
			t.Fatalf("backend Content-Length = %q, want [30000]", cl)
		}
	})
	t.Run("tiny chunks over max_body_bytes", func(t *testing.T) {
		before := len(be.Heads())
		out := exchange(t, g.Addr, "POST /tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
			chunked(strings.Repeat("a", 70000), 1))
		if !strings.HasPrefix(out, "HTTP/1.1 413 ") {
			t.Fatalf("response = %q, want 413", firstLine(out))
		}
		if n := len(be.Heads()) - before; n != 0 {
			t.Fatalf("backend got %d requests, want 0", n)
		}
	})
	t.Run("pipelined flood", func(t *testing.T) {
		const n = 300
		before := len(be.Heads())
		conn, br := DialRaw(t, g.Addr)
		go io.WriteString(conn, strings.Repeat("GET /p HTTP/1.1\r\nHost: x\r\n\r\n", n))
		for i := range n {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 {
				t.Fatalf("response %d = %d, want 200", i, resp.StatusCode)
			}
		}
		if got := len(be.Heads()) - before; got != n {
			t.Fatalf("backend got %d requests, want %d", got, n)
		}
	})
}

// Against gunicorn 20.1, whose parser differs from fasthttp's: no request
// hidden in a refused one reaches the app. Every case hides "GET /work",
// the one path the app counts; a control request proves the count works.
func TestGunicornNoSmuggling(t *testing.T) {
	apps := startGunicorns(t, 1)
	g := StartGateway(t, gunicornConfig("", apps))
	work := "GET /work?ms=0 HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct{ name, raw, status string }{
		{"TE identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n" + work, "400"},
		{"TE identity with Content-Length 0", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 0\r\n\r\n" + work, "400"},
		{"space in Content-Length's name", fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent Length: %d\r\n\r\n%s", len(work), work), "400"},
		{"folded Content-Length", fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Content-Length: %d\r\n\r\n%s", len(work), work), "400"},
		{"bare LF before Content-Length", fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nX-A: 1\nContent-Length: %d\r\n\r\n%s", len(work), work), "400"},
		{"HTTP/2.0", "GET /work?ms=0 HTTP/2.0\r\nHost: x\r\n\r\n", "505"},
		{"150 headers", "GET /work?ms=0 HTTP/1.1\r\nHost: x\r\n" + manyFields(150) + "\r\n", "431"},
		{"chunked, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + work, "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := exchange(t, g.Addr, tc.raw)
			if !strings.HasPrefix(out, "HTTP/1.1 "+tc.status+" ") {
				t.Fatalf("response = %q, want %s from the gateway", firstLine(out), tc.status)
			}
		})
	}
	if s := apps[0].stats(t); s.Served != 0 {
		t.Fatalf("the app served /work %d times, want 0", s.Served)
	}
	if code, _ := get(t, g.URL+"/work?ms=0"); code != 200 {
		t.Fatalf("control GET /work = %d, want 200", code)
	}
	if s := apps[0].stats(t); s.Served != 1 {
		t.Fatalf("the app served /work %d times after the control request, want 1", s.Served)
	}

	// gunicorn takes the scheme from X-Forwarded-Proto, -Protocol and -Ssl
	// of a proxy in forwarded_allow_ips (127.0.0.1, the gateway) and
	// refuses a request whose three disagree: a client's -Ssl must not
	// reach it next to the gateway's X-Forwarded-Proto: http.
	out := exchange(t, g.Addr, "GET /work?ms=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"+
		"x-forwarded-ssl: on\r\nX-Forwarded-Protocol: ssl\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 ") {
		t.Fatalf("GET /work with a client's X-Forwarded-Ssl = %q, want 200 from the app", firstLine(out))
	}
}

// Slowloris: a client that keeps trickling header bytes is still cut at
// read_timeout (the deadline covers the whole request, it is not renewed
// by each byte), and never reaches the backend.
func TestSlowlorisTrickleCut(t *testing.T) {
	be := NewRawBackend(t, "")
	g := StartGateway(t, hardeningConfig(be.Addr()))
	conn, br := DialRaw(t, g.Addr)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		head := "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Slow: 1\r\n", 100)
		for i := range len(head) {
			if _, err := io.WriteString(conn, head[i:i+1]); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	out, _ := io.ReadAll(br) // until the gateway closes
	took := time.Since(start)
	conn.Close()
	<-done
	if took > 3*time.Second {
		t.Fatalf("a trickling client kept its connection %v, want about read_timeout (1s)", took)
	}
	if len(out) > 0 && !strings.HasPrefix(string(out), "HTTP/1.1 408 ") {
		t.Fatalf("trickling client got %q, want 408 or a closed connection", firstLine(string(out)))
	}
	if n := len(be.Heads()); n != 0 {
		t.Fatalf("backend got %d requests, want 0", n)
	}
}
