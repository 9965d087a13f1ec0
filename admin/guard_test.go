package admin

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"shardgate/config"
)

func guardRequest(g *Guard, remote, path string, set func(*http.Request)) int {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	r := httptest.NewRequest("GET", path, nil)
	r.RemoteAddr = remote
	if set != nil {
		set(r)
	}
	w := httptest.NewRecorder()
	g.Wrap(ok).ServeHTTP(w, r)
	return w.Code
}

func TestGuardDefaults(t *testing.T) {
	g, err := NewGuard(config.Admin{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		remote, path string
		want         int
	}{
		{"127.0.0.1:5000", "/metrics", 200},
		{"[::1]:5000", "/status", 200},
		{"[::ffff:127.0.0.1]:5000", "/status", 200},
		{"10.0.0.1:5000", "/metrics", 403},
		{"10.0.0.1:5000", "/healthz", 403},
		{"127.0.0.1:5000", "/debug/pprof/", 404},
		{"127.0.0.1:5000", "/debug/pprof/profile", 404},
		{"garbage", "/metrics", 403},
	} {
		if got := guardRequest(g, tt.remote, tt.path, nil); got != tt.want {
			t.Errorf("GET %s from %s = %d, want %d", tt.path, tt.remote, got, tt.want)
		}
	}
}

func TestGuardBasicAuthReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "htpasswd")
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw1"), bcrypt.MinCost)
	os.WriteFile(file, []byte("u:"+string(hash)+"\n"), 0o600)
	a := config.Admin{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, Auth: config.AdminAuth{BasicAuthFile: file}}
	g, err := NewGuard(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	basic := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	if got := guardRequest(g, "192.0.2.1:1", "/metrics", basic("u", "pw1")); got != 200 {
		t.Errorf("right password: %d, want 200", got)
	}
	if got := guardRequest(g, "192.0.2.1:1", "/metrics", basic("u", "pw2")); got != 401 {
		t.Errorf("wrong password after a right one: %d, want 401 (the cache keys on the password)", got)
	}
	if got := guardRequest(g, "192.0.2.1:1", "/readyz", nil); got != 200 {
		t.Errorf("/readyz without credentials: %d, want 200", got)
	}
	hash2, _ := bcrypt.GenerateFromPassword([]byte("pw2"), bcrypt.MinCost)
	os.WriteFile(file, []byte("u:"+string(hash2)+"\n"), 0o600)
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := guardRequest(g, "192.0.2.1:1", "/metrics", basic("u", "pw1")); got != 401 {
		t.Errorf("old password after reload: %d, want 401", got)
	}
	if got := guardRequest(g, "192.0.2.1:1", "/metrics", basic("u", "pw2")); got != 200 {
		t.Errorf("new password after reload: %d, want 200", got)
	}
	os.WriteFile(file, []byte("u:plaintext\n"), 0o600)
	if err := g.Reload(); err == nil || !strings.Contains(err.Error(), "line 1: not a bcrypt hash") {
		t.Errorf("Reload() with a plain password = %v, want it refused with its line", err)
	}
	if got := guardRequest(g, "192.0.2.1:1", "/metrics", basic("u", "pw2")); got != 200 {
		t.Errorf("after a refused reload: %d, want 200 with the previous file's password", got)
	}
}

func TestGuardBearerTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("short"), 0o600)
	if _, err := NewGuard(config.Admin{Auth: config.AdminAuth{BearerTokenFile: file}}, nil); err == nil {
		t.Error("a 5-character token was accepted")
	}
	if _, err := NewGuard(config.Admin{Auth: config.AdminAuth{BearerTokenFile: file + ".missing"}}, nil); err == nil ||
		!strings.Contains(err.Error(), "bearer_token_file") {
		t.Errorf("missing token file: %v, want an error naming the key", err)
	}
}
