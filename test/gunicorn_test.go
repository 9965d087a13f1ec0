package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/loadgen"
)

// The tests in this file run the gateway in front of real gunicorn processes
// (sync workers) serving the Flask app in app/app.py, which counts across
// its workers how many requests it runs at once.

// gunicornLimit is each test gunicorn's max_inflight in the gateway config,
// and gunicornWorkers its number of sync workers: more than the limit, so
// that the app itself sees a broken limit (it counts the requests it runs
// at once across its workers) instead of the excess waiting unseen in
// gunicorn's backlog.
const (
	gunicornLimit   = 2
	gunicornWorkers = 4
)

// errPortTaken reports that gunicorn could not bind its port.
var errPortTaken = errors.New("port already in use")

// gunicornApp is one gunicorn master with its workers, serving app/app.py on
// 127.0.0.1. Its methods are safe for concurrent use.
type gunicornApp struct {
	Addr string // "127.0.0.1:PORT"
	URL  string // "http://" + Addr

	cmd      *exec.Cmd
	logPath  string
	exited   chan struct{} // closed once the master has exited
	stopOnce sync.Once
}

// appStats is the JSON of the app's GET /stats.
type appStats struct {
	MaxInflight int `json:"max_inflight"`
	Served      int `json:"served"`
	Inflight    int `json:"inflight"`
}

var (
	pythonOnce sync.Once
	pythonPath string // an interpreter that imports flask and gunicorn
	pythonErr  error
)

// gunicornPython returns a python3 that can import flask and gunicorn (the
// Debian packages install them for /usr/bin/python3, which a pyenv shim on
// PATH may hide). It fails the test when there is none: CI installs them.
func gunicornPython(t *testing.T) string {
	t.Helper()
	pythonOnce.Do(func() {
		candidates := []string{"/usr/bin/python3"}
		if p, err := exec.LookPath("python3"); err == nil {
			candidates = append(candidates, p)
		}
		var msgs []string
		for _, p := range candidates {
			out, err := exec.Command(p, "-c", "import flask, gunicorn").CombinedOutput()
			if err == nil {
				pythonPath = p
				return
			}
			msgs = append(msgs, fmt.Sprintf("%s: %v: %s", p, err, strings.TrimSpace(string(out))))
		}
		pythonErr = errors.New(strings.Join(msgs, "; "))
	})
	if pythonErr != nil {
		t.Fatalf("gunicorn and flask are required (apt-get install gunicorn python3-flask): %v", pythonErr)
	}
	return pythonPath
}

// flaskApp returns the python of gunicornPython and the directory of
// app/app.py.
func flaskApp(t *testing.T) (python, appDir string) {
	t.Helper()
	python = gunicornPython(t)
	appDir, err := filepath.Abs("app")
	if err != nil {
		t.Fatalf("locating the app: %v", err)
	}
	return python, appDir
}

// startGunicorns starts n gunicorn instances side by side, each with its own
// counters, and returns once every one answers /stats. They are stopped at
// cleanup.
func startGunicorns(t *testing.T, n int) []*gunicornApp {
	t.Helper()
	python, appDir := flaskApp(t)
	apps := make([]*gunicornApp, n)
	for i := range apps {
		apps[i] = launchGunicorn(t, python, appDir)
	}
	for i := range apps {
		for attempt := 1; ; attempt++ {
			err := apps[i].waitUp(20 * time.Second)
			if err == nil {
				break
			}
			if !errors.Is(err, errPortTaken) || attempt == 5 {
				t.Fatalf("gunicorn on %s: %v; log:\n%s", apps[i].Addr, err, apps[i].log())
			}
			apps[i].stop(t)
			apps[i] = launchGunicorn(t, python, appDir)
		}
	}
	return apps
}

// launchGunicorn starts one gunicorn on a free port without waiting for it.
// args come after the defaults, so "-w", "8" overrides the worker count.
func launchGunicorn(t *testing.T, python, appDir string, args ...string) *gunicornApp {
	t.Helper()
	return launchGunicornAt(t, python, appDir, closedAddr(t), args...)
}

