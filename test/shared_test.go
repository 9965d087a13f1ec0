package test

// Backend limits across processes (docs/DESIGN.md, "Admission rules", rule
// 8): during binary upgrades and with `processes: N`, real gunicorn
// backends with more sync workers than their limit never see more requests
// at once than the limit.

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
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
	python := gunicornPython(t)
	appDir, err := filepath.Abs("app")
	if err != nil {
		t.Fatal(err)
	}
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

// checkSharedLimits fails unless every app ran at most sharedLimit requests
// at once, and exactly that many (it was saturated).
func checkSharedLimits(t *testing.T, apps []*gunicornApp) int {
	t.Helper()
	served := 0
	for i, a := range apps {
		s := a.stats(t)
		t.Logf("backend %d (%s): %+v", i, a.Addr, s)
		if s.MaxInflight != sharedLimit {
			t.Errorf("backend %d ran %d requests at once, want exactly its limit %d", i, s.MaxInflight, sharedLimit)
		}
		served += s.Served
	}
	return served
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
	served := checkSharedLimits(t, apps)
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
