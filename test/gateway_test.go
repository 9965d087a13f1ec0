package test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// appConfig returns a config with one 2-shard listener, an admin listener
// and one upstream "app" over backends that every request is routed to.
// server and upstream are extra YAML flow-map entries for those sections.
func appConfig(server, upstream string, backends ...string) string {
	var b strings.Builder
	b.WriteString("listen:\n  - address: \"127.0.0.1:0\"\n    shards: 2\n")
	b.WriteString("admin:\n  address: \"127.0.0.1:0\"\n")
	if server != "" {
		fmt.Fprintf(&b, "server: {%s}\n", server)
	}
	var addrs []string
	for _, a := range backends {
		addrs = append(addrs, fmt.Sprintf("{address: %q}", a))
	}
	if upstream != "" {
		upstream += ", "
	}
	fmt.Fprintf(&b, "upstreams:\n  app: {%sbackends: [%s]}\n", upstream, strings.Join(addrs, ", "))
	b.WriteString("routes:\n  - {host: \"*\", path_prefix: /, upstream: app}\n")
	return b.String()
}

// newClient returns an HTTP client that keeps bodies byte-exact (no
// transparent gzip) and gives up after 15s.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// do sends one request with the given Host and returns status, headers and body.
func do(t *testing.T, c *http.Client, method, url, host string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %q): %v", method, url, host, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body of %s %s: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, got
}

// checkOneLine fails the test unless body is one short line of text.
func checkOneLine(t *testing.T, body []byte) {
	t.Helper()
	line := strings.TrimSuffix(string(body), "\n")
	if line == "" || len(line) > 200 || strings.ContainsAny(line, "\r\n") {
		t.Errorf("body = %q, want one short line of text", body)
	}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("rand: %v", err)
	}
	return b
}

// named answers every request with its name.
func named(t *testing.T, name string) *Recorder {
	return NewRecorder(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })
}

func TestRoutingHostAndPath(t *testing.T) {
	exact, wild, api, root := named(t, "exact"), named(t, "wild"), named(t, "api"), named(t, "root")
	// Routes are listed least specific first: specificity, not order, decides.
	config := fmt.Sprintf(`listen: [{address: "127.0.0.1:0", shards: 2}]
admin: {address: "127.0.0.1:0"}
upstreams:
  exact: {backends: [{address: %q}]}
  wild: {backends: [{address: %q}]}
  api: {backends: [{address: %q}]}
  root: {backends: [{address: %q}]}
routes:
  - {host: "*", path_prefix: /, upstream: root}
  - {host: "*", path_prefix: /api, upstream: api}
  - {host: "*.example.com", path_prefix: /, upstream: wild}
  - {host: "exact.example.com", path_prefix: /, upstream: exact}
`, exact.Addr(), wild.Addr(), api.Addr(), root.Addr())
	g := StartGateway(t, config)
	tests := []struct {
		name, host, path, want string
	}{
		{"exact host", "exact.example.com", "/x", "exact"},
		{"exact host with port", "exact.example.com:8080", "/x", "exact"},
		{"exact host any case", "EXACT.Example.COM", "/x", "exact"},
		{"exact host wins over path of catch-all", "exact.example.com", "/api/v1", "exact"},
		{"wildcard host", "www.example.com", "/x", "wild"},
		{"wildcard does not match bare domain", "example.com", "/x", "root"},
		{"catch-all host longest prefix", "other.org", "/api/v1", "api"},
		{"catch-all host prefix equal to path", "other.org", "/api", "api"},
		{"catch-all host root", "other.org", "/", "root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := Curl(t, "--max-time", "10", "-H", "Host: "+tt.host, g.URL+tt.path)
			if code != 0 {
				t.Fatalf("curl exit %d: %s", code, errOut)
			}
			if out != tt.want {
				t.Errorf("Host %q path %q answered by %q, want %q", tt.host, tt.path, out, tt.want)
			}
		})
	}
}

