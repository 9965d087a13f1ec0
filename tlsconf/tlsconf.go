// Package tlsconf builds the crypto/tls server configuration of a TLS
// listener from its config: certificates chosen by SNI and reloadable while
// serving, Mozilla's "intermediate" defaults, and the fixed set of reasons a
// handshake fails for.
//
// A reload swaps the whole certificate set through an atomic pointer that
// GetCertificate reads, so handshakes never wait for a reload, open
// connections keep the certificate they negotiated, and a set that fails to
// load changes nothing.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"shardgate/config"
)

// Certs is the reloadable certificate set of one listener. Safe for
// concurrent use.
type Certs struct {
	files []config.Certificate
	set   atomic.Pointer[certSet]
}

// certSet is one loaded generation, never modified once published.
type certSet struct {
	exact    map[string]*tls.Certificate // lowercased DNS name → first cert with it
	wildcard map[string]*tls.Certificate // "example.com" for "*.example.com"
	first    *tls.Certificate
}

// LoadCerts reads every pair in files. An error names the pair's config path,
// its files and what is wrong with them.
func LoadCerts(files []config.Certificate) (*Certs, error) {
	c := &Certs{files: files}
	set, err := load(files)
	if err != nil {
		return nil, err
	}
	c.set.Store(set)
	return c, nil
}

// Reload reads the files again. On success new handshakes use the new set;
// on failure the old set keeps serving and the error says why.
func (c *Certs) Reload() error {
	set, err := load(c.files)
	if err != nil {
		return err
	}
	c.set.Store(set)
	return nil
}

// Check loads every certificate pair of cfg (listeners and admin) without
// keeping them, for -check: every problem is reported, joined.
func Check(cfg *config.Config) error {
	var errs []error
	for _, l := range cfg.Listen {
		if l.TLS != nil {
			errs = append(errs, checkPairs(l.TLS.Certificates)...)
		}
	}
	if cfg.Admin.TLS != nil {
		errs = append(errs, checkPairs(cfg.Admin.TLS.Certificates)...)
	}
	return errors.Join(errs...)
}

func checkPairs(files []config.Certificate) []error {
	var errs []error
	for _, f := range files {
		if _, err := loadPair(f); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func load(files []config.Certificate) (*certSet, error) {
	set := &certSet{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}}
	var errs []error
	for _, f := range files {
		cert, err := loadPair(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if set.first == nil {
			set.first = cert
		}
		for _, name := range cert.Leaf.DNSNames {
			name = strings.ToLower(name)
			m, key := set.exact, name
			if rest, ok := strings.CutPrefix(name, "*."); ok {
				m, key = set.wildcard, rest
			}
			if m[key] == nil {
				m[key] = cert
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if set.first == nil {
		return nil, errors.New("tlsconf: no certificate configured")
	}
	return set, nil
}

// loadPair reads one pair and checks that the key matches the leaf
// certificate.
func loadPair(f config.Certificate) (*tls.Certificate, error) {
	fail := func(format string, args ...any) error {
		return &config.Error{Path: f.Path, Line: f.Line, Msg: fmt.Sprintf(format, args...)}
	}
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fail("cert: %v", err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fail("key: %v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fail("cert %s, key %s: %s", f.Cert, f.Key, strings.TrimPrefix(err.Error(), "tls: "))
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fail("cert %s: %v", f.Cert, err)
		}
	}
	return &cert, nil
}

// GetCertificate picks the certificate for a handshake: the one whose DNS
// names include the SNI name exactly, else one with a matching wildcard
// ("*.example.com" matches "a.example.com", not "a.b.example.com"), else
// the first configured. It is the tls.Config.GetCertificate of the
// listener.
func (c *Certs) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.set.Load().pick(hello.ServerName), nil
}

func (s *certSet) pick(name string) *tls.Certificate {
	if name == "" {
		return s.first
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if cert := s.exact[name]; cert != nil {
		return cert
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if cert := s.wildcard[parent]; cert != nil {
			return cert
		}
	}
	return s.first
}

// cipherSuites are Mozilla's "intermediate" TLS 1.2 suites that Go
// implements: ECDHE with AEAD ciphers only. TLS 1.3 suites are not
// configurable in Go and are all AEAD.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerConfig returns the tls.Config of a listener configured by t, taking
// its certificates from certs and, with acme, from the manager m (either may
// be nil, not both). Session tickets are on: the config is shared
// by every shard of the listener, so a ticket issued on one shard resumes on
// any other. Until TicketKeys.Apply sets the keys, crypto/tls makes and
// rotates its own.
func ServerConfig(t *config.TLS, certs *Certs, m *autocert.Manager) *tls.Config {
	minVersion := uint16(tls.VersionTLS12)
	if t.MinVersion == "1.3" {
		minVersion = tls.VersionTLS13
	}
	cfg := &tls.Config{
		MinVersion:   minVersion,
		CipherSuites: cipherSuites,
		NextProtos:   []string{"http/1.1"},
	}
	var domains []string
	if m != nil {
		domains = t.ACME.Domains
		cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto) // TLS-ALPN-01
	}
	cfg.GetCertificate = getCertificate(certs, m, domains)
	return cfg
}
