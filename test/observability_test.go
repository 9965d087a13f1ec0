package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricsScriptedRun drives a known sequence of outcomes through two
// upstreams and checks that /metrics counts each one exactly.
func TestMetricsScriptedRun(t *testing.T) {
	const served = 5
	app := newObsBackend(t, holdPrefix, []byte("ok"))
	dead := closedAddr(t)
	g := StartGateway(t, fmt.Sprintf(`
listen: [{address: "127.0.0.1:0", shards: 2}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app:
    queue: {max_length: 1, timeout: 300ms}
    backends: [{address: %q, max_inflight: 1}]
  dead:
    backends: [{address: %q}]
routes:
  - {host: "*", path_prefix: /dead/, upstream: dead}
  - {host: "*", path_prefix: /, upstream: app}
`, app.Addr(), dead))
	c := obsClient(t)

	for i := range served {
		if r := obsAwait(t, obsSend(c, g.URL+"/ok", ""), "GET /ok"); r.code != 200 {
			t.Fatalf("GET /ok #%d = %v, want 200", i, r)
		}
	}
	held := obsSend(c, g.URL+"/hold", "")
	app.waitHeld(t, 1)
	waiting := obsSend(c, g.URL+"/queued", "")
	waitStatus(t, g, "app queue_length 1", queued("app", 1))
	full := obsAwait(t, obsSend(c, g.URL+"/full", ""), "GET /full")
	wantShed(t, "GET /full with the queue full", full, "queue full")
	if full.took >= 300*time.Millisecond {
		t.Errorf("GET /full took %v, want an answer at once (< queue timeout 300ms)", full.took)
	}
	wantShed(t, "GET /queued after the queue timeout", obsAwait(t, waiting, "GET /queued"), "queue timeout")
	app.Release()
	if r := obsAwait(t, held, "GET /hold"); r.code != 200 || string(r.body) != "ok" {
		t.Errorf("GET /hold = %v, want 200 \"ok\"", r)
	}
	if r := obsAwait(t, obsSend(c, g.URL+"/dead/x", ""), "GET /dead/x"); r.code != http.StatusBadGateway {
		t.Errorf("GET /dead/x = %v, want 502", r)
	}
	const connections = served + 4

	// Connections close just after their responses: wait for the gauge.
	s, text := waitIdle(t, g)
	checkExact(t, s, app.Addr(), dead, served)
	checkCodes(t, s)
	checkPresent(t, s, connections)
	if wait, _ := s.value("shardgate_queue_wait_seconds_sum", map[string]string{"upstream": "app"}); wait < 0.3 {
		t.Errorf("shardgate_queue_wait_seconds_sum{upstream=app} = %v, want >= 0.3 (one request waited out the 300ms timeout)", wait)
	}
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// checkExact checks every metric whose value the scripted run fixes.
func checkExact(t *testing.T, s scrape, appAddr, deadAddr string, served int) {
	t.Helper()
	type L = map[string]string
	app, dead := L{"upstream": "app"}, L{"upstream": "dead"}
	appB, deadB := L{"upstream": "app", "backend": appAddr}, L{"upstream": "dead", "backend": deadAddr}
	with := func(base L, k, v string) L {
		l := L{k: v}
		for bk, bv := range base {
			l[bk] = bv
		}
		return l
	}
	tests := []struct {
		name   string
		labels L
		want   float64
	}{
		{"shardgate_requests_total", with(app, "code", "200"), float64(served + 1)},
		{"shardgate_requests_total", with(app, "code", "503"), 2},
		{"shardgate_requests_total", with(dead, "code", "502"), 1},
		{"shardgate_request_duration_seconds_count", app, float64(served + 3)},
		{"shardgate_request_duration_seconds_count", dead, 1},
		{"shardgate_backend_response_seconds_count", appB, float64(served + 1)},
		{"shardgate_requests_shed_total", with(app, "reason", "queue_full"), 1},
		{"shardgate_requests_shed_total", with(app, "reason", "queue_timeout"), 1},
		{"shardgate_requests_shed_total", with(app, "reason", "client_gone"), 0},
		{"shardgate_requests_shed_total", with(app, "reason", "no_backend"), 0},
		{"shardgate_requests_shed_total", with(dead, "reason", "queue_full"), 0},
		{"shardgate_backend_errors_total", with(deadB, "kind", "connect"), 1},
		{"shardgate_backend_errors_total", with(deadB, "kind", "timeout"), 0},
		{"shardgate_backend_errors_total", with(deadB, "kind", "reset"), 0},
		{"shardgate_backend_errors_total", with(deadB, "kind", "protocol"), 0},
		{"shardgate_backend_errors_total", with(appB, "kind", "connect"), 0},
		{"shardgate_backend_errors_total", with(appB, "kind", "reset"), 0},
		{"shardgate_queue_length", app, 0},
		{"shardgate_queue_length", dead, 0},
		{"shardgate_queue_lifo", app, 0},
		{"shardgate_upstream_inflight", app, 0},
		{"shardgate_upstream_inflight", dead, 0},
		{"shardgate_backend_inflight", appB, 0},
		{"shardgate_backend_inflight", deadB, 0},
		{"shardgate_backend_max_inflight", appB, 1},
		{"shardgate_backend_max_inflight", deadB, 0},
		{"shardgate_backend_up", appB, 1},
		{"shardgate_config_last_reload_successful", L{}, 1},
		{"shardgate_access_log_dropped_total", L{}, 0},
	}
	for _, tt := range tests {
		series := tt.name + fmtLabels(tt.labels)
		t.Run(series, func(t *testing.T) {
			got, ok := s.value(tt.name, tt.labels)
			if !ok {
				t.Fatalf("%s missing", series)
			}
			if got != tt.want {
				t.Errorf("%s = %v, want %v", series, got, tt.want)
			}
		})
	}
}

// checkCodes checks that no status code other than the scripted ones was counted.
func checkCodes(t *testing.T, s scrape) {
	t.Helper()
	for upstream, want := range map[string]string{"app": "200,503", "dead": "502"} {
		codes := s.labelValues("shardgate_requests_total", "code", map[string]string{"upstream": upstream})
		slices.Sort(codes)
		if got := strings.Join(codes, ","); got != want {
			t.Errorf("shardgate_requests_total{upstream=%q} codes = %s, want %s", upstream, got, want)
		}
	}
}

// checkPresent checks the metrics whose values the run does not fix: build
// info, listener counters and the standard collectors.
func checkPresent(t *testing.T, s scrape, connections int) {
	t.Helper()
	bi := s["shardgate_build_info"].GetMetric()
	if len(bi) != 1 || bi[0].GetGauge().GetValue() != 1 {
		t.Errorf("shardgate_build_info = %v, want one sample of value 1", bi)
	} else {
		labels := map[string]string{}
		for _, l := range bi[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] == "" || !strings.HasPrefix(labels["goversion"], "go") {
			t.Errorf("shardgate_build_info labels = %v, want version and goversion", labels)
		}
	}
	if shards := s.labelValues("shardgate_listener_accepted_total", "shard", nil); len(shards) != 2 {
		t.Errorf("shardgate_listener_accepted_total shards = %v, want 2 (shards: 2)", shards)
	}
	if got := s.total("shardgate_listener_accepted_total"); got != float64(connections) {
		t.Errorf("sum of shardgate_listener_accepted_total = %v, want %d (one connection per request)", got, connections)
	}
	var goFam, processFam int
	for name := range s {
		goFam += boolInt(strings.HasPrefix(name, "go_"))
		processFam += boolInt(strings.HasPrefix(name, "process_"))
	}
	if goFam == 0 || processFam == 0 {
		t.Errorf("/metrics has %d go_* and %d process_* families, want some of each", goFam, processFam)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if s[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// oneUpstream returns a config with one 2-shard listener, an admin listener
// and upstream "app" over backend (limit 1) with the given extra YAML lines.
func oneUpstream(backend, extra string) string {
	return fmt.Sprintf(`
listen: [{address: "127.0.0.1:0", shards: 2}]
admin: {address: "127.0.0.1:0"}
%s
upstreams:
  app:
    queue: {max_length: 10, timeout: 10s, lifo_after: 0}
    backends: [{address: %q, max_inflight: 1}]
routes:
  - {host: "*", path_prefix: /, upstream: app}
`, extra, backend)
}

// getAdmin GETs path on the admin listener and returns the status and body.
func getAdmin(g *Gateway, path string) (int, string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(g.AdminURL + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// TestReadyzDuringDrain checks that /readyz turns 503 on SIGTERM while the
// admin listener keeps answering and an in-flight request still finishes.
func TestReadyzDuringDrain(t *testing.T) {
	payload := bytes.Repeat([]byte("shardgate drains "), 16<<10)
	app := newObsBackend(t, holdAll, payload)
	g := StartGateway(t, oneUpstream(app.Addr(), "server: {shutdown_timeout: 15s}"))
	if code, body, err := getAdmin(g, "/readyz"); err != nil || code != 200 {
		t.Fatalf("GET /readyz while serving = %d %q, %v; want 200", code, body, err)
	}
	held := obsSend(obsClient(t), g.URL+"/slow", "")
	app.waitHeld(t, 1)
	g.Signal(t, syscall.SIGTERM)

	deadline := time.Now().Add(obsDeadline)
	for {
		code, body, err := getAdmin(g, "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz while draining: %v (the admin listener must stay up)", err)
		}
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz = %d %q %v after SIGTERM, want 503", code, body, obsDeadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case r := <-held:
		t.Fatalf("held request finished before it was released: %v", r)
	default:
	}
	if code, body, err := getAdmin(g, "/healthz"); err != nil || code != 200 {
		t.Errorf("GET /healthz while draining = %d %q, %v; want 200", code, body, err)
	}
	if s := getStatus(t, g); s.Ready || s.upstream(t, "app").Inflight != 1 {
		t.Errorf("/status while draining: ready %v, app inflight %d; want false, 1", s.Ready, s.upstream(t, "app").Inflight)
	}

	app.Release()
	r := obsAwait(t, held, "held request")
	if r.code != 200 || !bytes.Equal(r.body, payload) {
		t.Errorf("held request = %d with %d bytes, want 200 with the full %d bytes", r.code, len(r.body), len(payload))
	}
	if code, err := g.Wait(obsDeadline); err != nil || code != 0 {
		t.Errorf("exit = %d, %v; want 0", code, err)
	}
}

// TestStatusJSONLive checks /status against a backend that holds one request
// while three more wait in the queue, and again once they all finished.
func TestStatusJSONLive(t *testing.T) {
	app := newObsBackend(t, holdAll, []byte("ok"))
	g := StartGateway(t, oneUpstream(app.Addr(), ""))
	c := obsClient(t)
	var pending []<-chan obsResponse
	for i := range 4 {
		pending = append(pending, obsSend(c, fmt.Sprintf("%s/r%d", g.URL, i), ""))
		if i == 0 {
			app.waitHeld(t, 1)
		}
	}
	waitStatus(t, g, "app queue_length 3", queued("app", 3))

	s := getStatus(t, g)
	u := s.upstream(t, "app")
	if !s.Ready || u.Inflight != 1 || u.QueueLength != 3 || len(u.Backends) != 1 {
		t.Fatalf("/status = ready %v, inflight %d, queue_length %d, %d backends; want true, 1, 3, 1",
			s.Ready, u.Inflight, u.QueueLength, len(u.Backends))
	}
	if b := u.Backends[0]; b.Address != app.Addr() || b.Inflight != 1 || b.Limit != 1 || !b.Up {
		t.Errorf("/status backend = %+v, want address %s, inflight 1, limit 1, up", b, app.Addr())
	}

	app.Release()
	for i, ch := range pending {
		if r := obsAwait(t, ch, fmt.Sprintf("request %d", i)); r.code != 200 {
			t.Errorf("request %d = %v, want 200", i, r)
		}
	}
	u = getStatus(t, g).upstream(t, "app")
	if u.Inflight != 0 || u.QueueLength != 0 || u.Requests != 4 {
		t.Errorf("/status after release = inflight %d, queue_length %d, requests %d; want 0, 0, 4",
			u.Inflight, u.QueueLength, u.Requests)
	}
	if b := u.Backends[0]; b.Inflight != 0 || b.Requests != 4 || !b.Up {
		t.Errorf("/status backend after release = %+v, want inflight 0, requests 4, up", b)
	}
	for reason, n := range u.Shed {
		if n != 0 {
			t.Errorf("/status shed[%s] = %d, want 0", reason, n)
		}
	}
}

// chromiumTimeout bounds one headless Chromium run.
const chromiumTimeout = 60 * time.Second

// dumpDOM loads url in headless Chromium and returns the DOM after its
// scripts ran. Chromium and its children are killed at the timeout and at
// cleanup.
func dumpDOM(t *testing.T, url string) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is required (apt-get install chromium): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=3000", "--dump-dom", url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, so its children die with it
	killGroup := func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Cancel = killGroup
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() { _ = killGroup() }) // stray renderers, if any
	if err := cmd.Wait(); err != nil {
		t.Fatalf("chromium --dump-dom %s: %v (ctx %v)\nstderr:\n%s", url, err, ctx.Err(), errOut.String())
	}
	return out.String()
}

// TestStatusPageRendersInChromium loads the HTML status page in a real browser
// and checks that its script filled in every backend from the JSON.
func TestStatusPageRendersInChromium(t *testing.T) {
	a1, a2, b1 := NewRecorder(t, nil), NewRecorder(t, nil), NewRecorder(t, nil)
	g := StartGateway(t, fmt.Sprintf(`
listen: [{address: "127.0.0.1:0", shards: 1}]
admin: {address: "127.0.0.1:0"}
upstreams:
  alpha_pool:
    backends: [{address: %q, max_inflight: 2}, {address: %q, workers: 3}]
  beta_pool:
    backends: [{address: %q}]
routes:
  - {host: "*", path_prefix: /beta/, upstream: beta_pool}
  - {host: "*", path_prefix: /, upstream: alpha_pool}
`, a1.Addr(), a2.Addr(), b1.Addr()))
	names := []string{"alpha_pool", "beta_pool", a1.Addr(), a2.Addr(), b1.Addr()}
	url := g.AdminURL + "/status?format=html"

	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s = %d %q, %v; want 200 text/html", url, resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	page := strings.ToLower(string(raw))
	for _, external := range []string{"http://", "https://", "<link", " src=", "@import", "url("} {
		if strings.Contains(page, external) {
			t.Errorf("status page contains %q, want a self-contained page", external)
		}
	}
	for _, name := range names {
		if strings.Contains(string(raw), name) {
			t.Errorf("raw status page already contains %q; want it filled in by the script", name)
		}
	}

	// Each name must be the whole text of some element, not a piece of the script.
	dom := dumpDOM(t, url)
	var missing []string
	for _, name := range names {
		if !strings.Contains(dom, ">"+name+"<") {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("rendered status page has no element reading %q; DOM:\n%s", missing, dom)
	}
}

// accessEntry is one line of the JSON access log.
type accessEntry struct {
	Client    string  `json:"client"`
	Method    string  `json:"method"`
	Host      string  `json:"host"`
	Path      string  `json:"path"`
	Status    int     `json:"status"`
	Upstream  string  `json:"upstream"`
	Backend   string  `json:"backend"`
	Shard     *int    `json:"shard"`
	BackendMS float64 `json:"backend_ms"`
	TotalMS   float64 `json:"total_ms"`
	Shed      *string `json:"shed"`
}

// readAccessLog polls path until it holds n complete lines and decodes them.
func readAccessLog(t *testing.T, path string, n int) []accessEntry {
	t.Helper()
	deadline := time.Now().Add(obsDeadline)
	var data []byte
	for {
		data, _ = os.ReadFile(path)
		if bytes.Count(data, []byte("\n")) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(data) == 0 || len(lines) != n {
		t.Fatalf("access log has %d lines after %v, want %d:\n%s", len(lines), obsDeadline, n, data)
	}
	entries := make([]accessEntry, n)
	for i, line := range lines {
		dec := json.NewDecoder(strings.NewReader(line))
		if err := dec.Decode(&entries[i]); err != nil || dec.More() {
			t.Fatalf("access log line %d is not one JSON object (%v): %s", i+1, err, line)
		}
	}
	return entries
}

// TestAccessLogFields serves one request and sheds one, then checks the
// fields of both access log lines.
func TestAccessLogFields(t *testing.T) {
	app := newObsBackend(t, holdPrefix, []byte("ok"))
	logPath := filepath.Join(t.TempDir(), "access.log")
	g := StartGateway(t, fmt.Sprintf(`
listen: [{address: "127.0.0.1:0", shards: 2}]
admin: {address: "127.0.0.1:0"}
log: {access_log: %q}
upstreams:
  app:
    queue: {max_length: 0}
    backends: [{address: %q, max_inflight: 1}]
routes:
  - {host: "*", path_prefix: /, upstream: app}
`, logPath, app.Addr()))
	c := obsClient(t)
	held := obsSend(c, g.URL+"/hold/served?x=1", "served.example")
	app.waitHeld(t, 1)
	wantShed(t, "request with no free slot", obsAwait(t, obsSend(c, g.URL+"/shed", "shed.example"), "GET /shed"), "queue full")
	app.Release()
	if r := obsAwait(t, held, "held request"); r.code != 200 {
		t.Fatalf("held request = %v, want 200", r)
	}

	byHost := map[string]accessEntry{}
	for _, e := range readAccessLog(t, logPath, 2) {
		byHost[e.Host] = e
	}
	tests := []struct {
		host, path, backend, shed string
		status                    int
	}{
		{"served.example", "/hold/served?x=1", app.Addr(), "", 200},
		{"shed.example", "/shed", "", "queue_full", 503},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			e, ok := byHost[tt.host]
			if !ok {
				t.Fatalf("no access log line with host %q; lines: %+v", tt.host, byHost)
			}
			if e.Method != "GET" || e.Path != tt.path || e.Status != tt.status || e.Upstream != "app" || e.Backend != tt.backend {
				t.Errorf("entry = %s %s %d upstream %q backend %q, want GET %s %d upstream \"app\" backend %q",
					e.Method, e.Path, e.Status, e.Upstream, e.Backend, tt.path, tt.status, tt.backend)
			}
			if e.Shed == nil {
				t.Errorf("shed missing, want %q", tt.shed)
			} else if *e.Shed != tt.shed {
				t.Errorf("shed = %q, want %q", *e.Shed, tt.shed)
			}
			if e.Shard == nil {
				t.Errorf("shard missing, want >= 0")
			} else if *e.Shard < 0 {
				t.Errorf("shard = %d, want >= 0", *e.Shard)
			}
			if !strings.HasPrefix(e.Client, "127.0.0.1:") {
				t.Errorf("client = %q, want 127.0.0.1:PORT", e.Client)
			}
			if e.TotalMS < e.BackendMS || e.BackendMS < 0 {
				t.Errorf("total_ms = %v, backend_ms = %v; want total >= backend >= 0", e.TotalMS, e.BackendMS)
			}
		})
	}
}
