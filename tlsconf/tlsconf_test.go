package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shardgate/config"
)

// selfSigned writes a self-signed pair for names into dir and returns it.
func selfSigned(t *testing.T, dir string, serial int64, names ...string) config.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	c := config.Certificate{
		Cert: filepath.Join(dir, fmt.Sprint(serial, ".crt")), Key: filepath.Join(dir, fmt.Sprint(serial, ".key")),
		Path: fmt.Sprintf("listen[0].tls.certificates[%d]", serial), Line: int(serial),
	}
	os.WriteFile(c.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(c.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return c
}

func serialFor(t *testing.T, c *Certs, sni string) int64 {
	t.Helper()
	cert, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
	if err != nil {
		t.Fatal(err)
	}
	return cert.Leaf.SerialNumber.Int64()
}

func TestGetCertificateBySNI(t *testing.T) {
	dir := t.TempDir()
	certs, err := LoadCerts([]config.Certificate{
		selfSigned(t, dir, 1, "default.test"),
		selfSigned(t, dir, 2, "*.example.com"),
		selfSigned(t, dir, 3, "www.example.com", "api.example.com"),
		selfSigned(t, dir, 4, "www.example.com"), // the first with a name wins
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sni  string
		want int64
	}{
		{"www.example.com", 3}, {"API.Example.Com", 3}, {"www.example.com.", 3},
		{"shop.example.com", 2}, {"a.b.example.com", 1}, {"example.com", 1},
		{"default.test", 1}, {"unknown.test", 1}, {"", 1},
	} {
		if got := serialFor(t, certs, tt.sni); got != tt.want {
			t.Errorf("GetCertificate(%q) serial = %d, want %d", tt.sni, got, tt.want)
		}
	}
}

func TestReloadKeepsOldOnError(t *testing.T) {
	dir := t.TempDir()
	pair := selfSigned(t, dir, 7, "a.test")
	certs, err := LoadCerts([]config.Certificate{pair})
	if err != nil {
		t.Fatal(err)
	}
	other := selfSigned(t, t.TempDir(), 7, "a.test")
	key, _ := os.ReadFile(other.Key)
	os.WriteFile(pair.Key, key, 0o600) // a key of another certificate
	err = certs.Reload()
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Path != pair.Path || ce.Line != 7 ||
		!strings.Contains(err.Error(), pair.Key) || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Reload() error = %v, want a config.Error at %s naming %s and the mismatch", err, pair.Path, pair.Key)
	}
	if got := serialFor(t, certs, "a.test"); got != 7 {
		t.Errorf("after a failed reload serial %d served, want 7", got)
	}
	os.Remove(pair.Cert)
	if err := certs.Reload(); err == nil || !strings.Contains(err.Error(), "cert: open") {
		t.Errorf("Reload() with a missing cert = %v, want the open error", err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := selfSigned(t, dir, 1, "a.test")
	bad := config.Certificate{Cert: good.Cert, Key: good.Cert, Path: "admin.tls.certificates[0]", Line: 9}
	cfg := &config.Config{
		Listen: []config.Listen{{TLS: &config.TLS{Certificates: []config.Certificate{good}}}},
		Admin:  config.Admin{TLS: &config.TLS{Certificates: []config.Certificate{bad}}},
	}
	err := Check(cfg)
	if err == nil || !strings.Contains(err.Error(), "admin.tls.certificates[0]") || !strings.Contains(err.Error(), "(line 9)") {
		t.Errorf("Check() = %v, want the admin pair refused with its path and line", err)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want Reason
	}{
		{&net.OpError{Op: "read", Err: timeoutErr{}}, ReasonTimeout},
		{io.EOF, ReasonClosed},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), ReasonClosed},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, ReasonNotTLS},
		{errors.New("tls: client offered only unsupported versions: [301]"), ReasonVersion},
		{errors.New("tls: no cipher suite supported by both client and server"), ReasonCipher},
		{errors.New("tls: client requested unsupported application protocols ([h2])"), ReasonALPN},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, ReasonAlert},
		{errors.New("something new"), ReasonOther},
	} {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if Reason(99).String() != "other" {
		t.Error("an out-of-range Reason must read other")
	}
}

// TestHandshakeReasons drives real handshakes against ServerConfig and
// checks the reason Classify gives the server's error.
func TestHandshakeReasons(t *testing.T) {
	dir := t.TempDir()
	certs, err := LoadCerts([]config.Certificate{selfSigned(t, dir, 1, "a.test")})
	if err != nil {
		t.Fatal(err)
	}
	srvCfg := ServerConfig(&config.TLS{MinVersion: "1.3"}, certs, nil)
	for _, tt := range []struct {
		name   string
		client func(net.Conn)
		want   Reason
	}{
		{"TLS 1.2 below min_version 1.3", func(c net.Conn) {
			tls.Client(c, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}).Handshake()
		}, ReasonVersion},
		{"plain HTTP", func(c net.Conn) { c.Write([]byte("GET / HTTP/1.1\r\n\r\n")) }, ReasonNotTLS},
		{"client rejects the certificate", func(c net.Conn) {
			tls.Client(c, &tls.Config{ServerName: "a.test"}).Handshake() // unknown CA
		}, ReasonAlert},
		{"h2 only", func(c net.Conn) {
			tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}).Handshake()
		}, ReasonALPN},
		{"client hangs up", func(c net.Conn) { c.Close() }, ReasonClosed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cc, sc := net.Pipe()
			defer cc.Close()
			go func() { tt.client(cc); cc.Close() }()
			sc.SetDeadline(time.Now().Add(5 * time.Second))
			err := tls.Server(sc, srvCfg).Handshake()
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			if got := Classify(err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tt.want)
			}
		})
	}
}