func TestRoutingNoRoute(t *testing.T) {
	only := named(t, "only")
	config := fmt.Sprintf(`listen: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app: {backends: [{address: %q}]}
routes:
  - {host: "only.example.com", path_prefix: /, upstream: app}
`, only.Addr())
	g := StartGateway(t, config, "-log-format", "json")
	c := newClient(t)

	status, _, body := do(t, c, "GET", g.URL+"/x", "", nil)
	if status != http.StatusNotFound {
		t.Errorf("GET with Host %s = %d %q, want 404", g.Addr, status, body)
	}
	checkOneLine(t, body)
	if only.Count() != 0 {
		t.Errorf("backend got %d requests for an unrouted host, want 0", only.Count())
	}
	conn, br := DialRaw(t, g.Addr)
	resp, body := RawRoundTrip(t, conn, br, "GET", "GET /<script>x</script> HTTP/1.1\r\nHost: evil.test\r\n\r\n")
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /<script> = %d, want 404 or 400", resp.StatusCode)
	}
	if bytes.Contains(body, []byte("<script")) {
		t.Errorf("error body = %q echoes the request unescaped", body)
	}
	status, _, body = do(t, c, "GET", g.URL+"/x", "only.example.com", nil)
	if status != http.StatusOK || string(body) != "only" {
		t.Errorf("GET with Host only.example.com = %d %q, want 200 \"only\"", status, body)
	}
}

// forwardedHeaders sends a hand-written request through a gateway in front
// of a RawBackend and returns the header fields the backend received.
func forwardedHeaders(t *testing.T, g *Gateway, b *RawBackend, request string) []HeaderField {
	t.Helper()
	before := len(b.Heads())
	conn, br := DialRaw(t, g.Addr)
	resp, body := RawRoundTrip(t, conn, br, "GET", request)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d %q, want 200", resp.StatusCode, body)
	}
	heads := b.Heads()
	if len(heads) != before+1 {
		t.Fatalf("backend received %d requests, want 1", len(heads)-before)
	}
	_, fields := ParseHead(heads[len(heads)-1])
	return fields
}

// wantOne fails unless fields has exactly one field name with value want.
func wantOne(t *testing.T, fields []HeaderField, name, want string) {
	t.Helper()
	got := HeaderValues(fields, name)
	if len(got) != 1 || got[0] != want {
		t.Errorf("backend got %s = %q, want [%q]", name, got, want)
	}
}

func TestHeadersForwardedFor(t *testing.T) {
	b := NewRawBackend(t, "")
	untrusted := StartGateway(t, appConfig("", "", b.Addr()))
	trusted := StartGateway(t, appConfig(`trusted_proxies: ["127.0.0.1/32"]`, "", b.Addr()))
	tests := []struct {
		name    string
		g       *Gateway
		xff     string // client's X-Forwarded-For line, "" for none
		wantXFF string
	}{
		{"forged, peer not trusted", untrusted, "X-Forwarded-For: 1.2.3.4\r\n", "127.0.0.1"},
		{"absent, peer not trusted", untrusted, "", "127.0.0.1"},
		{"appended, peer trusted", trusted, "X-Forwarded-For: 1.2.3.4\r\n", "1.2.3.4, 127.0.0.1"},
		{"absent, peer trusted", trusted, "", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := forwardedHeaders(t, tt.g, b, "GET /p?q=1 HTTP/1.1\r\nHost: app.example.com:8080\r\n"+
				tt.xff+"User-Agent: e2e\r\n\r\n")
			wantOne(t, fields, "X-Forwarded-For", tt.wantXFF)
			wantOne(t, fields, "X-Forwarded-Proto", "http")
			wantOne(t, fields, "X-Forwarded-Host", "app.example.com:8080")
			wantOne(t, fields, "Host", "app.example.com:8080")
			wantOne(t, fields, "User-Agent", "e2e")
		})
	}
}

func TestHeadersHopByHopRemoved(t *testing.T) {
	b := NewRawBackend(t, "")
	g := StartGateway(t, appConfig("", "", b.Addr()))
	fields := forwardedHeaders(t, g, b, "GET /hop HTTP/1.1\r\nHost: app.test\r\n"+
		"Connection: close, X-Secret\r\n"+
		"X-Secret: s3cret\r\n"+
		"Keep-Alive: timeout=100\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"TE: trailers\r\n"+
		"Trailer: X-Checksum\r\n"+
		"Upgrade: foo/1\r\n"+
		"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"+
		"X_Forwarded_For: evil\r\n"+
		"SCRIPT_NAME: /x\r\n"+
		"X-Visible: yes\r\n\r\n")
	for _, name := range []string{"Connection", "X-Secret", "Keep-Alive", "Proxy-Connection", "TE",
		"Trailer", "Upgrade", "Proxy-Authorization"} {
		if got := HeaderValues(fields, name); len(got) != 0 {
			t.Errorf("backend got hop-by-hop %s = %q, want none", name, got)
		}
	}
	for _, f := range fields {
		if strings.Contains(f.Name, "_") {
			t.Errorf("backend got %s: %q, want no header name with \"_\"", f.Name, f.Value)
		}
	}
	wantOne(t, fields, "X-Forwarded-For", "127.0.0.1")
	wantOne(t, fields, "X-Visible", "yes")
}

