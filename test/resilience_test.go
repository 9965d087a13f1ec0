package test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/loadgen"
	"shardgate/internal/wait"
)

// Regression: a single-backend site answered 503 "no healthy backend" for
// 2s after its gunicorn came back from a restart, because the refused
// connect had ejected the only backend. The last backend is never ejected:
// the first request after it is back is served.
func TestOnlyBackendRestartServedAtOnce(t *testing.T) {
	addr := closedAddr(t)
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    backends: [{address: %s}]
routes: [{upstream: app}]
`, addr))
	for i := range 4 { // more than outlier_detection.consecutive
		if code, _ := get(t, g.URL+"/"); code != 502 {
			t.Fatalf("request %d while down = %d, want 502", i, code)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the backend's port was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "back")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if code, body := get(t, g.URL+"/"); code != 200 || body != "back" {
		t.Fatalf("first request after the restart = %d %q, want 200 back", code, body)
	}
}

// processTree returns pid and its children (gunicorn's workers).
func processTree(t *testing.T, pid int) []int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatalf("listing the children of %d: %v", pid, err)
	}
	pids := []int{pid}
	for _, f := range strings.Fields(string(b)) {
		n, _ := strconv.Atoi(f)
		pids = append(pids, n)
	}
	return pids
}

// signalAll sends sig to every pid, children first.
func signalAll(t *testing.T, pids []int, sig syscall.Signal) {
	t.Helper()
	for i := len(pids) - 1; i >= 0; i-- {
		if err := syscall.Kill(pids[i], sig); err != nil {
			t.Fatalf("kill(%d, %v): %v", pids[i], sig, err)
		}
	}
}

// freeze stops a gunicorn master and its workers (the kernel still accepts
// connections for them) and thaws them at cleanup if the test did not.
func freeze(t *testing.T, a *gunicornApp) (thaw func()) {
	pids := processTree(t, a.cmd.Process.Pid)
	signalAll(t, pids, syscall.SIGSTOP)
	var once sync.Once
	thaw = func() { once.Do(func() { signalAll(t, pids, syscall.SIGCONT) }) }
	t.Cleanup(thaw)
	return thaw
}

// backendUp returns shardgate_backend_up of addr in upstream app.
func backendUp(t *testing.T, g *Gateway, addr string) (float64, bool) {
	return parseMetrics(t, g.Metrics(t)).value("shardgate_backend_up", map[string]string{"upstream": "app", "backend": addr})
}

func checkedConfig(apps []*gunicornApp, extra string) string {
	var backends []string
	for _, a := range apps {
		backends = append(backends, fmt.Sprintf("{address: %q, max_inflight: %d}", a.Addr, gunicornLimit))
	}
	return fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    queue: {timeout: 10s}
    response_timeout: 3s
    health_check: {path: /, interval: 500ms, timeout: 300ms, rise: 2, fall: 2}
    outlier_detection: {consecutive: 0}
%s    backends: [%s]
routes: [{upstream: app}]
`, extra, strings.Join(backends, ", "))
}

// The checks' bound for noticing a frozen backend, fall × interval +
// timeout, plus slack for two shared cores and the metrics scrape.
const frozenBound = 2*500*time.Millisecond + 300*time.Millisecond + 700*time.Millisecond

