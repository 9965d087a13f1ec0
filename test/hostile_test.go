package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// exchange writes raw to the gateway and reads until the gateway closes the
// connection or 5 s pass; it returns what came back.
func exchange(t *testing.T, addr string, raw ...string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, part := range raw {
		if _, err := io.WriteString(c, part); err != nil {
			break // the gateway may close before it read everything
		}
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

func hostileConfig(backend string) string {
	return fmt.Sprintf(`listen: [{address: "127.0.0.1:0", shards: 2}]
admin: {address: "127.0.0.1:0"}
server: {read_timeout: 1s, max_header_bytes: 4KiB, max_body_bytes: 64KiB}
upstreams:
  app:
    backends: [{address: %s, max_inflight: 4}]
routes: [{upstream: app}]
`, backend)
}

// Requests the gateway must refuse itself, with the status docs/DESIGN.md
// ("Errors a client can get") names
// and a closed connection, without the backend ever seeing them.
func TestHostileRequestsRefused(t *testing.T) {
	be := NewRecorder(t, nil)
	g := StartGateway(t, hostileConfig(be.Addr()))
	big := strings.Repeat("a", 8000)
	for _, tc := range []struct {
		name, raw, status string
	}{
		// Regression: fasthttp took Transfer-Encoding and forwarded a request
		// that also carried Content-Length.
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"two Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "400"},
		{"unknown coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "400"},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n", "400"},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "400"},
		{"bare CR in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", "400"},
		{"not HTTP", "HELLO\r\n\r\n", "400"},
		{"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", "400"},
		{"header over max_header_bytes", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", "431"},
		{"body over max_body_bytes", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("b", 100000), "413"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := exchange(t, g.Addr, tc.raw)
			if !strings.HasPrefix(out, "HTTP/1.1 "+tc.status+" ") {
				t.Fatalf("response = %q, want status %s", firstLine(out), tc.status)
			}
			if strings.Contains(out, "<") || strings.Count(strings.SplitN(out, "\r\n\r\n", 2)[1], "\n") != 1 {
				t.Fatalf("body is not one line of plain text: %q", out)
			}
		})
	}
	if n := be.Count(); n != 0 {
		t.Fatalf("backend saw %d of the refused requests, want 0", n)
	}
}

// A client that trickles its header block is cut off at read_timeout and
// never reaches a backend.
func TestSlowClientTimedOut(t *testing.T) {
	be := NewRecorder(t, nil)
	g := StartGateway(t, hostileConfig(be.Addr()))
	c, err := net.Dial("tcp", g.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	out, _ := io.ReadAll(c)
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("slow client held its connection %v, want about read_timeout (1s)", took)
	}
	if len(out) > 0 && !strings.HasPrefix(string(out), "HTTP/1.1 408 ") {
		t.Fatalf("response = %q, want 408 or a closed connection", firstLine(string(out)))
	}
	if be.Count() != 0 {
		t.Fatal("backend saw the unfinished request")
	}
}

// Regression: an HTTP/1.0 request without Host made the backend request
// unwritable and the client got 502.
func TestHTTP10WithoutHost(t *testing.T) {
	be := NewRecorder(t, nil)
	g := StartGateway(t, hostileConfig(be.Addr()))
	out := exchange(t, g.Addr, "GET /z HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 ") && !strings.HasPrefix(out, "HTTP/1.0 200 ") {
		t.Fatalf("response = %q, want 200", firstLine(out))
	}
	if got := be.Last(); got.RequestURI != "/z" || got.Host == "" {
		t.Fatalf("backend got %q with Host %q, want /z with a Host", got.RequestURI, got.Host)
	}
}

// Pipelined requests are answered in order on one connection.
func TestPipelinedRequests(t *testing.T) {
	be := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	g := StartGateway(t, hostileConfig(be.Addr()))
	c, err := net.Dial("tcp", g.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"/a", "/b", "/c"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading response for %s: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Fatalf("body = %q, want %q", body, want)
		}
	}
}

// brokenBackend answers every request with the raw bytes of respond, then
// closes the connection (or, with reset, resets it).
func brokenBackend(t *testing.T, respond string, reset bool) string {
	return rawBackend(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, respond)
		if reset {
			c.(*net.TCPConn).SetLinger(0)
		}
	})
}

// rawBackend serves each connection with serve, on its own goroutine, and
// closes it after; it returns the address. It stops at cleanup.
func rawBackend(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// Backends that misbehave get 502 (or, for a close-delimited body, a whole
// response), never a hang, and never bytes of one response in another.
func TestBrokenBackends(t *testing.T) {
	for _, tc := range []struct {
		name, respond string
		reset         bool
		status        string
		body          string
	}{
		{"not HTTP", "HELLO WORLD\r\n\r\n", false, "502", "bad response from backend\n"},
		{"reset before answering", "", true, "502", "backend closed the connection\n"},
		{"closed before answering", "", false, "502", "backend closed the connection\n"},
		{"closed mid-body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", false, "502", "backend closed the connection\n"},
		{"two Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", false, "502", "bad response from backend\n"},
		{"header block over the buffer", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 40000) + "\r\nContent-Length: 2\r\n\r\nok", false, "502", "bad response from backend\n"},
		{"close-delimited body", "HTTP/1.1 200 OK\r\n\r\nuntil-close", false, "200", "until-close"},
		{"interim 100 first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, "200", "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := StartGateway(t, hostileConfig(brokenBackend(t, tc.respond, tc.reset)))
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

// Regression: fasthttp's client rewrote Host from the parsed URI, which
// lowercases it; the backend must see the client's Host as sent.
func TestHostForwardedUnchanged(t *testing.T) {
	be := NewRecorder(t, nil)
	g := StartGateway(t, hostileConfig(be.Addr()))
	out := exchange(t, g.Addr, "GET /h HTTP/1.1\r\nHost: Example.COM:8080\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 ") {
		t.Fatalf("response = %q, want 200", firstLine(out))
	}
	if got := be.Last().Host; got != "Example.COM:8080" {
		t.Fatalf("backend Host = %q, want %q", got, "Example.COM:8080")
	}
}
