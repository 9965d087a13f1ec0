package admin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"shardgate/config"
	"shardgate/metrics"
)

// Guard decides who may use the admin listener: the client network
// (admin.allow, and admin.metrics_allow for /metrics, /healthz and /readyz),
// then credentials (admin.auth) on every path but /healthz and /readyz, then
// whether /debug/pprof/ is served at all (admin.pprof). Refusals are counted
// in shardgate_admin_refused_total. Safe for concurrent use.
type Guard struct {
	allow, metricsAllow []netip.Prefix
	pprof               bool
	auth                config.AdminAuth
	creds               atomic.Pointer[credentials]
	forbidden           prometheus.Counter
	unauthorized        prometheus.Counter

	// bcrypt costs tens of milliseconds: at most two run at once, and a
	// password once verified is remembered (by its SHA-256) until the file
	// is reloaded, so a scraper costs one bcrypt per reload.
	sem chan struct{}
}

// credentials is one generation of the secret files, never modified once
// published.
type credentials struct {
	token  []byte            // bearer token; nil for basic auth
	hashes map[string][]byte // user → bcrypt hash
	mu     sync.Mutex        // protects ok
	ok     map[string][sha256.Size]byte
}

// NewGuard reads a's secret files and registers the refusal counter on reg
// (nil: nothing is counted).
func NewGuard(a config.Admin, reg prometheus.Registerer) (*Guard, error) {
	g := &Guard{allow: a.Allow, metricsAllow: a.MetricsAllow, pprof: a.Pprof, auth: a.Auth, sem: make(chan struct{}, 2)}
	if g.allow == nil {
		g.allow = config.Loopback
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	v := metrics.NewAdminRefused(reg)
	g.forbidden, g.unauthorized = v.WithLabelValues("403"), v.WithLabelValues("401")
	if err := g.Reload(); err != nil {
		return nil, err
	}
	return g, nil
}

// Reload reads the secret files again (SIGHUP). On failure the previous
// secrets stay in force and the error names the file.
func (g *Guard) Reload() error {
	var c *credentials
	var err error
	switch {
	case g.auth.BearerTokenFile != "":
		c, err = readToken(g.auth.BearerTokenFile)
	case g.auth.BasicAuthFile != "":
		c, err = readHtpasswd(g.auth.BasicAuthFile)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	g.creds.Store(c)
	return nil
}

func readToken(path string) (*credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin.auth.bearer_token_file: %w", err)
	}
	tok := bytes.TrimSpace(b)
	if len(tok) < 16 {
		return nil, fmt.Errorf("admin.auth.bearer_token_file: %s: token must be at least 16 characters", path)
	}
	return &credentials{token: tok}, nil
}

func readHtpasswd(path string) (*credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin.auth.basic_auth_file: %w", err)
	}
	c := &credentials{hashes: map[string][]byte{}, ok: map[string][sha256.Size]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		user, hash, ok := strings.Cut(text, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("admin.auth.basic_auth_file: %s line %d: want user:bcrypt-hash", path, line)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("admin.auth.basic_auth_file: %s line %d: not a bcrypt hash (use htpasswd -B)", path, line)
		}
		c.hashes[user] = []byte(hash)
	}
	if len(c.hashes) == 0 {
		return nil, fmt.Errorf("admin.auth.basic_auth_file: %s: no users", path)
	}
	return c, nil
}

// Wrap returns next behind the guard.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		probe := path == "/healthz" || path == "/readyz"
		ip := clientIP(r)
		if !inAny(ip, g.allow) && !((probe || path == "/metrics") && inAny(ip, g.metricsAllow)) {
			g.forbidden.Inc()
			writeText(w, http.StatusForbidden, "forbidden")
			return
		}
		if c := g.creds.Load(); c != nil && !probe && !g.authorized(c, r) {
			g.unauthorized.Inc()
			scheme := `Bearer realm="shardgate"`
			if c.token == nil {
				scheme = `Basic realm="shardgate", charset="UTF-8"`
			}
			w.Header().Set("WWW-Authenticate", scheme)
			writeText(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		if !g.pprof && strings.HasPrefix(path, "/debug/") {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Guard) authorized(c *credentials, r *http.Request) bool {
	if c.token != nil {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), c.token) == 1
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	hash, known := c.hashes[user]
	if !known {
		return false
	}
	sum := sha256.Sum256([]byte(pass))
	c.mu.Lock()
	prev, seen := c.ok[user]
	c.mu.Unlock()
	if seen && subtle.ConstantTimeCompare(prev[:], sum[:]) == 1 {
		return true
	}
	select {
	case g.sem <- struct{}{}:
	case <-r.Context().Done():
		return false
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	<-g.sem
	if err != nil {
		return false
	}
	c.mu.Lock()
	c.ok[user] = sum
	c.mu.Unlock()
	return true
}

func clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func inAny(ip netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// SetGuard puts g in front of every route; call it once, before Serve.
func (s *Server) SetGuard(g *Guard) {
	s.srv.Handler = g.Wrap(s.srv.Handler)
}

// SetErrorLog sets where the HTTP server logs connection errors (failed TLS
// handshakes among them); call it before Serve.
func (s *Server) SetErrorLog(l *log.Logger) { s.srv.ErrorLog = l }