// TestHealthCheckFrozenBackend freezes one of two gunicorns with SIGSTOP
// (master and workers) under steady load: the checks mark it down within
// their bound and no request fails after that; thawed, it comes back after
// rise checks and takes traffic again. "at its limit" freezes it while
// more clients than slots keep both backends full.
func TestHealthCheckFrozenBackend(t *testing.T) {
	for _, tc := range []struct {
		name    string
		clients int
	}{{"steady", 2}, {"at its limit", 8}} {
		t.Run(tc.name, func(t *testing.T) {
			apps := startGunicorns(t, 2)
			g := StartGateway(t, checkedConfig(apps, ""))
			frozen, live := apps[0], apps[1]
			cl := loadgen.ClosedLoop{URL: g.URL + "/work?ms=20", Clients: tc.clients, Duration: 8 * time.Second,
				MaxRequests: 20000, Timeout: 15 * time.Second}
			var rs []loadgen.Result
			done := make(chan struct{})
			go func() { defer close(done); rs, _ = cl.Run(loadContext(t)) }()
			time.Sleep(time.Second)

			thaw := freeze(t, frozen)
			frozenAt := time.Now()
			wait.For(t, "the frozen backend to be marked down", func() bool {
				v, _ := backendUp(t, g, frozen.Addr)
				return v == 0
			})
			downAt := time.Now()
			if took := downAt.Sub(frozenAt); took > frozenBound {
				t.Errorf("frozen backend marked down after %v, want within %v", took, frozenBound)
			}
			if _, status := get(t, g.AdminURL+"/status"); !strings.Contains(status, `"reason": "2 checks failed: `) {
				t.Errorf("/status does not give the reason the backend is down:\n%s", status)
			}
			time.Sleep(2 * time.Second)
			thaw()
			before := frozen.stats(t).Served
			wait.For(t, "the thawed backend to come back", func() bool {
				v, _ := backendUp(t, g, frozen.Addr)
				return v == 1
			})
			<-done
			failed := 0
			for _, r := range rs {
				if r.Start.After(downAt) && (r.Kind != loadgen.KindNone || r.Status != 200) {
					failed++
				}
			}
			if failed > 0 {
				t.Errorf("%d requests sent after the backend was marked down failed, want 0", failed)
			}
			if after := frozen.stats(t).Served; after <= before {
				t.Errorf("thawed backend served %d requests after it came back, want traffic", after-before)
			}
			if live.stats(t).Served == 0 {
				t.Error("the live backend served nothing")
			}
		})
	}
}

// TestHealthCheckUnderOverload saturates both backends with requests that
// run longer than a check's timeout, so a check waits in gunicorn's backlog
// behind them and times out. The checks are load-aware: every backend is at
// its limit and answering, so no check counts as failed and no backend is
// marked down.
func TestHealthCheckUnderOverload(t *testing.T) {
	apps := startGunicorns(t, 2)
	g := StartGateway(t, checkedConfig(apps, ""))
	cl := loadgen.ClosedLoop{URL: g.URL + "/work?ms=600", Clients: 12, Duration: 5 * time.Second,
		MaxRequests: 2000, Timeout: 15 * time.Second}
	done := make(chan struct{})
	var rs []loadgen.Result
	go func() { defer close(done); rs, _ = cl.Run(loadContext(t)) }()
	for {
		select {
		case <-done:
			checkOutcomes(t, rs, "200", "503") // 503: the queue sheds under overload
			if strings.Contains(g.Logs(), "checks failed") {
				t.Errorf("a check failed under load; logs:\n%s", g.Logs())
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		for _, a := range apps {
			if v, _ := backendUp(t, g, a.Addr); v != 1 {
				<-done
				t.Fatalf("backend %s marked down under overload", a.Addr)
			}
		}
	}
}

// Health state survives SIGHUP for a backend that keeps its address: one
// marked down stays down through the reload. A backend the reload adds
// starts up and is checked at once, not an interval later.
func TestHealthCheckStateSurvivesReload(t *testing.T) {
	var checksB atomic.Int64
	a := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	b := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			checksB.Add(1)
		}
	})
	cfg := func(backends string) string {
		return loopbackListeners + `upstreams:
  app:
    health_check: {path: /health, interval: 5s, timeout: 1s, fall: 1, rise: 1}
    backends: [` + backends + `]
routes: [{upstream: app}]
`
	}
	g := StartGateway(t, cfg("{address: "+a.Addr()+"}"))
	wait.For(t, "a to be marked down", func() bool { v, _ := backendUp(t, g, a.Addr()); return v == 0 })
	g.Reload(t, cfg("{address: "+a.Addr()+"}, {address: "+b.Addr()+"}"))
	g.WaitForLog(t, "reloaded", 10*time.Second)
	reloaded := time.Now()
	if v, _ := backendUp(t, g, a.Addr()); v != 0 {
		t.Error("the down backend is up again after the reload, before any check")
	}
	if v, _ := backendUp(t, g, b.Addr()); v != 1 {
		t.Error("the added backend is not up before its first check")
	}
	wait.For(t, "the added backend's first check", func() bool { return checksB.Load() > 0 })
	if took := time.Since(reloaded); took > 2*time.Second {
		t.Errorf("added backend first checked %v after the reload, want at once (interval is 5s)", took)
	}
}
