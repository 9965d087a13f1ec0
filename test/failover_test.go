package test

import (
	"fmt"
	"strings"
	"testing"
)

// A backend that refuses connections has seen nothing of the request, so the
// request goes to another backend: clients see no error, and the refusing
// backend is ejected at its first refusal (shardgate_backend_up 0) instead
// of taking its share.
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

// With its only backend refusing, a request gets 502, and so does the next:
// the last backend of an upstream is never ejected, so it is served again as
// soon as it comes back (see TestOnlyBackendRestartServedAtOnce).
func TestOnlyBackendDown(t *testing.T) {
	dead := closedAddr(t)
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    backends: [{address: %s}]
routes: [{upstream: app}]
`, dead))
	for i := range 5 {
		if code, body := get(t, g.URL+"/"); code != 502 || body != "backend unreachable\n" {
			t.Fatalf("request %d = %d %q, want 502 backend unreachable", i, code, body)
		}
	}
	m := g.Metrics(t)
	if strings.Contains(m, `shardgate_requests_shed_total{reason="no_backend",upstream="app"} 1`) ||
		!strings.Contains(m, `shardgate_requests_total{code="502",upstream="app"} 5`) {
		t.Error("the only backend was ejected: no_backend shed counted")
	}
	if want := fmt.Sprintf(`shardgate_backend_up{backend=%q,upstream="app"} 1`, dead); !strings.Contains(m, want) {
		t.Errorf("metrics lack %q", want)
	}
}
