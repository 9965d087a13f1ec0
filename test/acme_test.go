package test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/wait"
)

// pebbleVersion is Let's Encrypt's test ACME server, built from its Go
// module by the test (go install through the module proxy).
const pebbleVersion = "v2.10.3"

// pebble is a running pebble with its own API certificate from ca.
type pebble struct {
	dir     string // ACME directory URL
	mgmt    string // management API, for the issuing root
	logPath string
}

func startPebble(t *testing.T, ca *testCA) *pebble {
	t.Helper()
	bin := t.TempDir()
	install := exec.Command("go", "install", "github.com/letsencrypt/pebble/v2/cmd/pebble@"+pebbleVersion)
	install.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("building pebble %s: %v\n%s", pebbleVersion, err, out)
	}
	dir := t.TempDir()
	cert, key, _ := ca.issue(t, dir, "localhost")
	listen, mgmt := closedAddr(t), closedAddr(t)
	cfg := fmt.Sprintf(`{"pebble": {"listenAddress": %q, "managementListenAddress": %q,
		"certificate": %q, "privateKey": %q, "httpPort": 5002, "tlsPort": 5001,
		"ocspResponderURL": "", "externalAccountBindingRequired": false, "keyAlgorithm": "ecdsa",
		"retryAfter": {"authz": 1, "order": 1},
		"profiles": {"default": {"description": "default", "validityPeriod": 7776000}}}}`,
		listen, mgmt, cert, key)
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &pebble{dir: "https://" + listen + "/dir", mgmt: "https://" + mgmt, logPath: filepath.Join(dir, "pebble.log")}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(bin, "pebble"), "-config", cfgPath)
	// Challenges cannot reach this machine's test names through public
	// DNS: pebble takes every one as passed. No random sleeps or bad
	// nonces, so the test is fast and deterministic.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("pebble log:\n%s", p.log())
		}
	})
	client := ca.httpClient()
	wait.For(t, "pebble to answer", func() bool {
		resp, err := client.Get(p.dir)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func (p *pebble) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// root returns pebble's issuing root, which it makes at start.
func (p *pebble) root(t *testing.T, ca *testCA) *x509.CertPool {
	t.Helper()
	resp, err := ca.httpClient().Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(body) {
		t.Fatalf("pebble root: %s", body)
	}
	return pool
}

func (ca *testCA) httpClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
}

// TestACMEWithPebble: a TLS listener with acme obtains a certificate for
// its domain from a real ACME server on the first handshake, serves it,
// keeps it in cache_dir, and after a restart serves the cached one
// without a new order. The plain listener answers HTTP-01 paths itself.
func TestACMEWithPebble(t *testing.T) {
	ca := newTestCA(t)
	p := startPebble(t, ca)
	t.Setenv("SSL_CERT_FILE", ca.path) // shardgate trusts pebble's API
	backend := NewRecorder(t, nil)
	cache := filepath.Join(t.TempDir(), "acme")
	cfg := fmt.Sprintf(`
listen:
  - address: "127.0.0.1:0"
    tls:
      acme: {domains: [acme.test], email: ops@acme.test, directory: %q, cache_dir: %q}
  - {address: "127.0.0.1:0", redirect_https: true}
admin: {address: "127.0.0.1:0"}
server: {read_timeout: 30s}
upstreams:
  app: {backends: [{address: %q}]}
routes: [{host: "*", path_prefix: /, upstream: app}]
`, p.dir, cache, backend.Addr())
	g := StartGateway(t, cfg)
	addrs := listenAddrs(t, g)
	roots := p.root(t, ca)

	c, err := tlsDial(addrs[0], "acme.test", &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake for acme.test (certificate from pebble): %v", err)
	}
	leaf := c.ConnectionState().PeerCertificates[0]
	fmt.Fprint(c, "GET /hello HTTP/1.1\r\nHost: acme.test\r\nConnection: close\r\n\r\n")
	resp, err := io.ReadAll(c)
	c.Close()
	if err != nil || !strings.HasPrefix(string(resp), "HTTP/1.1 200") {
		t.Errorf("request over the ACME certificate: %v %q", err, firstLine(string(resp)))
	}
	if _, err := os.Stat(filepath.Join(cache, "acme.test")); err != nil {
		t.Errorf("certificate not cached in cache_dir: %v", err)
	}
	if n := strings.Count(p.log(), "Issued certificate"); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
	// A name outside domains gets no certificate.
	if _, err := tlsDial(addrs[0], "other.test", &tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Error("handshake for a name outside acme.domains succeeded")
	}
	// HTTP-01 paths on the plain listener go to the ACME handler (an
	// unknown token is its 404), not to the redirect or the backend.
	code, loc, _ := getWith(t, clientFrom(t, "127.0.0.1"), "http://"+addrs[1]+"/.well-known/acme-challenge/nope", "Host", "acme.test")
	if code != 404 || loc != "" {
		t.Errorf("unknown HTTP-01 token: %d (Location %q), want 404 from the ACME handler", code, loc)
	}

	// Restart: the cached certificate is served, no new order.
	g.Signal(t, syscall.SIGTERM)
	if _, err := g.Wait(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	g2 := StartGateway(t, cfg)
	c2, err := tlsDial(listenAddrs(t, g2)[0], "acme.test", &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake after restart: %v", err)
	}
	defer c2.Close()
	if got := c2.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("after restart serial %v, want the cached %v", got, leaf.SerialNumber)
	}
	if n := strings.Count(p.log(), "Issued certificate"); n != 1 {
		t.Errorf("after restart pebble has issued %d certificates, want still 1", n)
	}
}
