package test

// Backend limits across processes (docs/DESIGN.md, "Admission rules", rule
// 8): during binary upgrades and with `processes: N`, real gunicorn
// backends with more sync workers than their limit never see more requests
// at once than the limit.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"shardgate/internal/loadgen"
	"shardgate/internal/wait"
)

// spareWorkers is the number of sync workers of each gunicorn in these
// tests: twice sharedLimit, so that the app itself sees a broken limit.
const spareWorkers, sharedLimit = 8, 4

// startWideGunicorns starts n gunicorns with spareWorkers workers each.
func startWideGunicorns(t *testing.T, n int) []*gunicornApp {
	t.Helper()
	python, appDir := flaskApp(t)
	apps := make([]*gunicornApp, n)
	for i := range apps {
		for attempt := 1; ; attempt++ {
			apps[i] = launchGunicorn(t, python, appDir, "-w", strconv.Itoa(spareWorkers))
			err := apps[i].waitUp(20 * time.Second)
			if err == nil {
				break
			}
			if !errors.Is(err, errPortTaken) || attempt == 5 {
				t.Fatalf("gunicorn on %s: %v; log:\n%s", apps[i].Addr, err, apps[i].log())
			}
			apps[i].stop(t)
		}
	}
	return apps
}

// sharedConfig is a gateway config over apps at max_inflight sharedLimit
// each, with a queue that sheds with 503 after 1s; extra goes at the top.
func sharedConfig(extra string, apps []*gunicornApp) string {
	var backends []string
	for _, a := range apps {
		backends = append(backends, fmt.Sprintf("{address: %q, max_inflight: %d}", a.Addr, sharedLimit))
	}
	return extra + loopbackListeners + fmt.Sprintf(`upstreams:
  app:
    queue: {timeout: 1s, max_length: 2000}
    response_timeout: 3s
    backends: [%s]
routes:
  - {host: "*", path_prefix: /, upstream: app}
`, strings.Join(backends, ", "))
}

// overload runs open-loop arrivals at rate for d against url (patient
// clients: the queue sheds, not the client) and returns the results.
func overload(t *testing.T, url string, rate float64, d time.Duration) <-chan []loadgen.Result {
	out := make(chan []loadgen.Result, 1)
	go func() {
		o := loadgen.OpenLoop{URL: url, Rate: rate, Duration: d, MaxRequests: int(rate * d.Seconds()),
			Timeout: 10 * time.Second}
		rs, err := o.Run(loadContext(t))
		if err != nil {
			t.Errorf("open loop: %v", err)
		}
		out <- rs
	}()
	return out
}

var startedPid = regexp.MustCompile(`upgrade: new process started" pid=(\d+)`)

// TestUpgradesUnderOverloadKeepLimits: 10 binary upgrades while open-loop
// arrivals exceed what the backends can serve. Old and new processes
// overlap at every upgrade and draw from the same shared slots, so each
// gunicorn (8 workers) never runs more than its max_inflight of 4. No
// request fails other than 503s the queue sheds; no connection is reset.
func TestUpgradesUnderOverloadKeepLimits(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	apps := startWideGunicorns(t, 2)
	g := StartGateway(t, sharedConfig("", apps))
	pid := g.Pid()
	t.Cleanup(func() { stopPid(t, pid) })
	// Capacity is 2 × 4 slots / 50ms = 160/s; offer half as much again.
	results := overload(t, g.URL+"/work?ms=50", 240, 14*time.Second)
	time.Sleep(time.Second) // let the overload build a queue first
	for i := range 10 {
		if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
			t.Fatalf("upgrade %d: SIGUSR2 to %d: %v", i+1, pid, err)
		}
		var next int
		wait.For(t, fmt.Sprintf("upgrade %d to start", i+1), func() bool {
			m := startedPid.FindAllStringSubmatch(g.Logs(), -1)
			if len(m) <= i {
				return false
			}
			next, _ = strconv.Atoi(m[i][1])
			return true
		})
		wait.For(t, fmt.Sprintf("upgrade %d to take over", i+1), func() bool {
			return strings.Count(g.Logs(), "upgrade: took over") > i
		})
		pid = next
		time.Sleep(time.Second) // the spacing of the upgrades; the old process drains meanwhile
	}
	rs := <-results
	counts := checkOutcomes(t, rs, "200", "503")
	served := checkAppLimits(t, apps, sharedLimit, true)
	t.Logf("%d requests over 10 upgrades: %v; backends served %d", len(rs), counts, served)
	if counts["503"] == 0 {
		t.Errorf("no 503 among %d requests, want the queue to shed some: the load was not an overload", len(rs))
	}
}

