package admin

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"shardgate/metrics"
)

//go:embed status.html
var statusPage []byte

// statusPageCSP lets the status page run its inline script and style and talk
// only to the server it came from.
const statusPageCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Server is the admin HTTP server: /metrics, /healthz, /readyz and /status.
// It is safe for concurrent use.
type Server struct {
	srv      *http.Server
	metrics  http.Handler // GET /metrics; nil: 404
	profiles http.Handler // GET /debug/pprof/ (the index and named profiles)
}

// NewServer returns a Server exposing m's registry on /metrics (omitted when m
// is nil), snapshot() on /status and ready() on /readyz.
func NewServer(m *metrics.Metrics, snapshot func() metrics.Snapshot, ready func() bool) *Server {
	s := &Server{profiles: Profiles()}
	if m != nil {
		s.SetGatherer(m.Registry())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.metrics == nil {
			http.NotFound(w, r)
			return
		}
		s.metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready == nil || !ready() {
			writeText(w, http.StatusServiceUnavailable, "not ready")
			return
		}
		writeText(w, http.StatusOK, "ready")
	})
	mux.Handle("GET /status", statusHandler(snapshot))
	// Profiles for operators, on the admin listener (loopback by default).
	mux.HandleFunc("GET /debug/pprof/", func(w http.ResponseWriter, r *http.Request) { s.profiles.ServeHTTP(w, r) })
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	return s
}

// SetGatherer serves g on /metrics (the supervisor of `processes: N`
// gathers its workers'); call it before Serve.
func (s *Server) SetGatherer(g prometheus.Gatherer) {
	s.metrics = promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// Profiles serves this process's profiles under /debug/pprof/: the index,
// the named ones, CPU and trace.
func Profiles() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// SetProfiles serves h on /debug/pprof/ in place of Profiles (the
// supervisor of `processes: N` proxies ?worker=N); call it before Serve.
func (s *Server) SetProfiles(h http.Handler) { s.profiles = h }

// Handler returns the server's routes, for tests or for mounting elsewhere.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Serve answers admin requests on ln until Shutdown, then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server gracefully: it closes the listener and waits for
// active requests until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

func writeText(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
}

func statusHandler(snapshot func() metrics.Snapshot) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Add("Vary", "Accept")
		if wantsHTML(r) {
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Security-Policy", statusPageCSP)
			h.Set("Content-Length", strconv.Itoa(len(statusPage)))
			_, _ = w.Write(statusPage)
			return
		}
		var snap metrics.Snapshot
		if snapshot != nil {
			snap = snapshot()
		}
		body, err := json.MarshalIndent(snap, "", "  ")
		if err != nil {
			writeText(w, http.StatusInternalServerError, "encoding status failed")
			return
		}
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(append(body, '\n'))
	})
}

// wantsHTML reports whether r asks for the status page rather than JSON:
// ?format=html or ?format=json decide; otherwise the Accept header must rank
// text/html strictly above application/json.
func wantsHTML(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "html":
		return true
	case "json":
		return false
	}
	accept := r.Header.Get("Accept")
	return acceptQuality(accept, "text", "html") > acceptQuality(accept, "application", "json")
}

// acceptQuality returns the q-value the Accept header gives typ/sub, taking the
// most specific matching media range (RFC 9110 section 12.5.1); 0 if none.
func acceptQuality(accept, typ, sub string) float64 {
	best, bestRank := 0.0, -1
	for _, part := range strings.Split(accept, ",") {
		mediaRange, params, _ := strings.Cut(part, ";")
		t, s, _ := strings.Cut(strings.TrimSpace(mediaRange), "/")
		rank := matchRank(t, s, typ, sub)
		if rank <= bestRank {
			continue
		}
		best, bestRank = parseQ(params), rank
	}
	return best
}

// matchRank is 2 for an exact match, 1 for type/*, 0 for */*, -1 for no match.
func matchRank(t, s, typ, sub string) int {
	switch {
	case strings.EqualFold(t, typ) && strings.EqualFold(s, sub):
		return 2
	case strings.EqualFold(t, typ) && s == "*":
		return 1
	case t == "*" && s == "*":
		return 0
	}
	return -1
}

func parseQ(params string) float64 {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}
