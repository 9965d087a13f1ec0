package config

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestParseEdgeKeys(t *testing.T) {
	src := `listen:
  - address: ":443"
    proxy_protocol: true
    tls:
      min_version: "1.3"
      certificates:
        - {cert: /etc/a.crt, key: /etc/a.key}
      hsts: {max_age: 8760h, include_subdomains: true, preload: true}
  - address: ":80"
    redirect_https: true
admin:
  address: 10.0.0.5:9180
  allow: [10.0.0.0/8, 192.0.2.1]
  metrics_allow: [10.9.0.0/16]
  auth: {bearer_token_file: /etc/token}
  pprof: true
  tls:
    certificates: [{cert: /etc/b.crt, key: /etc/b.key}]
` + minimal
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &TLS{
		MinVersion:   "1.3",
		Certificates: []Certificate{{Cert: "/etc/a.crt", Key: "/etc/a.key", Path: "listen[0].tls.certificates[0]", Line: 7}},
		HSTS:         HSTS{MaxAge: 8760 * time.Hour, IncludeSubdomains: true, Preload: true},
	}
	if !reflect.DeepEqual(c.Listen[0].TLS, want) {
		t.Errorf("listen[0].tls = %+v, want %+v", c.Listen[0].TLS, want)
	}
	if !c.Listen[0].ProxyProtocol || !c.Listen[1].RedirectHTTPS || c.Listen[1].TLS != nil {
		t.Errorf("listen = %+v", c.Listen)
	}
	if got := c.Listen[0].TLS.HSTS.Header(); got != "max-age=31536000; includeSubDomains; preload" {
		t.Errorf("HSTS.Header() = %q", got)
	}
	a := c.Admin
	if !slices.Equal(a.Allow, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}) ||
		len(a.MetricsAllow) != 1 || a.Auth.BearerTokenFile != "/etc/token" || !a.Pprof || a.TLS == nil || a.TLS.MinVersion != "1.2" {
		t.Errorf("admin = %+v", a)
	}
	if w := c.Warnings(64); len(w) != 0 {
		t.Errorf("Warnings() = %q, want none (allow and auth are set)", w)
	}

	d, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if d.Admin.Allow != nil || d.Admin.Pprof || d.Admin.Auth.Enabled() || d.Listen[0].TLS != nil {
		t.Errorf("defaults: admin %+v, listen %+v; want loopback-only admin without pprof and plain listeners", d.Admin, d.Listen)
	}
}

