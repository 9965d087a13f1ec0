package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"shardgate/internal/dnstest"
	"shardgate/internal/wait"
)

// The tests in this file run the gateway with upstreams.app.discover against
// a real DNS server on loopback (internal/dnstest, in the test process), the
// way a Kubernetes headless service is resolved.

// discoverInterval is the tests' discover.interval.
const discoverInterval = 500 * time.Millisecond

// startGunicornsOnOnePort starts one gunicorn (app/app.py, gunicornWorkers
// sync workers) on each of hosts, all on the same port as behind an A
// record set, and returns them with the port.
func startGunicornsOnOnePort(t *testing.T, hosts ...string) ([]*gunicornApp, string) {
	t.Helper()
	python, appDir := flaskApp(t)
	for attempt := 1; ; attempt++ {
		_, port, _ := net.SplitHostPort(closedAddr(t))
		apps := make([]*gunicornApp, len(hosts))
		for i, h := range hosts {
			apps[i] = launchGunicornAt(t, python, appDir, net.JoinHostPort(h, port))
		}
		var errs []error
		for _, a := range apps {
			if err := a.waitUp(20 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("gunicorn on %s: %w; log:\n%s", a.Addr, err, a.log()))
			}
		}
		err := errors.Join(errs...)
		if err == nil {
			return apps, port
		}
		for _, a := range apps {
			a.stop(t)
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatal(err)
		}
	}
}

