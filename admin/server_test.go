package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"shardgate/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startServer serves s on a loopback port and returns its base URL.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen() error = %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown() error = %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve() after Shutdown = %v, want nil", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("NewRequest(%s) error = %v", url, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s error = %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp, string(body)
}

func TestHealthAndReadiness(t *testing.T) {
	var ready atomic.Bool
	base := startServer(t, NewServer(metrics.NewMetrics("test"), fakeSnapshot, ready.Load))
	tests := []struct {
		path     string
		ready    bool
		wantCode int
		wantBody string
	}{
		{"/healthz", false, 200, "ok"},
		{"/readyz", false, 503, "not ready"},
		{"/readyz", true, 200, "ready"},
		{"/healthz", true, 200, "ok"},
		{"/readyz", false, 503, "not ready"}, // shutting down
	}
	for _, tt := range tests {
		ready.Store(tt.ready)
		resp, body := get(t, base+tt.path, nil)
		if resp.StatusCode != tt.wantCode || body != tt.wantBody {
			t.Errorf("GET %s (ready=%v) = %d %q, want %d %q", tt.path, tt.ready, resp.StatusCode, body, tt.wantCode, tt.wantBody)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	srv := httptest.NewServer(NewServer(nil, nil, nil).Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+"/healthz", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatalf("POST /healthz error = %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	m := metrics.NewMetrics("9.9.9")
	m.SetSource(fakeSnapshot)
	m.Upstream("app", []string{"10.0.0.1:80"}).Request(200, time.Millisecond)
	base := startServer(t, NewServer(m, fakeSnapshot, func() bool { return true }))
	resp, body := get(t, base+"/metrics", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %q, want 200 text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, line := range []string{
		`shardgate_requests_total{code="200",upstream="app"} 1`,
		`shardgate_queue_length{upstream="app"} 12`,
		`shardgate_build_info{goversion="`,
		`version="9.9.9"} 1`,
		"go_goroutines ",
	} {
		if !strings.Contains(body, line) {
			t.Errorf("GET /metrics body lacks %q", line)
		}
	}
}

func TestStatusJSONMatchesSnapshot(t *testing.T) {
	base := startServer(t, NewServer(nil, fakeSnapshot, nil))
	for _, accept := range []string{"", "*/*", "application/json", "text/html;q=0.5, application/json"} {
		t.Run("Accept="+accept, func(t *testing.T) {
			resp, body := get(t, base+"/status", http.Header{"Accept": {accept}})
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/json" {
				t.Fatalf("GET /status = %d %q, want 200 application/json", resp.StatusCode, ct)
			}
			var got metrics.Snapshot
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("decoding /status: %v", err)
			}
			if want := fakeSnapshot(); !reflect.DeepEqual(got, want) {
				t.Errorf("/status = %+v, want %+v", got, want)
			}
			if !strings.Contains(body, "\n  \"listeners\"") {
				t.Errorf("/status is not pretty-printed:\n%s", body)
			}
		})
	}
}

func TestStatusJSONFieldNames(t *testing.T) {
	base := startServer(t, NewServer(nil, fakeSnapshot, nil))
	_, body := get(t, base+"/status?format=json", http.Header{"Accept": {"text/html"}})
	for _, field := range []string{`"accepted_per_shard"`, `"open_connections"`, `"max_inflight"`, `"queue_length"`,
		`"queue_max"`, `"lifo"`, `"shed"`, `"queue_full"`, `"limit"`, `"up"`, `"errors"`} {
		if !strings.Contains(body, field) {
			t.Errorf("/status?format=json lacks field %s", field)
		}
	}
}

// externalRef finds anything that would make the page load a resource from
// elsewhere.
var externalRef = regexp.MustCompile(`(?i)(src|href|action)\s*=|https?:|url\(|@import|innerHTML|insertAdjacentHTML|document\.write`)

func TestStatusHTML(t *testing.T) {
	base := startServer(t, NewServer(nil, fakeSnapshot, nil))
	browser := "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	tests := []struct {
		name, query, accept string
	}{
		{"format=html", "?format=html", "application/json"},
		{"browser Accept", "", browser},
		{"text/* Accept", "", "text/*, application/json;q=0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, base+"/status"+tt.query, http.Header{"Accept": {tt.accept}})
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/html; charset=utf-8" {
				t.Fatalf("GET /status%s = %d %q, want 200 text/html", tt.query, resp.StatusCode, ct)
			}
			if !strings.Contains(body, "<!DOCTYPE html>") || !strings.Contains(body, "status?format=json") {
				t.Errorf("GET /status%s is not the status page", tt.query)
			}
			if m := externalRef.FindString(body); m != "" {
				t.Errorf("status page contains %q: want no external or markup-injecting references", m)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("Content-Security-Policy = %q, want default-src 'none'", csp)
			}
		})
	}
}

func TestAcceptNegotiation(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"*/*", false},
		{"application/json", false},
		{"text/html", true},
		{"TEXT/HTML", true},
		{"text/html;q=0", false},
		{"text/html;q=0.4, application/json;q=0.5", false},
		{"application/json;q=0.5, text/html", true},
		{"text/*;q=0.9, */*;q=0.1", true},
		{"text/html;q=bogus, */*", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/status", nil)
		r.Header.Set("Accept", tt.accept)
		if got := wantsHTML(r); got != tt.want {
			t.Errorf("wantsHTML(Accept: %q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

func TestServeReturnsErrorOnClosedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen() error = %v", err)
	}
	ln.Close()
	err = NewServer(nil, nil, nil).Serve(ln)
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve(closed listener) = %v, want an accept error", err)
	}
}

// fakeSnapshot is a fixed state with one of everything the status page draws.
func fakeSnapshot() metrics.Snapshot {
	return metrics.Snapshot{
		Version: "test",
		Ready:   true,
		Listeners: []metrics.ListenerStatus{
			{Address: "127.0.0.1:8080", Accepted: []uint64{10, 7}, Open: 3},
		},
		Upstreams: []metrics.UpstreamStatus{{
			Name: "app", Balancer: "least_inflight",
			Inflight: 5, QueueLength: 12, QueueMax: 100, LIFO: true,
			Requests: 99, Shed: map[string]uint64{"queue_full": 4},
			Backends: []metrics.BackendStatus{
				{Address: "10.0.0.1:80", Limit: 4, Inflight: 4, Up: true, Requests: 60, Errors: 1},
				{Address: "10.0.0.2:80", Limit: 0, Inflight: 1, Up: false, Requests: 39},
			},
		}},
	}
}
