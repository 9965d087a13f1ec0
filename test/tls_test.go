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
	"strings"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/wait"
)

// tlsSetup is a TLS listener with certificates for a.test and *.b.test
// (a.test first, so it is the default), in front of one backend.
type tlsSetup struct {
	ca                *testCA
	dir               string
	aCert, aKey       string
	wildCert, wildKey string
	aSerial, wSerial  int64
}

func newTLSSetup(t *testing.T) *tlsSetup {
	s := &tlsSetup{ca: newTestCA(t), dir: t.TempDir()}
	s.aCert, s.aKey, s.aSerial = s.ca.issue(t, s.dir, "a.test")
	s.wildCert, s.wildKey, s.wSerial = s.ca.issue(t, s.dir, "*.b.test")
	return s
}

// config returns a config with a TLS listener (listen[0]) with extraTLS in
// its tls mapping, then extraListen entries, before upstream "app" over
// backend with limit 1.
func (s *tlsSetup) config(backend, extraTLS, extraListen, extra string) string {
	return fmt.Sprintf(`
listen:
  - address: "127.0.0.1:0"
    shards: 2
    tls:
      certificates:
        - {cert: %q, key: %q}
        - {cert: %q, key: %q}
      %s
%s
admin: {address: "127.0.0.1:0"}
server: {read_timeout: 2s}
%s
upstreams:
  app:
    queue: {max_length: 10, timeout: 10s, lifo_after: 0}
    backends: [{address: %q, max_inflight: 1}]
routes:
  - {host: "*", path_prefix: /, upstream: app}
`, s.aCert, s.aKey, s.wildCert, s.wildKey, extraTLS, extraListen, extra, backend)
}

