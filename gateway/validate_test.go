package gateway

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestCheck pins the rules fasthttp's parser lets through: each request
// here parses, and check names the refusal (or none).
func TestCheck(t *testing.T) {
	l := &limits{maxHeaderCount: 3, maxURIBytes: 16, maxBodyBytes: 10}
	tests := []struct {
		name, head string
		want       string // refusal text; "" for none
	}{
		{"plain", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", ""},
		{"HTTP/1.9", "GET / HTTP/1.9\r\nHost: x\r\n\r\n", ""},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP version not supported"},
		{"CONNECT", "CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n", "CONNECT is not supported"},
		{"target at the limit", "GET /234567890123456 HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"target over the limit", "GET /2345678901234567 HTTP/1.1\r\nHost: x\r\n\r\n", "request-target too long"},
		{"fields at the limit", "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n", ""},
		{"fields over the limit", "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", "too many header fields"},
		{"Content-Length over max_body_bytes", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", "request body too large"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n 2\r\n\r\n", "obs-fold in header"},
		{"bare LF", "GET / HTTP/1.1\r\nHost: x\nA: 1\r\n\r\n", "bare LF in header"},
		{"space in a name", "GET / HTTP/1.1\r\nHost: x\r\nA B: 1\r\n\r\n", "invalid header name"},
		{"TE identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", "unsupported transfer coding"},
		{"TE chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", ""},
		{"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@x\r\n\r\n", "invalid Host"},
		{"Host IPv6 and port", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", ""},
		{"Expect 100-continue", "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n", ""},
		{"Expect other", "GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", "unsupported expectation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			if err := h.Read(bufio.NewReader(strings.NewReader(tt.head))); err != nil {
				t.Fatalf("fasthttp refused %q itself: %v", tt.head, err)
			}
			got := ""
			if r := l.check(&h); r != nil {
				got = r.text
			}
			if got != tt.want {
				t.Errorf("check() = %q, want %q", got, tt.want)
			}
			if r := (&limits{}).check(&h); r != nil && strings.Contains(tt.name, "limit") {
				t.Errorf("check() with no limits = %q, want none", r.text)
			}
		})
	}
}

// BenchmarkCheck measures the request checks on the benchmarks' usual
// request head.
func BenchmarkCheck(b *testing.B) {
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(strings.NewReader(benchHead))); err != nil {
		b.Fatalf("RequestHeader.Read() error = %v", err)
	}
	l := &limits{maxHeaderCount: 100, maxURIBytes: 8 << 10, maxBodyBytes: 10 << 20}
	b.ReportAllocs()
	for b.Loop() {
		if l.check(&h) != nil {
			b.Fatal("check() refused the benchmark request")
		}
	}
}
