package gateway

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// testRoute is one line of a routing table under test.
type testRoute struct{ host, prefix, upstream string }

// newTestRouter builds a router from routes, one upstreamState per distinct
// upstream name.
func newTestRouter(routes ...testRoute) *router {
	ups := make(map[string]*upstreamState)
	r := new(router)
	for _, rt := range routes {
		u := ups[rt.upstream]
		if u == nil {
			u = &upstreamState{name: rt.upstream}
			ups[rt.upstream] = u
		}
		r.add(rt.host, rt.prefix, u)
	}
	r.build()
	return r
}

// matchName returns the name of the upstream r picks, "" for none.
func matchName(r *router, host, path string) string {
	if u := r.match([]byte(host), []byte(path)); u != nil {
		return u.name
	}
	return ""
}

func TestRouterMatch(t *testing.T) {
	full := newTestRouter(
		testRoute{"*", "/", "any"},
		testRoute{"*", "/api", "any-api"},
		testRoute{"*", "/api/v2", "any-api-v2"},
		testRoute{"*", "/static/", "any-static"},
		testRoute{"example.com", "/", "exact"},
		testRoute{"example.com", "/api", "exact-api"},
		testRoute{"*.example.com", "/", "wild"},
		testRoute{"*.api.example.com", "/", "wild-api"},
		testRoute{"only-api.test", "/api", "only-api"},
		testRoute{"*.only-api.test", "/api", "wild-only-api"},
	)
	noAny := newTestRouter(
		testRoute{"example.com", "/", "exact"},
		testRoute{"*.example.com", "/", "wild"},
	)
	tests := []struct {
		name       string
		r          *router
		host, path string
		want       string
	}{
		{"exact host", full, "example.com", "/x", "exact"},
		{"exact host longest prefix", full, "example.com", "/api/v1", "exact-api"},
		{"exact host prefix itself", full, "example.com", "/api", "exact-api"},
		{"exact host not at segment boundary", full, "example.com", "/apix", "exact"},
		{"wildcard subdomain", full, "www.example.com", "/", "wild"},
		{"wildcard deep subdomain", full, "a.b.example.com", "/", "wild"},
		{"longest wildcard suffix", full, "x.api.example.com", "/", "wild-api"},
		{"wildcard is not the apex", noAny, "example.com", "/", "exact"},
		{"wildcard does not match apex without exact", newTestRouter(
			testRoute{"*.example.com", "/", "wild"}, testRoute{"*", "/", "any"}), "example.com", "/", "any"},
		{"wildcard needs a dot boundary", full, "badexample.com", "/", "any"},
		{"wildcard needs a label", noAny, ".example.com", "/", ""},
		{"any host", full, "other.test", "/", "any"},
		{"any host longest prefix", full, "other.test", "/api/v2/users", "any-api-v2"},
		{"prefix matches itself", full, "other.test", "/api", "any-api"},
		{"prefix matches below", full, "other.test", "/api/x", "any-api"},
		{"prefix is not a string prefix", full, "other.test", "/apix", "any"},
		{"v2 is not v20", full, "other.test", "/api/v20", "any-api"},
		{"slash prefix matches below", full, "other.test", "/static/app.css", "any-static"},
		{"slash prefix needs the slash", full, "other.test", "/static", "any"},
		{"exact group without prefix falls to any", full, "only-api.test", "/other", "any"},
		{"exact group with prefix", full, "only-api.test", "/api/x", "only-api"},
		{"wildcard group without prefix falls to any", full, "x.only-api.test", "/other", "any"},
		{"wildcard group with prefix", full, "x.only-api.test", "/api", "wild-only-api"},
		{"no route without any", noAny, "other.test", "/", ""},
		{"empty host goes to any", full, "", "/", "any"},
		{"unroutable path", full, "example.com", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchName(tt.r, tt.host, tt.path); got != tt.want {
				t.Errorf("match(%q, %q) = %q, want %q", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

// TestRouterMatchAfterRoutePath routes request-targets as the handler does:
// routePath first, then the table.
func TestRouterMatchAfterRoutePath(t *testing.T) {
	r := newTestRouter(
		testRoute{"*", "/", "app"},
		testRoute{"*", "/api", "api"},
		testRoute{"*", "/admin", "admin"},
	)
	tests := []struct{ uri, want string }{
		{"/api", "api"},
		{"/api/x", "api"},
		{"/api?q=1", "api"},
		{"/api?q=/x", "api"},
		{"/apix", "app"},
		{"/apix?q=/api", "app"},
		{"/api/../admin", "admin"},
		{"/api/%2e%2e/admin", "admin"},
		{"/app/%2E%2E/api/x", "api"},
		{"http://h.test/api/x?y", "api"},
		{"*", "app"},
		// A target that starts with "//" is a path, not an authority: the
		// backend sees "//admin/x" and collapses it to "/admin/x".
		{"//admin/x", "admin"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			var u fasthttp.URI
			if got := matchName(r, "h.test", string(routePath([]byte(tt.uri), &u))); got != tt.want {
				t.Errorf("match(routePath(%q)) = %q, want %q", tt.uri, got, tt.want)
			}
		})
	}
}

func TestRoutePath(t *testing.T) {
	tests := []struct{ uri, want string }{
		{"/", "/"},
		{"/api", "/api"},
		{"/api?q=1", "/api"},
		{"/api?", "/api"},
		{"/?q=/../x", "/"},
		{"/a/../b", "/b"},
		{"/a/./b", "/a/b"},
		{"/a/b/..", "/a/"},
		{"/..", "/"},
		{"/../../etc", "/etc"},
		{"/%2e%2e/admin", "/admin"},
		{"/api/%2e%2e/admin", "/admin"},
		{"/api/%2E%2e/admin", "/admin"},
		{"/api/.%2e/admin", "/admin"},
		{"/a%2Fb", "/a/b"},
		{"/%41pi", "/Api"},
		{"/a//b", "/a/b"},
		{"//api/x", "/api/x"},
		{"http://h.test/p", "/p"},
		{"http://h.test/p?q", "/p"},
		{"HTTP://H.TEST:80/p/../q", "/q"},
		{"http://h.test", "/"},
		{"*", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			var u fasthttp.URI
			if got := routePath([]byte(tt.uri), &u); string(got) != tt.want {
				t.Errorf("routePath(%q) = %q, want %q", tt.uri, got, tt.want)
			}
		})
	}
}

// TestRoutePathLeavesTargetAlone pins that routing never rewrites what the
// backend gets: the request-target is forwarded exactly as sent.
func TestRoutePathLeavesTargetAlone(t *testing.T) {
	for _, uri := range []string{"/api/../admin?x=1", "/a%2Fb", "http://h.test/p"} {
		b := []byte(uri)
		var u fasthttp.URI
		routePath(b, &u)
		if string(b) != uri {
			t.Errorf("routePath changed its input to %q, want %q", b, uri)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct{ host, want string }{
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"example.com:8080", "example.com"},
		{"EXAMPLE.com:80", "example.com"},
		{"example.com.", "example.com"},
		{"example.com.:8080", "example.com"},
		{"[::1]", "[::1]"},
		{"[::1]:8080", "[::1]"},
		{"[2001:DB8::1]:443", "[2001:db8::1]"},
		{"127.0.0.1:80", "127.0.0.1"},
		{"", ""},
		{":80", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := normalizeHost(nil, []byte(tt.host)); string(got) != tt.want {
				t.Errorf("normalizeHost(%q) = %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}

// TestNormalizeHostReusesDst pins that a pooled buffer is reused, not grown
// per request, and that the input is not modified.
func TestNormalizeHostReusesDst(t *testing.T) {
	dst := make([]byte, 0, 64)
	in := []byte("WWW.Example.COM:8080")
	got := normalizeHost(dst, in)
	if string(got) != "www.example.com" {
		t.Fatalf("normalizeHost() = %q, want %q", got, "www.example.com")
	}
	if &got[0] != &dst[:1][0] {
		t.Error("normalizeHost() did not reuse dst")
	}
	if string(in) != "WWW.Example.COM:8080" {
		t.Errorf("normalizeHost changed its input to %q", in)
	}
}

func TestPrefixMatch(t *testing.T) {
	tests := []struct {
		path, prefix string
		want         bool
	}{
		{"/", "/", true},
		{"/x", "/", true},
		{"/api", "/api", true},
		{"/api/", "/api", true},
		{"/api/x", "/api", true},
		{"/apix", "/api", false},
		{"/ap", "/api", false},
		{"/API", "/api", false},
		{"/api/", "/api/", true},
		{"/api", "/api/", false},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.prefix, func(t *testing.T) {
			if got := prefixMatch([]byte(tt.path), tt.prefix); got != tt.want {
				t.Errorf("prefixMatch(%q, %q) = %v, want %v", tt.path, tt.prefix, got, tt.want)
			}
		})
	}
}
