package test

import (
	"fmt"
	"strings"
	"testing"
)

// A backend that refuses connections has seen nothing of the request, so the
// request goes to another backend: clients see no error, and the refusing
// backend is ejected (shardgate_backend_up 0) instead of taking its share.
func TestConnectFailureFailsOver(t *testing.T) {
	live := NewRecorder(t, nil)
	dead := closedAddr(t)
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    balancer: round_robin
    backends: [{address: %s}, {address: %s}]
routes: [{upstream: app}]
`, dead, live.Addr()))
	for i := range 20 {
		if code, body := get(t, g.URL+"/"); code != 200 || body != "ok" {
			t.Fatalf("request %d = %d %q, want 200 ok", i, code, body)
		}
	}
	if n := live.Count(); n != 20 {
		t.Fatalf("live backend served %d, want 20", n)
	}
	m := g.Metrics(t)
	for _, want := range []string{
		fmt.Sprintf(`shardgate_backend_up{backend=%q,upstream="app"} 0`, dead),
		fmt.Sprintf(`shardgate_backend_errors_total{backend=%q,kind="connect",upstream="app"} 1`, dead),
		`shardgate_requests_total{code="200",upstream="app"} 20`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// With its only backend refusing, a request gets 502; while the backend is
// ejected the next ones get 503 no healthy backend with Retry-After.
func TestOnlyBackendDown(t *testing.T) {
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    backends: [{address: %s}]
routes: [{upstream: app}]
`, closedAddr(t)))
	if code, body := get(t, g.URL+"/"); code != 502 || body != "backend unreachable\n" {
		t.Fatalf("first = %d %q, want 502 backend unreachable", code, body)
	}
	stdout, _, _ := Curl(t, "-i", g.URL+"/")
	if !strings.HasPrefix(stdout, "HTTP/1.1 503") || !strings.Contains(stdout, "Retry-After: ") ||
		!strings.HasSuffix(stdout, "no healthy backend\n") {
		t.Fatalf("second = %q, want 503 no healthy backend with Retry-After", stdout)
	}
	if m := g.Metrics(t); !strings.Contains(m, `shardgate_requests_shed_total{reason="no_backend",upstream="app"} 1`) {
		t.Error("no_backend shed not counted")
	}
}
