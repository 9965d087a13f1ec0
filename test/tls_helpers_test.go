package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test, ECDSA P-256.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	path string // the CA certificate as PEM, for curl --cacert
}

var serials atomic.Int64

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1000 + serials.Add(1)),
		Subject:               pkix.Name{CommonName: "shardgate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.path = filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, ca.path, "CERTIFICATE", der)
	return ca
}

// issue writes a leaf certificate for names and its key into dir as
// NAME.crt and NAME.key (NAME is the first name, "*" spelled "wild") and
// returns the paths and the serial number.
func (ca *testCA) issue(t *testing.T, dir string, names ...string) (certPath, keyPath string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial = 2000 + serials.Add(1)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	base := strings.ReplaceAll(names[0], "*", "wild")
	certPath, keyPath = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	writePEM(t, certPath, "CERTIFICATE", der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyPath, "PRIVATE KEY", kder)
	return certPath, keyPath, serial
}

// writePEM writes one PEM block atomically (rename), as an operator's
// deploy script or certbot would.
func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsDial handshakes with addr as serverName and returns the connection.
func tlsDial(addr, serverName string, cfg *tls.Config) (*tls.Conn, error) {
	c := cfg.Clone()
	c.ServerName = serverName
	d := &net.Dialer{Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", addr, c)
}

// servedSerial returns the serial of the leaf certificate addr serves for
// serverName (without verifying it).
func servedSerial(t *testing.T, addr, serverName string) int64 {
	t.Helper()
	c, err := tlsDial(addr, serverName, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with %s as %q: %v", addr, serverName, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// listenAddrs returns every address of the ready line, in listen order.
func listenAddrs(t *testing.T, g *Gateway) []string {
	t.Helper()
	listen, _, ok := findReady(g.Logs())
	if !ok {
		t.Fatal("no ready line")
	}
	return strings.Split(listen, ",")
}
