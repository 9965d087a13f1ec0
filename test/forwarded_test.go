package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shardgate/internal/wait"
)

// startDjango starts gunicorn with app/django/secureapp.py (SECURE_SSL_REDIRECT
// behind SECURE_PROXY_SSL_HEADER) and waits until it answers.
func startDjango(t *testing.T) *gunicornApp {
	t.Helper()
	python := "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import django, gunicorn").CombinedOutput(); err != nil {
		t.Fatalf("Django and gunicorn are required (apt-get install python3-django gunicorn): %v: %s", err, out)
	}
	appDir, err := filepath.Abs("app/django")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := &gunicornApp{Addr: closedAddr(t), logPath: filepath.Join(dir, "gunicorn.log"), exited: make(chan struct{})}
	a.URL = "http://" + a.Addr
	logFile, err := os.Create(a.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	a.cmd = exec.Command(python, "-m", "gunicorn", "-w", "2", "-k", "sync", "--chdir", appDir,
		"-b", a.Addr, "--graceful-timeout", "3", "secureapp:application")
	a.cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	a.cmd.Stdout, a.cmd.Stderr = logFile, logFile
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("starting gunicorn: %v", err)
	}
	go func() {
		_ = a.cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(func() { a.stop(t) })
	client := &http.Client{Timeout: time.Second, CheckRedirect: noRedirect}
	wait.For(t, "Django to answer", func() bool {
		resp, err := client.Get(a.URL + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return a
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// clientFrom returns an HTTP client whose connections come from the local
// address src (another loopback IP plays another host) and that does not
// follow redirects.
func clientFrom(t *testing.T, src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: noRedirect}
}

// getWith GETs url with extra headers and returns the status, Location and
// body.
func getWith(t *testing.T, c *http.Client, url string, headers ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "Host") {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), strings.TrimSpace(string(body))
}

// TestDjangoBehindTrustedTerminator: a TLS load balancer at 127.0.0.2 (in
// trusted_proxies) sends X-Forwarded-Proto: https and X-Forwarded-Host;
// Django sees a secure request and does not redirect (before the fix it
// redirected to itself forever). The same headers from 127.0.0.1 (not
// trusted) are replaced, and Django redirects that plain request to https.
// Over shardgate's own TLS listener Django sees https without any proxy.
func TestDjangoBehindTrustedTerminator(t *testing.T) {
	app := startDjango(t)
	s := newTLSSetup(t)
	cfg := s.config(app.Addr, "", `  - {address: "127.0.0.1:0"}`, `server: {trusted_proxies: [127.0.0.2]}`)
	cfg = strings.Replace(cfg, "server: {read_timeout: 2s}\n", "", 1)
	g := StartGateway(t, cfg)
	addrs := listenAddrs(t, g)
	plainURL := "http://" + addrs[1] + "/whoami"

	code, loc, body := getWith(t, clientFrom(t, "127.0.0.2"), plainURL,
		"Host", "shop.example", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "www.shop.example")
	if code != 200 || body != "secure=True host=www.shop.example" {
		t.Errorf("trusted terminator: Django answered %d (Location %q) %q, want 200 secure=True host=www.shop.example", code, loc, body)
	}

	code, loc, _ = getWith(t, clientFrom(t, "127.0.0.1"), plainURL,
		"Host", "shop.example", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example")
	if code != 301 || loc != "https://shop.example/whoami" {
		t.Errorf("untrusted client: Django answered %d Location %q, want 301 to https://shop.example/whoami "+
			"(its X-Forwarded-Proto and -Host replaced)", code, loc)
	}

	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.ca.pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addrs[0])
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	tlsClient := &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: noRedirect}
	code, loc, body = getWith(t, tlsClient, "https://a.test/whoami", "X-Forwarded-Proto", "http")
	if code != 200 || body != "secure=True host=a.test" {
		t.Errorf("over shardgate's TLS: Django answered %d (Location %q) %q, want 200 secure=True host=a.test", code, loc, body)
	}
}

// TestProxyProtocol: on a listener with proxy_protocol, the backend sees the
// client address a v1 or v2 header carried (X-Forwarded-For and the access
// log's client), LOCAL keeps the socket's address, and a connection
// without a header, or with a broken one, is closed without an answer.
func TestProxyProtocol(t *testing.T) {
	backend := NewRecorder(t, nil)
	g := StartGateway(t, fmt.Sprintf(`
listen: [{address: "127.0.0.1:0", shards: 2, proxy_protocol: true}]
admin: {address: "127.0.0.1:0"}
server: {read_timeout: 1s}
upstreams:
  app: {backends: [{address: %q}]}
routes: [{host: "*", path_prefix: /, upstream: app}]
`, backend.Addr()))

	v2 := func(cmd, fam byte, addr []byte) string {
		h := []byte("\r\n\r\n\x00\r\nQUIT\n")
		h = append(h, 0x20|cmd, fam, byte(len(addr)>>8), byte(len(addr)))
		return string(append(h, addr...))
	}
	v4addr := []byte{203, 0, 113, 9, 127, 0, 0, 1, 0x30, 0x39, 0x1f, 0x90}
	v6addr := append(append(net.ParseIP("2001:db8::77").To16(), net.ParseIP("::1").To16()...), 0x30, 0x39, 0x1f, 0x90)
	v6addr = append(v6addr, 0x04, 0x00, 0x01, 'x') // a TLV (NOOP), skipped
	for _, tt := range []struct {
		name, header, wantXFF string
	}{
		{"v1 TCP4", "PROXY TCP4 198.51.100.7 127.0.0.1 51000 80\r\n", "198.51.100.7"},
		{"v1 TCP6", "PROXY TCP6 2001:db8::1 ::1 51000 80\r\n", "2001:db8::1"},
		{"v1 UNKNOWN", "PROXY UNKNOWN\r\n", "127.0.0.1"},
		{"v2 TCP4", v2(1, 0x11, v4addr), "203.0.113.9"},
		{"v2 TCP6 with TLV", v2(1, 0x21, v6addr), "2001:db8::77"},
		{"v2 LOCAL", v2(0, 0x00, nil), "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, br := DialRaw(t, g.Addr)
			// Header and request in one write, as a balancer sends them.
			fmt.Fprintf(conn, "%sGET /pp HTTP/1.1\r\nHost: h.test\r\n\r\n", tt.header)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading response: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if got := backend.Last().Header.Get("X-Forwarded-For"); got != tt.wantXFF {
				t.Errorf("backend saw X-Forwarded-For %q, want %q", got, tt.wantXFF)
			}
		})
	}
	for _, tt := range []struct{ name, send string }{
		{"no header", "GET /nohdr HTTP/1.1\r\nHost: h.test\r\n\r\n"},
		{"bad v1", "PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\nGET /bad HTTP/1.1\r\nHost: h.test\r\n\r\n"},
		{"silent", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := backend.Count()
			conn, _ := DialRaw(t, g.Addr)
			fmt.Fprint(conn, tt.send)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := io.Copy(io.Discard, bufio.NewReader(conn))
			if err != nil || n != 0 {
				t.Errorf("connection answered %d bytes (err %v), want closed without an answer", n, err)
			}
			if backend.Count() != before {
				t.Error("the request reached the backend")
			}
		})
	}
}