func TestHeadersConnectionCannotRemoveForwarded(t *testing.T) {
	b := NewRawBackend(t, "")
	g := StartGateway(t, appConfig("", "", b.Addr()))
	fields := forwardedHeaders(t, g, b, "GET / HTTP/1.1\r\nHost: app.test\r\n"+
		"Connection: X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host\r\n"+
		"X-Forwarded-For: 1.2.3.4\r\n\r\n")
	wantOne(t, fields, "X-Forwarded-For", "127.0.0.1")
	wantOne(t, fields, "X-Forwarded-Proto", "http")
	wantOne(t, fields, "X-Forwarded-Host", "app.test")
}

func TestHeadersResponseHopByHopRemoved(t *testing.T) {
	b := NewRawBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Connection: X-Backend-Private\r\n"+
		"X-Backend-Private: secret\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"X-Kept: yes\r\n\r\nok")
	g := StartGateway(t, appConfig("", "", b.Addr()))
	out, errOut, code := Curl(t, "--max-time", "10", "-D", "-", "-o", os.DevNull, g.URL+"/")
	if code != 0 {
		t.Fatalf("curl exit %d: %s", code, errOut)
	}
	first, fields := ParseHead(strings.TrimRight(out, "\r\n"))
	if !strings.Contains(first, " 200") {
		t.Fatalf("status line = %q, want 200", first)
	}
	for _, name := range []string{"Keep-Alive", "X-Backend-Private", "Proxy-Connection"} {
		if got := HeaderValues(fields, name); len(got) != 0 {
			t.Errorf("client got hop-by-hop %s = %q, want none", name, got)
		}
	}
	for _, v := range HeaderValues(fields, "Connection") {
		if !strings.EqualFold(v, "close") && !strings.EqualFold(v, "keep-alive") {
			t.Errorf("client got Connection = %q, want none of the backend's tokens", v)
		}
	}
	if got := HeaderValues(fields, "X-Kept"); len(got) != 1 || got[0] != "yes" {
		t.Errorf("client got X-Kept = %q, want [\"yes\"]", got)
	}
}

// echo answers with the request body and an explicit Content-Length.
func echo(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func TestBodiesByteExact(t *testing.T) {
	rec := NewRecorder(t, echo)
	g := StartGateway(t, appConfig("", "", rec.Addr()))
	c := newClient(t)
	for _, size := range []int{0, 1 << 20} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			sent := randomBytes(t, size)
			status, _, got := do(t, c, "POST", g.URL+"/echo", "", sent)
			if status != http.StatusOK {
				t.Fatalf("POST = %d, want 200", status)
			}
			if last := rec.Last().Body; sum(last) != sum(sent) {
				t.Errorf("backend got %d bytes sha %s, want %d bytes sha %s", len(last), sum(last), size, sum(sent))
			}
			if sum(got) != sum(sent) {
				t.Errorf("client got %d bytes sha %s, want %d bytes sha %s", len(got), sum(got), size, sum(sent))
			}
		})
	}
}

