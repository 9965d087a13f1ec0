package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse checks that Parse never panics, that it returns either a config
// or errors that are all *Error, and that a config it accepts keeps the
// invariants the runtime relies on.
func FuzzParse(f *testing.F) {
	if example, err := os.ReadFile("../config.example.yaml"); err == nil {
		f.Add(example)
	}
	for _, s := range []string{
		minimal,
		full,
		"",
		"~",
		"a: [",
		"upstreams:\n  app: &a\n    <<: *a\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: app}]\n",
		"upstreams: &u {app: {<<: [*u, *u], backends: [*u]}}\nroutes: [*u]\n",
		"listen: [{address: \":80\", shards: 0x7fffffffffffffff}]\n" + minimal,
		"server: {max_body_bytes: 9999999999999999999GiB, read_timeout: 1e400h}\n" + minimal,
		minimal + "  - {host: \"[::1\", path_prefix: \"/\\x00\", upstream: app}\n",
		"---\n---\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse() returned a config with error %v", err)
			}
			for _, e := range unjoin(err) {
				if ce := (*Error)(nil); !errors.As(e, &ce) {
					t.Fatalf("Parse() error %q is %T, want *Error", e, e)
				}
			}
			return
		}
		checkInvariants(t, c)
	})
}

func checkInvariants(t *testing.T, c *Config) {
	t.Helper()
	if len(c.Listen) == 0 || len(c.Upstreams) == 0 || len(c.Routes) == 0 {
		t.Fatalf("accepted config with %d listeners, %d upstreams, %d routes", len(c.Listen), len(c.Upstreams), len(c.Routes))
	}
	if len(c.UpstreamNames) != len(c.Upstreams) {
		t.Fatalf("UpstreamNames = %v for %d upstreams", c.UpstreamNames, len(c.Upstreams))
	}
	for name, u := range c.Upstreams {
		if u.Name != name || len(u.Backends) == 0 || u.Queue.Timeout <= 0 {
			t.Fatalf("accepted upstream %q = %+v", name, u)
		}
		for _, b := range u.Backends {
			if b.Address == "" || b.Limit() < 0 || b.Weight < 1 {
				t.Fatalf("accepted backend %+v", b)
			}
		}
	}
	for _, r := range c.Routes {
		if c.Upstreams[r.Upstream] == nil || r.Host == "" || r.PathPrefix == "" || r.PathPrefix[0] != '/' {
			t.Fatalf("accepted route %+v", r)
		}
	}
}