// client returns an HTTPS client that trusts the test CA and dials addr
// whatever the URL's host.
func (s *tlsSetup) client(t *testing.T, addr string) *http.Client {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.ca.pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestTLSSNIVersionsAndForwardedProto: SNI picks the certificate (exact,
// wildcard, default), ALPN says http/1.1, TLS 1.0 and 1.1 are refused and
// counted, plain HTTP on the TLS port is counted, and the backend is told
// the request came over https.
func TestTLSSNIVersionsAndForwardedProto(t *testing.T) {
	backend := NewRecorder(t, nil)
	s := newTLSSetup(t)
	g := StartGateway(t, s.config(backend.Addr(), "", "", ""))

	for _, tt := range []struct {
		sni  string
		want int64
	}{{"a.test", s.aSerial}, {"x.b.test", s.wSerial}, {"X.B.TEST", s.wSerial}, {"deep.x.b.test", s.aSerial}, {"other.test", s.aSerial}, {"", s.aSerial}} {
		if got := servedSerial(t, g.Addr, tt.sni); got != tt.want {
			t.Errorf("SNI %q: served certificate serial %d, want %d", tt.sni, got, tt.want)
		}
	}

	// A verifying client, over a kept-alive connection.
	c, err := tlsDial(g.Addr, "x.b.test", &tls.Config{RootCAs: s.ca.pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatalf("verified handshake as x.b.test: %v", err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("ALPN = %q, want http/1.1", p)
	}
	br := bufio.NewReader(c)
	for i := range 2 {
		fmt.Fprintf(c, "GET /p%d HTTP/1.1\r\nHost: x.b.test\r\nX-Forwarded-Proto: http\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d over TLS: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d, want 200", i, resp.StatusCode)
		}
	}
	c.Close()
	last := backend.Last()
	if got := last.Header.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != "https" {
		t.Errorf("backend saw X-Forwarded-Proto %q, want [https] (the client's own replaced)", got)
	}
	_, port, _ := net.SplitHostPort(g.Addr)
	if got := last.Header.Get("X-Forwarded-Port"); got != port {
		t.Errorf("backend saw X-Forwarded-Port %q, want %q", got, port)
	}

	// curl with the CA, resolving a.test to the gateway.
	out, errOut, code := Curl(t, "--cacert", s.ca.path, "--resolve", "a.test:"+port+":127.0.0.1",
		"https://a.test:"+port+"/curl")
	if code != 0 || out != "ok" {
		t.Errorf("curl https://a.test: code %d, out %q, stderr %q", code, out, errOut)
	}
	// curl limited to TLS 1.1 fails (Debian's OpenSSL may refuse 1.1 itself
	// before sending anything, so only Go's client is counted below).
	if _, _, code := Curl(t, "--cacert", s.ca.path, "--resolve", "a.test:"+port+":127.0.0.1",
		"--tlsv1.0", "--tls-max", "1.1", "https://a.test:"+port+"/old"); code == 0 {
		t.Error("curl --tls-max 1.1 succeeded, want a failed handshake")
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := tlsDial(g.Addr, "a.test", &tls.Config{RootCAs: s.ca.pool, MinVersion: v, MaxVersion: v})
		if err == nil {
			t.Errorf("handshake with TLS version %x succeeded, want refused", v)
		}
	}
	// Plain HTTP sent to the TLS port.
	conn, err := net.Dial("tcp", g.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, conn)
	conn.Close()

	labels := map[string]string{"listener": "127.0.0.1:0"}
	wait.For(t, "handshake errors counted", func() bool {
		m := parseMetrics(t, g.Metrics(t))
		labels["reason"] = "protocol_version"
		v, _ := m.value("shardgate_tls_handshake_errors_total", labels)
		labels["reason"] = "not_tls"
		w, _ := m.value("shardgate_tls_handshake_errors_total", labels)
		return v >= 2 && w == 1
	})
	if strings.Contains(g.Logs(), "handshake") {
		t.Errorf("handshake failures were logged, want them only counted; logs:\n%s", g.Logs())
	}
}

// TestTLSReloadOnSIGHUP: after the files are replaced and SIGHUP, new
// handshakes get the new certificate while a request in flight on an old
// connection completes; a mismatched pair is refused with its file named
// and the certificate before it keeps serving.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	backend := newObsBackend(t, holdPrefix, []byte("done"))
	s := newTLSSetup(t)
	g := StartGateway(t, s.config(backend.Addr(), "", "", ""))

	old, err := tlsDial(g.Addr, "a.test", &tls.Config{RootCAs: s.ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	fmt.Fprint(old, "GET /hold HTTP/1.1\r\nHost: a.test\r\n\r\n")
	backend.waitHeld(t, 1)

	// Replace a.test's files (same paths, new key, new serial).
	_, _, newSerial := s.ca.issue(t, s.dir, "a.test")
	g.Signal(t, syscall.SIGHUP)
	wait.For(t, "the new certificate served", func() bool { return servedSerial(t, g.Addr, "a.test") == newSerial })

	backend.Release()
	old.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(old), nil)
	if err != nil {
		t.Fatalf("the request on the old connection: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "done" {
		t.Errorf("old connection got %d %q, want 200 done", resp.StatusCode, body)
	}
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != s.aSerial {
		t.Errorf("old connection's certificate serial %d, want the original %d", got, s.aSerial)
	}

	// A key that does not match the certificate: refused, named, old kept.
	other := t.TempDir()
	_, otherKey, _ := s.ca.issue(t, other, "a.test")
	keyPEM, _ := os.ReadFile(otherKey)
	if err := os.WriteFile(s.aKey, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	g.Signal(t, syscall.SIGHUP)
	g.WaitForLog(t, "private key does not match public key", 10*time.Second)
	if !strings.Contains(g.Logs(), s.aKey) || !strings.Contains(g.Logs(), "listen[0].tls.certificates[0]") {
		t.Errorf("reload error does not name the key file and the config path; logs:\n%s", g.Logs())
	}
	if got := servedSerial(t, g.Addr, "a.test"); got != newSerial {
		t.Errorf("after a refused reload serial %d is served, want %d", got, newSerial)
	}

	// -check refuses the same files.
	out, err := exec.Command(binPath, "-check", "-config", g.ConfigPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "private key does not match") || !strings.Contains(string(out), "(line ") {
		t.Errorf("-check with a mismatched pair: err %v, output %q; want exit 1 naming the problem and line", err, out)
	}
}

// TestTLSClientGoneWhileQueued: a TLS client that closes (close_notify, then
// FIN) while its request waits in the queue is dropped and its request never
// reaches the backend, as over plain TCP.
func TestTLSClientGoneWhileQueued(t *testing.T) {
	backend := newObsBackend(t, holdPrefix, []byte("done"))
	s := newTLSSetup(t)
	g := StartGateway(t, s.config(backend.Addr(), "", "", ""))

	holder, err := tlsDial(g.Addr, "a.test", &tls.Config{RootCAs: s.ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	fmt.Fprint(holder, "GET /hold HTTP/1.1\r\nHost: a.test\r\n\r\n")
	backend.waitHeld(t, 1)

	quitter, err := tlsDial(g.Addr, "a.test", &tls.Config{RootCAs: s.ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(quitter, "GET /queued HTTP/1.1\r\nHost: a.test\r\n\r\n")
	waitStatus(t, g, "one request queued", queued("app", 1))
	quitter.Close() // sends close_notify, then FIN

	wait.For(t, "the queued request shed as client_gone", func() bool {
		v, _ := parseMetrics(t, g.Metrics(t)).value("shardgate_requests_shed_total",
			map[string]string{"upstream": "app", "reason": "client_gone"})
		return v == 1
	})
	backend.Release()
	holder.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(holder), nil); err != nil {
		t.Fatalf("held request: %v", err)
	}
	if n := backend.Count(); n != 1 {
		t.Errorf("backend received %d requests, want 1: the gone client's must not be sent", n)
	}
}

// TestRedirectHTTPSAndHSTS: a plain listener with redirect_https answers
// 308 to the TLS port with the same host and target; the TLS listener adds
// Strict-Transport-Security, in place of the backend's however spelled
// (regression: a lowercase one from the backend went out as a second
// header).
func TestRedirectHTTPSAndHSTS(t *testing.T) {
	backend := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["strict-transport-security"] = []string{"max-age=1"} // sent as spelled
	})
	s := newTLSSetup(t)
	cfg := s.config(backend.Addr(), "hsts: {max_age: 8760h, include_subdomains: true}",
		"  - {address: \"127.0.0.1:0\", redirect_https: true}", "")
	g := StartGateway(t, cfg)
	addrs := listenAddrs(t, g)
	_, tlsPort, _ := net.SplitHostPort(addrs[0])

	out, errOut, code := Curl(t, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
		"-H", "Host: shop.example:8080", "http://"+addrs[1]+"/cart?id=1&x=%2F")
	want := "308 https://shop.example:" + tlsPort + "/cart?id=1&x=%2F"
	if code != 0 || out != want {
		t.Errorf("redirect: curl code %d, got %q, want %q (stderr %q)", code, out, want, errOut)
	}
	if backend.Count() != 0 {
		t.Errorf("backend received %d requests from the redirecting listener, want 0", backend.Count())
	}
	resp, err := s.client(t, addrs[0]).Get("https://a.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Values("Strict-Transport-Security"); len(got) != 1 || got[0] != "max-age=31536000; includeSubDomains" {
		t.Errorf("Strict-Transport-Security = %q, want one: max-age=31536000; includeSubDomains", got)
	}
}

// TestTLSReloadNoSpuriousRestartWarning: a reload of a file whose TLS
// listener only moved down a line (a comment added above it) does not warn
// that listen settings need a restart.
func TestTLSReloadNoSpuriousRestartWarning(t *testing.T) {
	backend := NewRecorder(t, nil)
	s := newTLSSetup(t)
	cfg := s.config(backend.Addr(), "", "", "")
	g := StartGateway(t, cfg)
	// Served once first, like the other reload tests: the process installs
	// its SIGHUP handler just after logging ready (see the report).
	if servedSerial(t, g.Addr, "a.test") != s.aSerial {
		t.Fatal("wrong certificate")
	}
	g.Reload(t, "# a comment moves everything down\n"+cfg)
	g.WaitForLog(t, "reloaded", 10*time.Second)
	if strings.Contains(g.Logs(), "only after a restart") {
		t.Errorf("reload warned about a restart though nothing changed; logs:\n%s", g.Logs())
	}
}
