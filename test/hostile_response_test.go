package test

import (
	"strings"
	"testing"
)

// A hostile or broken backend never gets a clean-looking wrong answer to
// the client: a response the gateway cannot frame one way is a 502, a
// bodiless status keeps no body, and a response with both Content-Length
// and Transfer-Encoding is read by its chunked framing, as RFC 9112 6.3
// tells an intermediary to, and its connection closed.
func TestHostileResponses(t *testing.T) {
	flood := strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 200)
	for _, tc := range []struct {
		name, respond string
		status, body  string
	}{
		{"Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "200", "ok"},
		{"Transfer-Encoding gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok", "502", "bad response from backend\n"},
		{"Content-Length with a sign", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", "502", "bad response from backend\n"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", "502", "bad response from backend\n"},
		{"chunked body cut short", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nok", "502", "backend closed the connection\n"},
		{"204 with a body", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", "204", ""},
		{"304 with a body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello", "304", ""},
		{"a flood of 100 Continue", flood + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "502", "bad response from backend\n"},
		{"obs-fold in a response header", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok", "200", "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := StartGateway(t, hostileConfig(brokenBackend(t, tc.respond, false)))
			stdout, _, code := Curl(t, "-m", "10", "-w", "\n%{http_code}", g.URL+"/")
			if code != 0 {
				t.Fatalf("curl exit %d", code)
			}
			i := strings.LastIndexByte(stdout, '\n')
			if body, status := stdout[:i], stdout[i+1:]; status != tc.status || body != tc.body {
				t.Fatalf("got %s %q, want %s %q", status, body, tc.status, tc.body)
			}
		})
	}
}

// A backend that sends a body after a 204 on a kept-alive connection: the
// gateway discards that connection, so the body never becomes the answer
// to the next request.
func TestBodyAfter204NotReused(t *testing.T) {
	be := NewRawBackend(t, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello")
	g := StartGateway(t, hostileConfig(be.Addr()))
	for i := range 3 {
		stdout, _, code := Curl(t, "-m", "10", "-w", "%{http_code}", g.URL+"/")
		if code != 0 || stdout != "204" {
			t.Fatalf("request %d = %q (curl exit %d), want 204 and no body", i, stdout, code)
		}
	}
	if n := len(be.Heads()); n != 3 {
		t.Fatalf("backend got %d requests, want 3", n)
	}
}
