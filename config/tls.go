package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// TLS configures TLS termination on a listener (YAML key listen[].tls) or on
// the admin listener (admin.tls).
type TLS struct {
	// Certificates are the certificate/key pairs offered, chosen per
	// handshake by the client's SNI name: an exact DNS name of a
	// certificate, then a wildcard one, then the first pair as default
	// (YAML key certificates). At least one.
	Certificates []Certificate
	// MinVersion is the oldest TLS version accepted, "1.2" (default) or
	// "1.3" (YAML key min_version). TLS 1.0 and 1.1 are never accepted.
	MinVersion string
	// HSTS, when MaxAge > 0, adds Strict-Transport-Security to every
	// response on the listener (YAML key hsts). Default off. Not valid on
	// admin.tls.
	HSTS HSTS
	// ACME, when not nil, obtains and renews certificates for its domains
	// (YAML key acme). Default nil. Not valid on admin.tls.
	ACME *ACME
}

// ACME obtains certificates from an ACME CA (Let's Encrypt by default),
// answering TLS-ALPN-01 challenges on the TLS listener and HTTP-01 ones on
// the plain listeners. Configuring it accepts the CA's terms of service.
type ACME struct {
	// Domains are the names certificates are obtained for (YAML key
	// domains, required): exact DNS names, no wildcards (those need DNS-01).
	// A handshake for another name gets a static certificate, if any.
	Domains []string
	// Email is the contact address given to the CA for expiry notices
	// (YAML key email). Default "": none.
	Email string
	// Directory is the CA's ACME directory URL (YAML key directory).
	// Default Let's Encrypt's production directory.
	Directory string
	// CacheDir keeps the account key and certificates across restarts
	// (YAML key cache_dir). Default "/var/lib/shardgate/acme". Created
	// with mode 0700 if missing.
	CacheDir string
}

// DefaultACMEDirectory is Let's Encrypt's production ACME directory.
const DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"

func (d *decoder) acme(path string, n *yaml.Node) *ACME {
	a := &ACME{Directory: DefaultACMEDirectory, CacheDir: "/var/lib/shardgate/acme"}
	present := d.mapping(path, n, fields{
		"domains":   func(p string, v *yaml.Node) { a.Domains = d.domains(p, v) },
		"email":     d.str(&a.Email, noControl),
		"directory": d.str(&a.Directory, httpsURL),
		"cache_dir": d.str(&a.CacheDir, nonEmpty, noControl),
	})
	if present != nil && present["domains"] == nil {
		d.add(join(path, "domains"), n, "at least one domain is required")
	}
	return a
}

func (d *decoder) domains(path string, n *yaml.Node) []string {
	items, ok := d.sequence(path, n)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.add(path, n, "at least one domain is required")
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		var name string
		d.str(&name, acmeDomain)(index(path, i), it)
		if name != "" {
			out = append(out, strings.ToLower(name))
		}
	}
	return out
}

func acmeDomain(s string) string {
	switch {
	case strings.HasPrefix(s, "*"):
		return fmt.Sprintf("wildcards need the DNS-01 challenge, which is not supported: %q", s)
	case s == "" || hostPattern(s) != "" || !strings.Contains(s, "."):
		return fmt.Sprintf("want a DNS name such as example.com, got %q", s)
	}
	return ""
}

func httpsURL(s string) string {
	if !strings.HasPrefix(s, "https://") || len(s) == len("https://") || strings.ContainsFunc(s, badRune) {
		return fmt.Sprintf("want an https:// URL, got %q", s)
	}
	return ""
}

// Certificate is one PEM certificate chain and its private key.
type Certificate struct {
	// Cert is the path of the PEM certificate chain, leaf first (YAML key
	// cert, required).
	Cert string
	// Key is the path of the PEM private key (YAML key key, required).
	Key string
	// Path and Line say where the pair was configured, such as
	// "listen[0].tls.certificates[1]", for errors found when the files are
	// read. Filled by the loader.
	Path string
	Line int
}

// HSTS is the Strict-Transport-Security header of a TLS listener.
type HSTS struct {
	// MaxAge is the header's max-age, rounded down to whole seconds (YAML
	// key max_age, a duration such as 8760h). Default 0: no header.
	MaxAge time.Duration
	// IncludeSubdomains adds includeSubDomains (YAML key
	// include_subdomains). Default false.
	IncludeSubdomains bool
	// Preload adds preload (YAML key preload). Default false.
	Preload bool
}

// Header returns the header value, or "" when HSTS is off.
func (h HSTS) Header() string {
	if h.MaxAge <= 0 {
		return ""
	}
	v := "max-age=" + strconv.FormatInt(int64(h.MaxAge/time.Second), 10)
	if h.IncludeSubdomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}

var tlsVersions = []string{"1.2", "1.3"}