func TestBodiesChunkedRequest(t *testing.T) {
	rec := NewRecorder(t, echo)
	g := StartGateway(t, appConfig("", "", rec.Addr()))
	sent := randomBytes(t, 1<<20+123)
	file := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(file, sent, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := Curl(t, "--max-time", "20", "-H", "Transfer-Encoding: chunked",
		"--data-binary", "@"+file, g.URL+"/upload")
	if code != 0 {
		t.Fatalf("curl exit %d: %s", code, errOut)
	}
	if last := rec.Last().Body; sum(last) != sum(sent) {
		t.Errorf("backend got %d bytes sha %s, want %d bytes sha %s", len(last), sum(last), len(sent), sum(sent))
	}
	if sum([]byte(out)) != sum(sent) {
		t.Errorf("client got %d bytes sha %s, want %d bytes sha %s", len(out), sum([]byte(out)), len(sent), sum(sent))
	}
}

func TestBodiesChunkedResponse(t *testing.T) {
	payload := randomBytes(t, 1<<20)
	rec := NewRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		for rest := payload; len(rest) > 0; rest = rest[min(len(rest), 64<<10):] {
			w.Write(rest[:min(len(rest), 64<<10)])
			w.(http.Flusher).Flush() // no Content-Length: net/http chunks
		}
	})
	g := StartGateway(t, appConfig("", "", rec.Addr()))
	status, _, got := do(t, newClient(t), "GET", g.URL+"/stream", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET = %d, want 200", status)
	}
	if sum(got) != sum(payload) {
		t.Errorf("client got %d bytes sha %s, want %d bytes sha %s", len(got), sum(got), len(payload), sum(payload))
	}
}