// TestProxyProtocolThenTLS: with proxy_protocol and tls on one listener the
// PROXY header comes first, then the handshake; the backend sees the
// header's client address and https.
func TestProxyProtocolThenTLS(t *testing.T) {
	backend := NewRecorder(t, nil)
	s := newTLSSetup(t)
	cfg := strings.Replace(s.config(backend.Addr(), "", "", ""), "    shards: 2\n", "    shards: 2\n    proxy_protocol: true\n", 1)
	g := StartGateway(t, cfg)
	raw, err := net.DialTimeout("tcp", g.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fmt.Fprint(raw, "PROXY TCP4 198.51.100.20 127.0.0.1 40000 443\r\n")
	c := tls.Client(raw, &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test"})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET /pt HTTP/1.1\r\nHost: a.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("request over PROXY + TLS: %v", err)
	}
	resp.Body.Close()
	last := backend.Last()
	if resp.StatusCode != 200 || last.Header.Get("X-Forwarded-For") != "198.51.100.20" ||
		last.Header.Get("X-Forwarded-Proto") != "https" || last.Header.Get("X-Forwarded-Port") != "443" {
		t.Errorf("status %d; backend saw X-Forwarded-For %q, -Proto %q, -Port %q; want 198.51.100.20, https, 443",
			resp.StatusCode, last.Header.Get("X-Forwarded-For"), last.Header.Get("X-Forwarded-Proto"), last.Header.Get("X-Forwarded-Port"))
	}
}
