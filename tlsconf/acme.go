package tlsconf

import (
	"crypto/tls"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"shardgate/config"
)

// NewACME returns the certificate manager of a listener's acme section: it
// obtains certificates for the configured domains on their first handshake
// (TLS-ALPN-01 on the TLS listener, or HTTP-01 through HTTPHandler on a
// plain one), keeps them and the account key in cache_dir and renews them 30
// days before they expire. Configuring acme accepts the CA's terms.
func NewACME(a *config.ACME) (*autocert.Manager, error) {
	if err := os.MkdirAll(a.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("acme cache_dir: %w", err)
	}
	return &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(a.CacheDir),
		HostPolicy: autocert.HostWhitelist(a.Domains...),
		Email:      a.Email,
		Client:     &acme.Client{DirectoryURL: a.Directory},
	}, nil
}

// getCertificate chooses between the ACME manager m and the static set
// certs (either may be nil): ACME challenges and the ACME domains go to m,
// everything else to the static set, or to m when there is none.
func getCertificate(certs *Certs, m *autocert.Manager, domains []string) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m == nil {
		return certs.GetCertificate
	}
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
		if certs == nil || slices.Contains(hello.SupportedProtos, acme.ALPNProto) || slices.Contains(domains, name) {
			return m.GetCertificate(hello)
		}
		return certs.GetCertificate(hello)
	}
}