// stopPid sends SIGTERM to a gateway process this test adopted and waits
// for it to exit, SIGKILL after 10s.
func stopPid(t *testing.T, pid int) {
	if syscall.Kill(pid, syscall.SIGTERM) != nil {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ws syscall.WaitStatus
		if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); got == pid || err != nil {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			syscall.Wait4(pid, nil, 0, nil)
			t.Errorf("gateway %d did not exit within 10s of SIGTERM", pid)
			return
		}
		time.Sleep(10 * time.Millisecond) // polling its exit
	}
}

// TestProcessesKeepLimits: `processes: 2` under open-loop overload. Both
// workers draw from the same slots, so each gunicorn (8 workers) runs at
// most, and under overload exactly, its max_inflight of 4; the merged
// /metrics count every request once.
func TestProcessesKeepLimits(t *testing.T) {
	apps := startWideGunicorns(t, 2)
	g := StartGateway(t, sharedConfig("processes: 2\n", apps))
	results := overload(t, g.URL+"/work?ms=50", 240, 6*time.Second)
	time.Sleep(time.Second) // the queue builds up
	// While requests wait, in either worker, every slot is taken.
	var samples, idle int
	for range 40 {
		st := gatewayStatus(t, g)
		if len(st.Upstreams) == 1 && st.Upstreams[0].Queue > 0 {
			samples++
			if st.Upstreams[0].Inflight < 2*sharedLimit {
				idle++
			}
		}
		time.Sleep(100 * time.Millisecond) // the sampling interval
	}
	rs := <-results
	t.Logf("%d of %d samples with requests queued had a slot free", idle, samples)
	if samples < 20 || idle > samples/5 {
		t.Errorf("%d of %d samples with requests queued had a slot free, want at most a fifth (and 20 samples)", idle, samples)
	}
	counts := checkOutcomes(t, rs, "200", "503")
	served := checkAppLimits(t, apps, sharedLimit, true)
	t.Logf("processes: 2, %d requests: %v; backends served %d", len(rs), counts, served)
	if served != counts["200"] {
		t.Errorf("backends served %d, clients got %d answers 200; want equal", served, counts["200"])
	}
	waitGatewayIdle(t, g)
	m := parseMetrics(t, g.Metrics(t))
	checkMetric(t, m, "shardgate_requests_total", map[string]string{"upstream": "app", "code": "200"}, counts["200"])
	checkMetric(t, m, "shardgate_requests_total", map[string]string{"upstream": "app", "code": "503"}, counts["503"])
	st := gatewayStatus(t, g)
	if len(st.Processes) != 2 || st.Processes[0].Pid == 0 || st.Processes[1].Pid == 0 {
		t.Errorf("/status processes = %+v, want 2 running workers", st.Processes)
	}
}

// status is the part of /status these tests read.
type status struct {
	Upstreams []struct {
		Inflight int64 `json:"inflight"`
		Queue    int   `json:"queue_length"`
	} `json:"upstreams"`
	Processes []struct {
		Worker   int   `json:"worker"`
		Pid      int   `json:"pid"`
		Restarts int   `json:"restarts"`
		Held     int64 `json:"held_slots"`
		Queue    int   `json:"queue_length"`
	} `json:"processes"`
}

func gatewayStatus(t *testing.T, g *Gateway) status {
	t.Helper()
	code, body := get(t, g.AdminURL+"/status?format=json")
	var st status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("GET /status = %d, %v: %s", code, err, body)
	}
	return st
}

// TestProcessesWorkerKilled: kill -9 of one of two workers while both hold
// slots. The supervisor restarts it within a second; the requests it held
// (at the backend or queued) fail and no other does; its slots stay taken
// for response_timeout (the backend may still run them) and then return;
// the backend never runs more than its limit; the gauges end at 0.
func TestProcessesWorkerKilled(t *testing.T) {
	apps := startWideGunicorns(t, 1)
	cfg := strings.Replace(sharedConfig("processes: 2\n", apps), "response_timeout: 3s", "response_timeout: 2s", 1)
	cfg = strings.Replace(cfg, "timeout: 1s, max_length: 2000", "timeout: 10s, lifo_after: 0", 1) // patient: only the kill fails requests
	g := StartGateway(t, cfg)
	const n = 12 // over 4 slots: most queue, likely in both workers
	errs := make(chan error, n)
	for range n {
		go func() {
			c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get(g.URL + "/work?ms=1500")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	var victim int
	var lost int64
	var st status
	wait.For(t, "every request held or queued, the backend full", func() bool {
		st = gatewayStatus(t, g)
		total := int64(0)
		for _, p := range st.Processes {
			total += p.Held/2 + int64(p.Queue)
		}
		return total == n && apps[0].stats(t).Inflight == sharedLimit
	})
	for _, p := range st.Processes {
		if p.Held > 0 {
			victim, lost = p.Pid, p.Held/2+int64(p.Queue) // a request holds a backend and a pool slot
			break
		}
	}
	killed := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the worker restarted", func() bool {
		for _, p := range gatewayStatus(t, g).Processes {
			if p.Restarts == 1 && p.Pid != 0 && p.Pid != victim {
				return true
			}
		}
		return false
	})
	if d := time.Since(killed); d > time.Second {
		t.Errorf("worker restarted %v after kill -9, want within 1s", d)
	}
	failed := 0
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				failed++
				t.Logf("failed: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("requests still running 30s after the kill")
		}
	}
	if int64(failed) != lost {
		t.Errorf("%d requests failed, want exactly the %d the killed worker held", failed, lost)
	}
	if s := apps[0].stats(t); s.MaxInflight > sharedLimit {
		t.Errorf("backend ran %d at once, want at most %d", s.MaxInflight, sharedLimit)
	}
	waitGatewayIdle(t, g)
	if d := time.Since(killed); d < 2*time.Second {
		t.Errorf("gateway idle %v after the kill, want the dead worker's slots kept for response_timeout (2s)", d)
	}
}

