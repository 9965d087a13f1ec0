package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// benchCert is the one certificate every proxy terminates TLS with in the
// TLS scenarios: ECDSA P-256, self-signed for 127.0.0.1 (wrk does not
// verify).
type benchCert struct {
	cert, key string // PEM files (shardgate, nginx)
	combined  string // certificate then key in one file (HAProxy's crt)
}

// makeBenchCert writes the certificate and key into dir.
func makeBenchCert(dir string) (*benchCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "shardgate bench"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	c := &benchCert{cert: filepath.Join(dir, "bench.crt"), key: filepath.Join(dir, "bench.key"),
		combined: filepath.Join(dir, "bench.pem")}
	for path, data := range map[string][]byte{c.cert: certPEM, c.key: keyPEM, c.combined: append(certPEM, keyPEM...)} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return c, nil
}

// scheme is the URL scheme clients use in scenario s.
func (s scenario) scheme() string {
	if s.tls {
		return "https"
	}
	return "http"
}

// haproxyTLS is the bind line's TLS part: the same certificate, TLS 1.2+,
// ALPN http/1.1, session tickets on (HAProxy's default).
func haproxyTLS(pc proxyConfig) string {
	if pc.tls == nil {
		return ""
	}
	return fmt.Sprintf(" ssl crt %s alpn http/1.1 ssl-min-ver TLSv1.2", pc.tls.combined)
}

// nginxTLS is the listen directive's TLS part and the server's TLS
// directives: the same certificate, TLS 1.2 and 1.3, tickets and a shared
// session cache (what an nginx operator sets).
func nginxTLS(pc proxyConfig) string {
	if pc.tls == nil {
		return ""
	}
	return fmt.Sprintf(" ssl;\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n"+
		"    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache shared:SSL:10m", pc.tls.cert, pc.tls.key)
}