func discoverConfig(resolver, name, port string, limit int) string {
	portKey := ""
	if port != "" {
		portKey = "port: " + port + ", "
	}
	return fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    queue: {timeout: 10s}
    discover: {dns: %q, %sinterval: %v, resolver: %q, max_inflight: %d}
routes:
  - upstream: app
`, name, portKey, discoverInterval, resolver, limit)
}

// discoveryView is the part of /status?format=json these tests read.
type discoveryView struct {
	Upstreams []struct {
		Backends []struct {
			Address  string `json:"address"`
			Limit    int64  `json:"limit"`
			Requests uint64 `json:"requests"`
		} `json:"backends"`
		Discovery *struct {
			DNS       string            `json:"dns"`
			Backends  int               `json:"backends"`
			Lookups   map[string]uint64 `json:"lookups"`
			LastError string            `json:"last_error"`
		} `json:"discovery"`
	} `json:"upstreams"`
}

func discoveryStatus(t *testing.T, g *Gateway) discoveryView {
	t.Helper()
	code, body := get(t, g.AdminURL+"/status?format=json")
	var v discoveryView
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || len(v.Upstreams) != 1 ||
		v.Upstreams[0].Discovery == nil {
		t.Fatalf("GET /status = %d, %v: %s", code, err, body)
	}
	return v
}

// backendsOf returns the addresses the gateway routes to now.
func backendsOf(t *testing.T, g *Gateway) []string {
	t.Helper()
	var out []string
	for _, b := range discoveryStatus(t, g).Upstreams[0].Backends {
		out = append(out, b.Address)
	}
	return out
}

// fire sends n GETs of path, c at a time, and returns their status codes.
func fire(t *testing.T, url string, n, c int) map[int]int {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	var mu sync.Mutex
	codes := map[int]int{}
	sem := make(chan struct{}, c)
	var wg sync.WaitGroup
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			code := 0
			if resp, err := client.Get(url); err == nil {
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes
}

// served returns how many requests each app has served.
func served(t *testing.T, apps []*gunicornApp) []int {
	t.Helper()
	out := make([]int, len(apps))
	for i, a := range apps {
		out[i] = a.stats(t).Served
	}
	return out
}

// A record set going from two backends to three and back: traffic follows
// within the interval, requests running on the removed backend finish
// there, nothing new reaches it; a reload keeps the discovered backends and
// their state; a failing DNS server changes nothing; a name without
// addresses leaves no backend (503) until it has some again.
func TestDNSDiscoveryFollowsTheRecordSet(t *testing.T) {
	apps, port := startGunicornsOnOnePort(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	dns := dnstest.Start(t)
	dns.SetAddrs("app.test", "127.0.0.2", "127.0.0.3")
	g := StartGateway(t, discoverConfig(dns.Addr, "app.test.", port, gunicornLimit))
	third := "127.0.0.4:" + port

	// Two backends.
	if codes := fire(t, g.URL+"/work?ms=5", 40, 4); codes[200] != 40 {
		t.Fatalf("with two backends: codes %v, want 40 × 200", codes)
	}
	if n := served(t, apps); n[0] == 0 || n[1] == 0 || n[2] != 0 {
		t.Fatalf("served per app %v, want both listed backends and not the third", n)
	}
	m := parseMetrics(t, g.Metrics(t))
	checkMetric(t, m, "shardgate_discovery_backends", map[string]string{"upstream": "app"}, 2)

	// Three: the third gets traffic within the interval (and the time a
	// lookup and a request take).
	added := time.Now()
	dns.SetAddrs("app.test", "127.0.0.2", "127.0.0.3", "127.0.0.4")
	for apps[2].stats(t).Served == 0 {
		if time.Since(added) > 4*discoverInterval {
			t.Fatalf("the third backend got no request %v after it was added; gateway routes to %v",
				time.Since(added), backendsOf(t, g))
		}
		fire(t, g.URL+"/work?ms=5", 6, 6)
	}
	t.Logf("third backend served its first request %v after its record appeared (interval %v)",
		time.Since(added).Round(time.Millisecond), discoverInterval)

	// Fill every slot (2 per backend) with slow requests, then remove the
	// third: its two finish there, and no new request reaches it.
	before := served(t, apps)
	slow := make(chan map[int]int, 1)
	go func() { slow <- fire(t, g.URL+"/work?ms=2500", 6, 6) }()
	wait.For(t, "two slow requests running on the third backend", func() bool {
		return apps[2].stats(t).Inflight == gunicornLimit
	})
	dns.SetAddrs("app.test", "127.0.0.2", "127.0.0.3")
	wait.For(t, "the third backend removed", func() bool {
		return !strings.Contains(strings.Join(backendsOf(t, g), " "), third) &&
			discoveryStatus(t, g).Upstreams[0].Discovery.Backends == 2
	})
	if got := apps[2].stats(t).Inflight; got != gunicornLimit {
		t.Fatalf("the removed backend runs %d requests, want its %d to go on", got, gunicornLimit)
	}
	if codes := fire(t, g.URL+"/work?ms=5", 20, 4); codes[200] != 20 {
		t.Fatalf("after the removal: codes %v, want 20 × 200 (queued behind the slow ones)", codes)
	}
	if codes := <-slow; codes[200] != 6 {
		t.Fatalf("slow requests: codes %v, want 6 × 200: removal must not cut requests in flight", codes)
	}
	after := served(t, apps)
	if after[2]-before[2] != gunicornLimit {
		t.Fatalf("the removed backend served %d requests since the slow ones started, want exactly its %d in flight",
			after[2]-before[2], gunicornLimit)
	}
	for _, a := range apps {
		if s := a.stats(t); s.MaxInflight > gunicornLimit {
			t.Errorf("app %s ran %d requests at once, over its limit %d", a.Addr, s.MaxInflight, gunicornLimit)
		}
	}
	m = parseMetrics(t, g.Metrics(t))
	checkMetric(t, m, "shardgate_discovery_backends", map[string]string{"upstream": "app"}, 2)
	if _, ok := m.value("shardgate_backend_max_inflight", map[string]string{"upstream": "app", "backend": third}); ok {
		t.Errorf("metrics still have a series of the removed backend %s", third)
	}

	// A reload with the same discover keeps the watcher and the backends'
	// state, and applies a new limit to the discovered backends.
	v := discoveryStatus(t, g).Upstreams[0]
	lookups := v.Discovery.Lookups["ok"]
	requests := v.Backends[0].Requests
	g.Reload(t, discoverConfig(dns.Addr, "app.test.", port, 1))
	wait.For(t, "the reload applied", func() bool {
		u := discoveryStatus(t, g).Upstreams[0]
		return len(u.Backends) == 2 && u.Backends[0].Limit == 1 && u.Backends[1].Limit == 1
	})
	v = discoveryStatus(t, g).Upstreams[0]
	if v.Discovery.Lookups["ok"] < lookups || v.Backends[0].Requests < requests {
		t.Fatalf("after the reload: %d lookups, %d requests on %s; want at least %d and %d (state kept)",
			v.Discovery.Lookups["ok"], v.Backends[0].Requests, v.Backends[0].Address, lookups, requests)
	}

	// SERVFAIL: the backends stay, the failures are counted.
	dns.SetFailing("app.test", true)
	wait.For(t, "two failed lookups", func() bool {
		return discoveryStatus(t, g).Upstreams[0].Discovery.Lookups["error"] >= 2
	})
	if codes := fire(t, g.URL+"/work?ms=1", 10, 2); codes[200] != 10 {
		t.Fatalf("while DNS fails: codes %v, want 10 × 200 on the backends it had", codes)
	}
	if d := discoveryStatus(t, g).Upstreams[0].Discovery; d.Backends != 2 || d.LastError == "" {
		t.Fatalf("while DNS fails: discovery %+v, want 2 backends and the error", d)
	}
	g.WaitForLog(t, "DNS discovery failed", 5*time.Second)

	// NXDOMAIN: no backend, 503 at once; the records back: 200.
	dns.SetFailing("app.test", false)
	dns.Remove("app.test")
	wait.For(t, "no backends", func() bool {
		return len(backendsOf(t, g)) == 0 && discoveryStatus(t, g).Upstreams[0].Discovery.Backends == 0
	})
	if code, body := get(t, g.URL+"/work"); code != http.StatusServiceUnavailable {
		t.Fatalf("without backends: GET = %d %q, want 503", code, body)
	}
	m = parseMetrics(t, g.Metrics(t))
	checkMetric(t, m, "shardgate_discovery_backends", map[string]string{"upstream": "app"}, 0)
	checkMetric(t, m, "shardgate_requests_shed_total", map[string]string{"upstream": "app", "reason": "no_backend"}, 1)
	dns.SetAddrs("app.test", "127.0.0.3")
	wait.For(t, "a backend again", func() bool { code, _ := get(t, g.URL+"/work"); return code == 200 })
}

// SRV records (discover without port): ports come from the records; a
// gateway started while the name has no records serves 503 until it has.
func TestDNSDiscoverySRV(t *testing.T) {
	a := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "a") })
	b := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "b") })
	dns := dnstest.Start(t)
	g := StartGateway(t, discoverConfig(dns.Addr, "_http._tcp.app.test.", "", 0))
	if code, _ := get(t, g.URL+"/"); code != http.StatusServiceUnavailable {
		t.Fatalf("before any record: GET = %d, want 503", code)
	}
	srv := func(r *Recorder) dnstest.SRV {
		_, p, _ := net.SplitHostPort(r.Addr())
		var port uint16
		fmt.Sscan(p, &port)
		return dnstest.SRV{Target: "node.test", Port: port}
	}
	dns.SetAddrs("node.test", "127.0.0.1")
	dns.SetSRV("_http._tcp.app.test", srv(a), srv(b))
	wait.For(t, "both backends", func() bool { return len(backendsOf(t, g)) == 2 })
	bodies := map[string]int{}
	for range 20 {
		_, body := get(t, g.URL+"/")
		bodies[body]++
	}
	if bodies["a"] == 0 || bodies["b"] == 0 || bodies["a"]+bodies["b"] != 20 {
		t.Fatalf("bodies %v, want both SRV targets to serve", bodies)
	}
	d := discoveryStatus(t, g).Upstreams[0].Discovery
	if d.Lookups["empty"] == 0 || d.Lookups["ok"] == 0 || d.DNS != "_http._tcp.app.test." {
		t.Fatalf("discovery status %+v, want empty lookups before the records and ok ones after", d)
	}
	// The status page, as a browser renders it, names the DNS name.
	if dom := dumpDOM(t, g.AdminURL+"/status?format=html"); !strings.Contains(dom, "_http._tcp.app.test. (SRV)") {
		t.Errorf("the status page does not show the discovery:\n%s", dom)
	}
}

// With processes: 2 every worker resolves on its own; the supervisor's
// /metrics and /status show the instance as one.
func TestDNSDiscoveryWithProcesses(t *testing.T) {
	rec := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	host, port, _ := net.SplitHostPort(rec.Addr())
	dns := dnstest.Start(t)
	dns.SetAddrs("app.test", host)
	g := StartGateway(t, "processes: 2\n"+discoverConfig(dns.Addr, "app.test.", port, 4))
	if code, body := get(t, g.URL+"/"); code != 200 || body != "ok" {
		t.Fatalf("GET = %d %q, want 200 ok", code, body)
	}
	// Each worker resolved at start: two ok lookups at least, summed; the
	// backends gauge is the same in both and shown once.
	wait.For(t, "lookups of both workers", func() bool {
		v, _ := parseMetrics(t, g.Metrics(t)).value("shardgate_discovery_lookups_total",
			map[string]string{"upstream": "app", "result": "ok"})
		return v >= 2
	})
	checkMetric(t, parseMetrics(t, g.Metrics(t)), "shardgate_discovery_backends", map[string]string{"upstream": "app"}, 1)
	if d := discoveryStatus(t, g).Upstreams[0].Discovery; d.Backends != 1 || d.Lookups["ok"] < 2 {
		t.Fatalf("merged discovery status %+v, want 1 backend and both workers' lookups", d)
	}
	// NXDOMAIN reaches every worker: fresh connections, spread over both,
	// all get 503.
	dns.Remove("app.test")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	wait.For(t, "every worker without backends", func() bool {
		for range 20 {
			resp, err := client.Get(g.URL + "/")
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return false
			}
		}
		return true
	})
}

// -check resolves each discover name once and warns when the upstream
// would start without backends; the config is still valid.
func TestCheckWarnsOfADiscoverNameWithoutAddress(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetAddrs("app.test", "127.0.0.1")
	path := filepath.Join(t.TempDir(), "shardgate.yaml")
	write := func(name string) {
		if err := os.WriteFile(path, []byte(discoverConfig(dns.Addr, name, "8000", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("app.test.")
	if out, code := runBinary(t, "-check", "-config", path); code != 0 || strings.Contains(out, "warning") {
		t.Fatalf("-check with a resolvable name = %d:\n%s\nwant 0 without warning", code, out)
	}
	write("missing.test.")
	out, code := runBinary(t, "-check", "-config", path)
	if want := "warning: upstreams.app.discover: missing.test. has no address now"; code != 0 || !strings.Contains(out, want) {
		t.Fatalf("-check with a name without address = %d:\n%s\nwant 0 and %q", code, out, want)
	}
}