// TestCheckProcesses: -check validates processes with path and line, and
// only warns when there are more processes than CPUs.
func TestCheckProcesses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, processes string) string {
		p := filepath.Join(dir, name)
		src := "processes: " + processes + "\nupstreams:\n  app:\n    backends: [{address: 127.0.0.1:8001}]\nroutes: [{upstream: app}]\n"
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out, code := runBinary(t, "-check", "-config", write("bad.yaml", "0"))
	if code != 1 || !strings.Contains(out, "processes: must be between 1 and 16 (line 1)") {
		t.Errorf("-check with processes: 0 = %d %q, want 1 and the key's error with its line", code, out)
	}
	many := strconv.Itoa(runtime.NumCPU() + 1)
	out, code = runBinary(t, "-check", "-config", write("many.yaml", many))
	if code != 0 || !strings.Contains(out, "warning: processes: "+many+" is more than the") {
		t.Errorf("-check with processes: %s = %d %q, want 0 and a warning", many, code, out)
	}
}

// TestProcessesUpgradeUnderOverload: SIGUSR2 to the supervisor of
// `processes: 2` upgrades the whole group, three times, under overload: the
// new supervisor's workers and the old draining ones share the slots, so
// the backends stay at their limit; nothing fails but queue 503s.
func TestProcessesUpgradeUnderOverload(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	apps := startWideGunicorns(t, 2)
	g := StartGateway(t, sharedConfig("processes: 2\n", apps))
	pid := g.Pid()
	t.Cleanup(func() { stopPid(t, pid) })
	results := overload(t, g.URL+"/work?ms=50", 240, 8*time.Second)
	time.Sleep(time.Second) // let the overload build a queue first
	for i := range 3 {
		if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
		var next int
		wait.For(t, fmt.Sprintf("upgrade %d to take over", i+1), func() bool {
			m := startedPid.FindAllStringSubmatch(g.Logs(), -1)
			if len(m) <= i || strings.Count(g.Logs(), "upgrade: took over") <= i {
				return false
			}
			next, _ = strconv.Atoi(m[i][1])
			return true
		})
		pid = next
		time.Sleep(time.Second) // the spacing of the upgrades
	}
	rs := <-results
	counts := checkOutcomes(t, rs, "200", "503")
	served := checkAppLimits(t, apps, sharedLimit, true)
	t.Logf("%d requests over 3 group upgrades: %v; backends served %d", len(rs), counts, served)
	if n := strings.Count(g.Logs(), `msg="worker started"`); n != 2*4 {
		t.Errorf("%d workers started, want 8 (2 per generation, none restarted)", n)
	}
}

// TestProcessesReload: SIGHUP to the supervisor reloads every worker; the
// merged /status shows the new limit, once per backend.
func TestProcessesReload(t *testing.T) {
	be := NewRecorder(t, nil)
	cfg := func(limit int) string {
		return fmt.Sprintf("processes: 2\n"+loopbackListeners+`upstreams:
  app:
    backends: [{address: %s, max_inflight: %d}]
routes: [{upstream: app}]
`, be.Addr(), limit)
	}
	g := StartGateway(t, cfg(3))
	g.Reload(t, cfg(5))
	wait.For(t, "both workers reloaded", func() bool { return strings.Count(g.Logs(), `msg=reloaded`) == 2 })
	m := parseMetrics(t, g.Metrics(t))
	checkMetric(t, m, "shardgate_backend_max_inflight", map[string]string{"upstream": "app", "backend": be.Addr()}, 5)
	for range 10 {
		if code, _ := get(t, g.URL+"/"); code != 200 {
			t.Fatalf("GET / = %d after the reload, want 200", code)
		}
	}
	m = parseMetrics(t, g.Metrics(t))
	checkMetric(t, m, "shardgate_requests_total", map[string]string{"upstream": "app", "code": "200"}, 10)
}