// launchGunicornAt is launchGunicorn on addr.
func launchGunicornAt(t *testing.T, python, appDir, addr string, args ...string) *gunicornApp {
	t.Helper()
	dir := t.TempDir()
	a := &gunicornApp{Addr: addr, logPath: filepath.Join(dir, "gunicorn.log"), exited: make(chan struct{})}
	a.URL = "http://" + a.Addr
	logFile, err := os.Create(a.logPath)
	if err != nil {
		t.Fatalf("creating gunicorn log: %v", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	args = append([]string{"-m", "gunicorn", "-w", strconv.Itoa(gunicornWorkers), "-k", "sync",
		"--chdir", appDir, "-b", a.Addr, "--graceful-timeout", "3"}, append(args, "app:app")...)
	a.cmd = exec.Command(python, args...)
	a.cmd.Env = append(os.Environ(), "APP_STATE_FILE="+filepath.Join(dir, "state"), "PYTHONDONTWRITEBYTECODE=1")
	a.cmd.Stdout, a.cmd.Stderr = logFile, logFile
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("starting gunicorn: %v", err)
	}
	go func() {
		_ = a.cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(func() { a.stop(t) })
	return a
}

// waitUp polls /stats until it answers 200; see waitUpAt.
func (a *gunicornApp) waitUp(timeout time.Duration) error { return a.waitUpAt("/stats", timeout) }

// waitUpAt polls path until it answers 200, gunicorn exits, it reports its
// port taken (errPortTaken), or timeout passes.
func (a *gunicornApp) waitUpAt(path string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(a.URL + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if strings.Contains(a.log(), "Connection in use") {
			return errPortTaken
		}
		select {
		case <-a.exited:
			return fmt.Errorf("gunicorn exited before it answered: %v", a.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer on %s after %v (last error: %v)", path, timeout, err)
		}
	}
}

// stop sends SIGTERM to the gunicorn master, which stops its workers, and
// SIGKILL when it has not exited within 5s. It logs gunicorn's output when
// the test failed.
func (a *gunicornApp) stop(t *testing.T) {
	a.stopOnce.Do(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(5 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
		if t.Failed() {
			t.Logf("gunicorn %s log:\n%s", a.Addr, a.log())
		}
	})
}

// log returns what gunicorn wrote so far.
func (a *gunicornApp) log() string {
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", a.logPath, err)
	}
	return string(b)
}

// stats returns the app's counters.
func (a *gunicornApp) stats(t *testing.T) appStats {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(a.URL + "/stats")
	if err != nil {
		t.Fatalf("GET %s/stats: %v", a.URL, err)
	}
	defer resp.Body.Close()
	var s appStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/stats = %d, %v; want 200 with JSON", a.URL, resp.StatusCode, err)
	}
	return s
}

// gunicornConfig returns a gateway config with a 2-shard listener, an admin
// listener and one upstream "app" over apps, each at max_inflight
// gunicornLimit; queue holds the entries of the upstream's queue section.
func gunicornConfig(queue string, apps []*gunicornApp) string {
	var backends []string
	for _, a := range apps {
		backends = append(backends, fmt.Sprintf("{address: %q, max_inflight: %d}", a.Addr, gunicornLimit))
	}
	return fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    queue: {%s}
    backends: [%s]
routes:
  - {host: "*", path_prefix: /, upstream: app}
`, queue, strings.Join(backends, ", "))
}

// outcome names what the client saw: a status code, "503 without
// Retry-After" when a 503 lacks an integer Retry-After >= 1, or the error
// kind (timeout, reset, refused, other).
func outcome(r loadgen.Result) string {
	if r.Kind != loadgen.KindNone {
		return r.Kind.String()
	}
	if r.Status == http.StatusServiceUnavailable {
		if n, err := strconv.Atoi(r.RetryAfter); err != nil || n < 1 {
			return "503 without Retry-After"
		}
	}
	return strconv.Itoa(r.Status)
}

// checkOutcomes counts results by outcome and reports every outcome not in
// allowed, with an example error. It returns the counts.
func checkOutcomes(t *testing.T, rs []loadgen.Result, allowed ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	example := map[string]loadgen.Result{}
	for _, r := range rs {
		o := outcome(r)
		counts[o]++
		if _, ok := example[o]; !ok {
			example[o] = r
		}
	}
	for _, o := range slices.Sorted(maps.Keys(counts)) {
		if !slices.Contains(allowed, o) {
			ex := example[o]
			t.Errorf("%d requests ended %q (e.g. err %v, Retry-After %q after %v), want only %v",
				counts[o], o, ex.Err, ex.RetryAfter, ex.Latency, allowed)
		}
	}
	return counts
}

// checkAppLimits fails the test unless every app ran at most limit
// requests at once, and exactly that many when saturated is set; it
// returns the total the apps served.
func checkAppLimits(t *testing.T, apps []*gunicornApp, limit int, saturated bool) int {
	t.Helper()
	served := 0
	for i, a := range apps {
		s := a.stats(t)
		t.Logf("backend %d (%s): %+v", i, a.Addr, s)
		if s.MaxInflight > limit || (saturated && s.MaxInflight != limit) {
			t.Errorf("backend %d max_inflight = %d, want %d (its limit, reached under load)",
				i, s.MaxInflight, limit)
		}
		served += s.Served
	}
	return served
}

// loadContext bounds one load run, as a backstop against hangs.
func loadContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestGunicornLimitExact pins admission rule 1 against real sync workers:
// 64 patient clients over 4 slots, and no backend ever runs more requests
// than it has workers, while every request is answered 200 exactly once.
func TestGunicornLimitExact(t *testing.T) {
	apps := startGunicorns(t, 2)
	// Strict FIFO: these clients are patient, and under a loaded machine a
	// LIFO switch would shed some of them; this test is about the limit.
	g := StartGateway(t, gunicornConfig("timeout: 30s, lifo_after: 0s", apps))
	cl := loadgen.ClosedLoop{URL: g.URL + "/work?ms=20", Clients: 64, Duration: 4 * time.Second,
		MaxRequests: 4000, Timeout: 40 * time.Second}
	rs, err := cl.Run(loadContext(t))
	if err != nil {
		t.Fatalf("closed loop: %v", err)
	}
	sum := loadgen.Summarize(rs)
	t.Logf("64 clients, 2 backends x %d slots (%d workers each): %v", gunicornLimit, gunicornWorkers, sum)
	checkOutcomes(t, rs, "200")
	served := checkAppLimits(t, apps, gunicornLimit, true)
	if served != sum.Status[200] {
		t.Errorf("backends served %d requests, clients got %d answers 200; want equal", served, sum.Status[200])
	}
}

// TestGunicornShortQueueTimeout pins admission rule 3: with a 100ms queue
// timeout, 64 clients over 4 slots get 200 or 503 with Retry-After, never an
// error, a 502 or a hang, and shed requests never reach a backend.
func TestGunicornShortQueueTimeout(t *testing.T) {
	apps := startGunicorns(t, 2)
	g := StartGateway(t, gunicornConfig("timeout: 100ms", apps))
	cl := loadgen.ClosedLoop{URL: g.URL + "/work?ms=20", Clients: 64, Duration: 4 * time.Second,
		MaxRequests: 20000, Timeout: 10 * time.Second}
	rs, err := cl.Run(loadContext(t))
	if err != nil {
		t.Fatalf("closed loop: %v", err)
	}
	t.Logf("64 clients, queue timeout 100ms: %v", loadgen.Summarize(rs))
	counts := checkOutcomes(t, rs, "200", "503")
	if counts["503"] == 0 {
		t.Errorf("no 503 among %d requests; want some shed after 100ms in the queue", len(rs))
	}
	if served := checkAppLimits(t, apps, gunicornLimit, false); served != counts["200"] {
		t.Errorf("backends served %d requests, clients got %d answers 200; want equal (shed ones never reach a backend)",
			served, counts["200"])
	}
	m := parseMetrics(t, g.Metrics(t))
	checkMetric(t, m, "shardgate_requests_shed_total", map[string]string{"upstream": "app", "reason": "queue_timeout"},
		counts["503"])
	checkMetric(t, m, "shardgate_requests_total", map[string]string{"upstream": "app", "code": "503"}, counts["503"])
	checkMetric(t, m, "shardgate_requests_total", map[string]string{"upstream": "app", "code": "200"}, counts["200"])
}

// TestGunicornOverloadGoodput pins admission rules 2 and 4 under sustained
// overload: open-loop arrivals at 1.6x what 4 gunicorns x 2 sync workers can
// serve, each client giving up after 1s. A FIFO queue would serve only
// clients that already left; adaptive LIFO plus dropping waiters whose
// client is gone must keep at least 95% of capacity answered within the
// clients' patience and shed the rest with 503. Patient clients at the same
// overload must still all be served.
func TestGunicornOverloadGoodput(t *testing.T) {
	apps := startGunicorns(t, 4)
	g := StartGateway(t, gunicornConfig("timeout: 5s", apps))
	url := g.URL + "/work?ms=20"
	capacity := measureCapacity(t, url)
	t.Run("impatient open loop", func(t *testing.T) {
		resetApps(t, apps)
		openLoopGoodput(t, g, apps, url, capacity)
	})
	waitGatewayIdle(t, g)
	t.Run("patient closed loop", func(t *testing.T) {
		resetApps(t, apps)
		cl := loadgen.ClosedLoop{URL: url, Clients: 64, Duration: 3 * time.Second, MaxRequests: 10000,
			Timeout: 10 * time.Second}
		rs, err := cl.Run(loadContext(t))
		if err != nil {
			t.Fatalf("closed loop: %v", err)
		}
		sum := loadgen.Summarize(rs)
		t.Logf("patient: 64 clients: %v (%.0f/s)", sum, float64(sum.Status[200])/sum.Span.Seconds())
		checkOutcomes(t, rs, "200")
		if served := checkAppLimits(t, apps, gunicornLimit, true); served != sum.Status[200] {
			t.Errorf("backends served %d requests, clients got %d answers 200; want equal", served, sum.Status[200])
		}
	})
}

// measureCapacity returns how many requests per second the gateway and its
// backends answer at saturation: 16 keep-alive clients (twice the slots,
// so a request always waits for each slot) for 3s, counting the 200s
// completed after the first second (warm-up).
func measureCapacity(t *testing.T, url string) float64 {
	t.Helper()
	const warmup, duration = time.Second, 3 * time.Second
	cl := loadgen.ClosedLoop{URL: url, Clients: 16, Duration: duration, MaxRequests: 100000,
		Timeout: 10 * time.Second}
	rs, err := cl.Run(loadContext(t))
	if err != nil {
		t.Fatalf("measuring capacity: %v", err)
	}
	checkOutcomes(t, rs, "200", "503") // a 503 here: the machine stalled past lifo_after
	if t.Failed() {
		t.FailNow()
	}
	t0 := slices.MinFunc(rs, func(a, b loadgen.Result) int { return a.Start.Compare(b.Start) }).Start
	capacity := float64(completedIn(rs, t0.Add(warmup), t0.Add(duration), time.Hour)) / (duration - warmup).Seconds()
	t.Logf("capacity: %.0f/s (16 clients: %v)", capacity, loadgen.Summarize(rs))
	if capacity < 10 {
		t.Fatalf("capacity = %.1f/s; the gateway or the backends barely answer", capacity)
	}
	return capacity
}

// completedIn counts the 200 responses that completed in [from, to) with
// a latency of at most patience.
func completedIn(rs []loadgen.Result, from, to time.Time, patience time.Duration) int {
	n := 0
	for _, r := range rs {
		end := r.Start.Add(r.Latency)
		if r.Kind == loadgen.KindNone && r.Status == http.StatusOK && r.Latency <= patience &&
			!end.Before(from) && end.Before(to) {
			n++
		}
	}
	return n
}

// openLoopGoodput drives url at 1.6 x capacity for 8s with clients whose
// patience is 1s and checks the goodput: the 200s answered within patience
// per second while the overload lasts, after its first second. It counts
// them by completion, so the backlog served after the arrivals stop does
// not count.
func openLoopGoodput(t *testing.T, g *Gateway, apps []*gunicornApp, url string, capacity float64) {
	const patience, duration, skip = time.Second, 8 * time.Second, time.Second
	rate := 1.6 * capacity
	o := loadgen.OpenLoop{URL: url, Rate: rate, Duration: duration, MaxRequests: int(rate*duration.Seconds()) + 1,
		Timeout: patience}
	rs, err := o.Run(loadContext(t))
	if err != nil {
		t.Fatalf("open loop: %v", err)
	}
	counts := checkOutcomes(t, rs, "200", "503", "timeout")
	t0 := rs[0].Start
	perSecond := make([]int, int(duration/time.Second)+1)
	for i := range perSecond {
		second := t0.Add(time.Duration(i) * time.Second)
		perSecond[i] = completedIn(rs, second, second.Add(time.Second), patience)
	}
	from, to := t0.Add(skip), t0.Add(duration)
	good := completedIn(rs, from, to, patience)
	var window []loadgen.Result
	for _, r := range rs {
		if end := r.Start.Add(r.Latency); !end.Before(from) && end.Before(to) {
			window = append(window, r)
		}
	}
	goodput := float64(good) / to.Sub(from).Seconds()
	served := checkAppLimits(t, apps, gunicornLimit, true)
	sum := loadgen.Summarize(window)
	t.Logf("open loop: offered %.0f/s (1.6 x capacity %.0f/s) for %v, patience %v: %v",
		rate, capacity, duration, patience, loadgen.Summarize(rs))
	t.Logf("goodput %.0f/s = %.1f%% of capacity (200 within patience, completed in [%v, %v); p50 %v p99 %v); per second %v",
		goodput, 100*goodput/capacity, skip, duration, sum.P50, sum.P99, perSecond)
	t.Logf("backends served %d, clients got %d answers 200 (%d served for clients that had left); outcomes %v",
		served, counts["200"], served-counts["200"], counts)
	logShedMetrics(t, g)
	if goodput < 0.95*capacity {
		t.Errorf("goodput = %.0f/s (%.1f%% of capacity %.0f/s), want >= 95%% of capacity",
			goodput, 100*goodput/capacity, capacity)
	}
}

// resetApps zeroes every app's served and max_inflight counters.
func resetApps(t *testing.T, apps []*gunicornApp) {
	t.Helper()
	for _, a := range apps {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(a.URL + "/reset")
		if err != nil {
			t.Fatalf("GET %s/reset: %v", a.URL, err)
		}
		resp.Body.Close()
	}
}

// logShedMetrics logs the gateway's shed counters.
func logShedMetrics(t *testing.T, g *Gateway) {
	t.Helper()
	var lines []string
	for _, line := range strings.Split(g.Metrics(t), "\n") {
		if strings.HasPrefix(line, "shardgate_requests_shed_total{") || strings.HasPrefix(line, "shardgate_requests_total{") {
			lines = append(lines, line)
		}
	}
	t.Logf("gateway metrics:\n%s", strings.Join(lines, "\n"))
}

// waitGatewayIdle waits up to 10s until the gateway has no request queued
// or in flight for upstream app.
func waitGatewayIdle(t *testing.T, g *Gateway) {
	t.Helper()
	app := map[string]string{"upstream": "app"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		metrics := parseMetrics(t, g.Metrics(t))
		queued, ok1 := metrics.value("shardgate_queue_length", app)
		inflight, ok2 := metrics.value("shardgate_upstream_inflight", app)
		if !ok1 || !ok2 {
			t.Errorf("shardgate_queue_length or shardgate_upstream_inflight for upstream app missing from /metrics")
			return
		}
		if queued == 0 && inflight == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway still has %v queued and %v in flight 10s after the load stopped", queued, inflight)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// checkMetric fails the test unless the series of name with labels exists
// in m and has value want.
func checkMetric(t *testing.T, m scrape, name string, labels map[string]string, want int) {
	t.Helper()
	got, ok := m.value(name, labels)
	if !ok {
		t.Errorf("metric %s%s missing from /metrics", name, fmtLabels(labels))
		return
	}
	if got != float64(want) {
		t.Errorf("metric %s%s = %v, want %d", name, fmtLabels(labels), got, want)
	}
}