// TestBodiesWithoutBody sends HEAD, then requests answered 204 and 304 on
// one connection: a stray body byte would corrupt the response after it.
func TestBodiesWithoutBody(t *testing.T) {
	rec := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/head":
			w.Header().Set("Content-Length", "12345")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		default:
			io.WriteString(w, "after")
		}
	})
	g := StartGateway(t, appConfig("", "", rec.Addr()))
	conn, br := DialRaw(t, g.Addr)
	tests := []struct {
		name, method, request string
		wantStatus            int
		wantHeader, wantValue string
	}{
		{"HEAD", "HEAD", "HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n", 200, "Content-Length", "12345"},
		{"204", "GET", "GET /204 HTTP/1.1\r\nHost: t\r\n\r\n", 204, "", ""},
		{"304", "GET", "GET /304 HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"v1\"\r\n\r\n", 304, "ETag", `"v1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := RawRoundTrip(t, conn, br, tt.method, tt.request)
			if resp.StatusCode != tt.wantStatus || len(body) != 0 {
				t.Errorf("%s = %d with %d body bytes, want %d and none", tt.name, resp.StatusCode, len(body), tt.wantStatus)
			}
			if tt.wantHeader != "" && resp.Header.Get(tt.wantHeader) != tt.wantValue {
				t.Errorf("%s %s = %q, want %q", tt.name, tt.wantHeader, resp.Header.Get(tt.wantHeader), tt.wantValue)
			}
			resp, body = RawRoundTrip(t, conn, br, "GET", "GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
			if resp.StatusCode != 200 || string(body) != "after" {
				t.Errorf("next request on the connection = %d %q, want 200 \"after\"", resp.StatusCode, body)
			}
		})
	}
}

func TestErrorsDeadBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	g := StartGateway(t, appConfig("", "connect_timeout: 1s", dead))
	status, _, body := do(t, newClient(t), "GET", g.URL+"/", "", nil)
	if status != http.StatusBadGateway {
		t.Errorf("GET with a dead backend = %d %q, want 502", status, body)
	}
	checkOneLine(t, body)
}

func TestErrorsSlowBackend(t *testing.T) {
	release := make(chan struct{})
	rec := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
		io.WriteString(w, "late")
	})
	t.Cleanup(func() { close(release) }) // runs before the recorder closes
	g := StartGateway(t, appConfig("", "response_timeout: 200ms", rec.Addr()))
	start := time.Now()
	out, errOut, code := Curl(t, "--max-time", "10", "-w", "\n%{http_code}", g.URL+"/slow")
	elapsed := time.Since(start)
	if code != 0 {
		t.Fatalf("curl exit %d: %s", code, errOut)
	}
	i := strings.LastIndex(out, "\n") // -w appends "\n" and the status
	body, status := out[:i], out[i+1:]
	if status != "504" {
		t.Errorf("GET with a slow backend = %s %q, want 504", status, body)
	}
	checkOneLine(t, []byte(body))
	if elapsed > 1500*time.Millisecond {
		t.Errorf("504 came after %v, want soon after the 200ms response_timeout", elapsed)
	}
}

func TestGatewayKeepAlive(t *testing.T) {
	rec := NewRecorder(t, nil)
	g := StartGateway(t, appConfig("", "", rec.Addr()))

	t.Run("several requests on one connection", func(t *testing.T) {
		conn, br := DialRaw(t, g.Addr)
		for i := range 5 {
			resp, body := RawRoundTrip(t, conn, br, "GET", fmt.Sprintf("GET /%d HTTP/1.1\r\nHost: t\r\n\r\n", i))
			if resp.StatusCode != 200 || string(body) != "ok" || resp.Close {
				t.Fatalf("request %d = %d %q (close %v), want 200 \"ok\" on an open connection",
					i, resp.StatusCode, body, resp.Close)
			}
		}
	})
	t.Run("Connection close", func(t *testing.T) {
		conn, br := DialRaw(t, g.Addr)
		resp, body := RawRoundTrip(t, conn, br, "GET", "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("status = %d %q, want 200 \"ok\"", resp.StatusCode, body)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := br.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read after Connection: close = %d bytes, %v; want EOF", n, err)
		}
	})
}

func TestSignalTermFinishesInflight(t *testing.T) {
	payload := randomBytes(t, 256<<10)
	arrived, release := make(chan struct{}), make(chan struct{})
	var arrivedOnce, releaseOnce sync.Once
	rec := NewRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		arrivedOnce.Do(func() { close(arrived) })
		<-release
		w.Write(payload)
	})
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	g := StartGateway(t, appConfig("shutdown_timeout: 10s", "", rec.Addr()))

	type result struct {
		status int
		body   []byte
		err    error
	}
	done, client := make(chan result, 1), newClient(t)
	go func() {
		resp, err := client.Get(g.URL + "/inflight")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, body, err}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("request did not reach the backend within 10s")
	}
	g.Signal(t, syscall.SIGTERM)
	waitNotReady(t, g)
	releaseOnce.Do(func() { close(release) })

	res := <-done
	if res.err != nil || res.status != 200 || sum(res.body) != sum(payload) {
		t.Errorf("in-flight request = %d, %d bytes sha %s, err %v; want 200 with %d bytes sha %s",
			res.status, len(res.body), sum(res.body), res.err, len(payload), sum(payload))
	}
	code, err := g.Wait(15 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("exit code = %d, %v; want 0", code, err)
	}
	if conn, err := net.DialTimeout("tcp", g.Addr, 2*time.Second); err == nil {
		conn.Close()
		t.Errorf("dial %s after exit succeeded, want connection refused", g.Addr)
	}
	if rec.Count() != 1 {
		t.Errorf("backend got %d requests, want 1", rec.Count())
	}
}

// waitNotReady polls /readyz until it stops answering 200 (503, or the admin
// listener is gone) so the backend answers only once shutdown has begun.
func waitNotReady(t *testing.T, g *Gateway) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get(g.AdminURL + "/readyz")
		if err != nil {
			return
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("/readyz still not 503 5s after SIGTERM")
}

func TestCheckConfig(t *testing.T) {
	const valid = `listen:
  - address: "127.0.0.1:0"
upstreams:
  app:
    backends:
      - address: 127.0.0.1:8001
        max_inflight: 4
      - address: 127.0.0.1:8002
        max_inflight: 1
routes:
  - host: "*"
    path_prefix: /
    upstream: app
`
	tests := []struct {
		name     string
		config   string
		wantCode int
		wantOut  []string
	}{
		{"valid", valid, 0, nil},
		{"negative limit", strings.Replace(valid, "max_inflight: 1", "max_inflight: -1", 1), 1,
			[]string{"upstreams.app.backends[1].max_inflight", "(line 9)"}},
		{"unknown key", strings.Replace(valid, "    backends:", "    bogus: 1\n    backends:", 1), 1,
			[]string{"bogus", "(line 5)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "shardgate.yaml")
			if err := os.WriteFile(path, []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := runBinary(t, "-check", "-config", path)
			if code != tt.wantCode {
				t.Errorf("shardgate -check exit code = %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			if tt.wantCode != 0 {
				tt.wantOut = append(tt.wantOut, path) // names the file, like nginx -t
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("shardgate -check output = %q, want it to contain %q", out, want)
				}
			}
		})
	}
}

func TestCheckVersion(t *testing.T) {
	out, code := runBinary(t, "-version")
	if code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("shardgate -version = exit %d, output %q; want exit 0 and a version", code, out)
	}
}

// runBinary runs shardgate with args to completion (30s at most) and returns
// its combined output and exit code.
func runBinary(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting shardgate: %v", err)
	}
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("running shardgate %v: %v", args, err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}