func TestParseEdgeErrors(t *testing.T) {
	tls := "listen:\n  - address: \":443\"\n    tls:\n"
	tests := []struct{ name, src, want string }{
		{"tls without certificates", tls + "      min_version: \"1.2\"\n" + minimal,
			"listen[0].tls.certificates: at least one certificate is required (or acme) (line 4)"},
		{"old TLS version", tls + "      min_version: \"1.1\"\n      certificates: [{cert: a, key: b}]\n" + minimal,
			`listen[0].tls.min_version: must be one of 1.2, 1.3, got "1.1" (line 4)`},
		{"certificate without key", tls + "      certificates: [{cert: a}]\n" + minimal,
			"listen[0].tls.certificates[0].key: required (line 4)"},
		{"hsts without max_age", tls + "      certificates: [{cert: a, key: b}]\n      hsts: {preload: true}\n" + minimal,
			"listen[0].tls.hsts.max_age: required (a duration such as 8760h) (line 5)"},
		{"hsts not boolean", tls + "      certificates: [{cert: a, key: b}]\n      hsts: {max_age: 1h, preload: yes please}\n" + minimal,
			`listen[0].tls.hsts.preload: not a boolean: "yes please": want true or false (line 5)`},
		{"redirect without a TLS listener", "listen:\n  - address: \":80\"\n    redirect_https: true\n" + minimal,
			"listen[0].redirect_https: needs a listener with tls to redirect to (line 3)"},
		// Regression: the check used positions among the listeners that
		// decoded cleanly, so an error in one listener named the wrong one
		// or invented a missing TLS listener.
		{"redirect after a broken listener", "listen:\n  - address: bad\n  - address: \":80\"\n    redirect_https: true\n" + minimal,
			"listen[0].address: want host:port, got \"bad\" (line 2)\n" +
				"listen[1].redirect_https: needs a listener with tls to redirect to (line 4)"},
		{"redirect to a TLS listener with an error", tls + "      certificates: [{cert: a, key: b}]\n    shards: -1\n  - address: \":80\"\n    redirect_https: true\n" + minimal,
			"listen[0].shards: must be ≥ 0 (line 5)"},
		{"redirect on the TLS listener", tls + "      certificates: [{cert: a, key: b}]\n    redirect_https: true\n" + minimal,
			"listen[0].redirect_https: a TLS listener cannot redirect to HTTPS itself (line 5)"},
		{"proxy_protocol not boolean", "listen:\n  - address: \":80\"\n    proxy_protocol: 1\n" + minimal,
			`listen[0].proxy_protocol: not a boolean: "1": want true or false (line 3)`},
		{"admin hsts", "admin:\n  tls: {certificates: [{cert: a, key: b}], hsts: {max_age: 1h}}\n" + minimal,
			"admin.tls.hsts: unknown key (line 2)"},
		{"admin allow not a CIDR", "admin:\n  allow: [everyone]\n" + minimal,
			`admin.allow[0]: not a CIDR or IP address: "everyone" (line 2)`},
		{"admin two auth files", "admin:\n  auth: {bearer_token_file: a, basic_auth_file: b}\n" + minimal,
			"admin.auth.basic_auth_file: set either bearer_token_file or basic_auth_file, not both (line 2)"},
		{"admin auth empty", "admin:\n  auth: {}\n" + minimal, "admin.auth: want bearer_token_file or basic_auth_file (line 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src))
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse() error =\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	for _, tt := range []struct {
		admin string
		warn  bool
	}{
		{"admin: {address: \"0.0.0.0:9180\"}\n", true},
		{"admin: {address: \"[::]:9180\"}\n", true},
		{"admin: {address: \"localhost:9180\"}\n", false},
		{"admin: {address: \"[::1]:9180\"}\n", false},
		{"admin: {address: \"\"}\n", false},
		{"admin: {address: \"0.0.0.0:9180\", auth: {basic_auth_file: /x}}\n", false},
	} {
		c, err := Parse([]byte(tt.admin + minimal))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(c.Warnings(64)) > 0; got != tt.warn {
			t.Errorf("%s: Warnings() = %q, want a warning: %v", tt.admin, c.Warnings(64), tt.warn)
		}
	}
}

func TestParseACME(t *testing.T) {
	c, err := Parse([]byte("listen:\n  - address: \":443\"\n    tls:\n      acme: {domains: [Example.COM, www.example.com]}\n" + minimal))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Listen[0].TLS.ACME
	if a == nil || !slices.Equal(a.Domains, []string{"example.com", "www.example.com"}) ||
		a.Directory != DefaultACMEDirectory || a.CacheDir != "/var/lib/shardgate/acme" || len(c.Listen[0].TLS.Certificates) != 0 {
		t.Errorf("acme = %+v", a)
	}
	tls := "listen:\n  - address: \":443\"\n    tls:\n      acme: "
	for _, tt := range []struct{ name, src, want string }{
		{"no domains", tls + "{email: a@b.c}\n" + minimal, "listen[0].tls.acme.domains: at least one domain is required (line 4)"},
		{"wildcard", tls + "{domains: [\"*.example.com\"]}\n" + minimal,
			`listen[0].tls.acme.domains[0]: wildcards need the DNS-01 challenge, which is not supported: "*.example.com" (line 4)`},
		{"not a name", tls + "{domains: [localhost]}\n" + minimal,
			`listen[0].tls.acme.domains[0]: want a DNS name such as example.com, got "localhost" (line 4)`},
		{"plain directory", tls + "{domains: [a.example], directory: \"http://ca/dir\"}\n" + minimal,
			`listen[0].tls.acme.directory: want an https:// URL, got "http://ca/dir" (line 4)`},
		{"admin acme", "admin:\n  tls: {acme: {domains: [a.example]}}\n" + minimal, "admin.tls.acme: unknown key (line 2)\nadmin.tls.certificates: at least one certificate is required (line 2)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src))
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse() error =\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}