// tls decodes a tls mapping; hsts says whether the hsts and acme keys are
// allowed (not on admin.tls).
func (d *decoder) tls(path string, n *yaml.Node, hsts bool) *TLS {
	t := &TLS{MinVersion: "1.2"}
	fs := fields{
		"certificates": func(p string, v *yaml.Node) { t.Certificates = d.certificates(p, v) },
		"min_version":  d.str(&t.MinVersion, oneOf(tlsVersions...)),
	}
	if hsts {
		fs["hsts"] = func(p string, v *yaml.Node) { d.hsts(p, v, &t.HSTS) }
		fs["acme"] = func(p string, v *yaml.Node) { t.ACME = d.acme(p, v) }
	}
	present := d.mapping(path, n, fs)
	if present != nil && present["certificates"] == nil && present["acme"] == nil {
		msg := "at least one certificate is required"
		if hsts {
			msg += " (or acme)"
		}
		d.add(join(path, "certificates"), n, "%s", msg)
	}
	return t
}

func (d *decoder) certificates(path string, n *yaml.Node) []Certificate {
	items, ok := d.sequence(path, n)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.add(path, n, "at least one certificate is required")
	}
	out := make([]Certificate, 0, len(items))
	for i, it := range items {
		p := index(path, i)
		c := Certificate{Path: p, Line: it.Line}
		present := d.mapping(p, it, fields{
			"cert": d.str(&c.Cert, nonEmpty, noControl),
			"key":  d.str(&c.Key, nonEmpty, noControl),
		})
		if present == nil {
			continue
		}
		for _, k := range []string{"cert", "key"} {
			if present[k] == nil {
				d.add(join(p, k), it, "required")
			}
		}
		out = append(out, c)
	}
	return out
}

func (d *decoder) hsts(path string, n *yaml.Node, h *HSTS) {
	present := d.mapping(path, n, fields{
		"max_age":            d.duration(&h.MaxAge, nonNegative),
		"include_subdomains": d.boolean(&h.IncludeSubdomains),
		"preload":            d.boolean(&h.Preload),
	})
	if present != nil && present["max_age"] == nil {
		d.add(join(path, "max_age"), n, "required (a duration such as 8760h)")
	}
}

// checkRedirects checks the listeners with redirect_https (value "tls"
// for a TLS listener): it needs a TLS listener to send clients to, and is
// pointless on one itself.
func (d *decoder) checkRedirects(redirects []located, hasTLS bool) {
	for _, r := range redirects {
		switch {
		case r.value == "tls":
			d.add(r.path, r.node, "a TLS listener cannot redirect to HTTPS itself")
		case !hasTLS:
			d.add(r.path, r.node, "needs a listener with tls to redirect to")
		}
	}
}

// Loopback is the admin.allow default: IPv4 and IPv6 loopback.
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// AdminAuth is how admin clients authenticate; at most one field is set.
type AdminAuth struct {
	// BearerTokenFile is a file whose content (surrounding white space
	// trimmed) is the token clients send as "Authorization: Bearer TOKEN"
	// (YAML key bearer_token_file). Re-read on SIGHUP.
	BearerTokenFile string
	// BasicAuthFile is an htpasswd file of "user:bcrypt-hash" lines for
	// HTTP Basic authentication (YAML key basic_auth_file). Re-read on
	// SIGHUP.
	BasicAuthFile string
}

// Enabled reports whether any authentication is configured.
func (a AdminAuth) Enabled() bool { return a.BearerTokenFile != "" || a.BasicAuthFile != "" }

func (d *decoder) adminAuth(path string, n *yaml.Node, a *AdminAuth) {
	present := d.mapping(path, n, fields{
		"bearer_token_file": d.str(&a.BearerTokenFile, nonEmpty, noControl),
		"basic_auth_file":   d.str(&a.BasicAuthFile, nonEmpty, noControl),
	})
	if present == nil {
		return
	}
	switch {
	case present["bearer_token_file"] != nil && present["basic_auth_file"] != nil:
		d.add(join(path, "basic_auth_file"), present["basic_auth_file"], "set either bearer_token_file or basic_auth_file, not both")
	case present["bearer_token_file"] == nil && present["basic_auth_file"] == nil:
		d.add(path, n, "want bearer_token_file or basic_auth_file")
	}
}

// adminWarnings: an admin listener off loopback with neither allow nor auth.
func (c *Config) adminWarnings() []string {
	var out []string
	a := c.Admin
	if a.Address != "" && !loopbackAddr(a.Address) && a.Allow == nil && !a.Auth.Enabled() {
		out = append(out, fmt.Sprintf("admin.address: %q is not a loopback address, but neither admin.allow nor "+
			"admin.auth is set: only loopback clients are let in (others get 403)", a.Address))
	}
	return out
}

// loopbackAddr reports whether host:port names a loopback host.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
