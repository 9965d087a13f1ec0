package test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/loadgen"
)

// launchLedger starts a gunicorn with 2 gthread workers of 4 threads
// (keep-alive 5s, so the gateway pools its connections) serving
// app/ledger.py, which appends every POST's id to ledger before it answers.
func launchLedger(t *testing.T) (app *gunicornApp, ledger string) {
	t.Helper()
	a, dir := launchPythonApp(t, "ledger:app", func(dir string) []string {
		return []string{"LEDGER_FILE=" + filepath.Join(dir, "ledger")}
	}, "-w", "2", "-k", "gthread", "--threads", "4", "--keep-alive", "5")
	return a, filepath.Join(dir, "ledger")
}

// launchPythonApp starts gunicorn with args serving module from app/, with
// the environment env(dir) added (dir is the app's own temporary
// directory), retrying on a port taken meanwhile, and waits until it answers
// /stats.
func launchPythonApp(t *testing.T, module string, env func(dir string) []string, args ...string) (*gunicornApp, string) {
	t.Helper()
	python, appDir := flaskApp(t)
	for attempt := 1; ; attempt++ {
		dir := t.TempDir()
		a := &gunicornApp{Addr: closedAddr(t), logPath: filepath.Join(dir, "gunicorn.log"), exited: make(chan struct{})}
		a.URL = "http://" + a.Addr
		logFile, err := os.Create(a.logPath)
		if err != nil {
			t.Fatal(err)
		}
		a.cmd = exec.Command(python, append(append([]string{"-m", "gunicorn"}, args...),
			"--chdir", appDir, "-b", a.Addr, "--graceful-timeout", "3", module)...)
		a.cmd.Env = append(append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1"), env(dir)...)
		a.cmd.Stdout, a.cmd.Stderr = logFile, logFile
		err = a.cmd.Start()
		logFile.Close()
		if err != nil {
			t.Fatalf("starting gunicorn: %v", err)
		}
		go func() { _ = a.cmd.Wait(); close(a.exited) }()
		t.Cleanup(func() { a.stop(t) })
		err = a.waitUp(20 * time.Second)
		if err == nil {
			return a, dir
		}
		if attempt == 5 {
			t.Fatalf("gunicorn on %s: %v; log:\n%s", a.Addr, err, a.log())
		}
		a.stop(t)
	}
}

// ledgerIDs counts the ids in the ledger files.
func ledgerIDs(t *testing.T, paths ...string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, id := range strings.Fields(string(b)) {
			ids[id]++
		}
	}
	return ids
}

// TestRetryKilledBackend kills one of two gthread gunicorns (master and
// workers, SIGKILL) under a mixed load of GETs and POSTs over pooled
// keep-alive connections. Every GET succeeds but those whose response had
// begun when the backend died (at most one per client): those that hit the
// dead backend (a refused connect, or a connection reset before any
// response byte) are retried on the other one. A POST is never resent once its bytes
// may have reached the app: the apps' own ledgers show each POST at most
// once, and every POST answered 200 exactly once.
func TestRetryKilledBackend(t *testing.T) {
	a, ledgerA := launchLedger(t)
	b, ledgerB := launchLedger(t)
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    queue: {timeout: 10s}
    backends: [{address: %q, workers: 2, threads: 4}, {address: %q, workers: 2, threads: 4}]
routes: [{upstream: app}]
`, a.Addr, b.Addr))
	const run = 4 * time.Second
	cl := loadgen.ClosedLoop{URL: g.URL + "/work?ms=5", Clients: 4, Duration: run, MaxRequests: 20000, Timeout: 10 * time.Second}
	var gets []loadgen.Result
	var wg sync.WaitGroup
	wg.Go(func() { gets, _ = cl.Run(loadContext(t)) })

	var next atomic.Int64
	var mu sync.Mutex
	posted := map[string]int{} // id → status (0: transport error)
	end := time.Now().Add(run)
	for range 3 {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			for time.Now().Before(end) {
				id := fmt.Sprint(next.Add(1))
				status := 0
				resp, err := c.Post(g.URL+"/post?ms=5&id="+id, "text/plain", strings.NewReader("payload "+id))
				if err == nil {
					resp.Body.Close()
					status = resp.StatusCode
				}
				mu.Lock()
				posted[id] = status
				mu.Unlock()
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	signalAll(t, processTree(t, a.cmd.Process.Pid), syscall.SIGKILL)
	wg.Wait()

	// A GET whose response had begun when the backend died cannot be resent
	// (its answer was partly read): it gets 502. At most one per GET client
	// can be in that state at the kill; every other GET succeeds.
	if n := checkOutcomes(t, gets, "200", "502")["502"]; n > cl.Clients {
		t.Errorf("%d GETs got 502, want at most %d (one in flight per client at the kill)", n, cl.Clients)
	}
	ids := ledgerIDs(t, ledgerA, ledgerB)
	failedPosts := 0
	for id, status := range posted {
		switch n := ids[id]; {
		case n > 1:
			t.Errorf("POST %s reached the apps %d times, want at most once", id, n)
		case status == 200 && n != 1:
			t.Errorf("POST %s answered 200 but reached the apps %d times", id, n)
		case status != 200:
			failedPosts++
			if status != 502 {
				t.Errorf("POST %s got %d, want 200 or 502", id, status)
			}
		}
	}
	m := parseMetrics(t, g.Metrics(t))
	retried, _ := m.value("shardgate_retries_total", map[string]string{"upstream": "app", "result": "success"})
	t.Logf("%d GETs, %d POSTs (%d failed), %v retries that succeeded", len(gets), len(posted), failedPosts, retried)
	if retried == 0 {
		t.Error("shardgate_retries_total{result=success} = 0, want the GETs on the dead backend retried")
	}
}

// TestRetryBudgetBoundsRetries sends GETs to two backends that reset every
// connection: each request may be retried, but the retries over the run
// stay within the budget (20% of the requests plus 3 per second over 10s),
// and the refused ones are counted.
func TestRetryBudgetBoundsRetries(t *testing.T) {
	var conns atomic.Int64
	backend := func() string {
		return countingBroken(t, &conns)
	}
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    outlier_detection: {consecutive: 0}
    backends: [{address: %s}, {address: %s}]
routes: [{upstream: app}]
`, backend(), backend()))
	const requests = 200
	start := time.Now()
	for i := range requests {
		if code, _ := get(t, g.URL+"/"); code != 502 {
			t.Fatalf("request %d = %d, want 502", i, code)
		}
	}
	secs := time.Since(start).Seconds()
	budget := requests*20/100 + 3*10
	if n := int(conns.Load()); n > requests+budget {
		t.Errorf("backends saw %d connections for %d requests in %.1fs, want at most %d (budget %d)",
			n, requests, secs, requests+budget, budget)
	} else if n <= requests {
		t.Errorf("backends saw %d connections for %d requests: nothing was retried", n, requests)
	}
	m := parseMetrics(t, g.Metrics(t))
	if v, _ := m.value("shardgate_retries_total", map[string]string{"upstream": "app", "result": "budget_exhausted"}); v == 0 {
		t.Error("shardgate_retries_total{result=budget_exhausted} = 0")
	}
}

// countingBroken is a backend that reads each request and resets the
// connection without answering, counting connections in n.
func countingBroken(t *testing.T, n *atomic.Int64) string {
	return rawBackend(t, func(c net.Conn) {
		n.Add(1)
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			c.(*net.TCPConn).SetLinger(0)
		}
	})
}
