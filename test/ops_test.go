package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/wait"
)

// SIGUSR1 after logrotate moved the access log away: lines from then on go
// to a new file at the configured path, and every request is logged once,
// in the old file or the new one.
func TestSignalUSR1ReopensAccessLog(t *testing.T) {
	be := NewRecorder(t, nil)
	path := filepath.Join(t.TempDir(), "access.log")
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`log: {access_log: %q}
upstreams:
  app:
    backends: [{address: %s}]
routes: [{upstream: app}]
`, path, be.Addr()))
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	c := newClient(t)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, _, _ := do(t, c, "GET", g.URL+"/", "", nil); code == 200 {
					sent.Add(1)
				}
			}
		})
	}
	wait.For(t, "some requests", func() bool { return sent.Load() > 100 })
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	g.Signal(t, syscall.SIGUSR1)
	g.WaitForLog(t, "access log reopened", 10*time.Second)
	before := sent.Load()
	wait.For(t, "more requests", func() bool { return sent.Load() > before+100 })
	close(stop)
	wg.Wait()
	g.Signal(t, syscall.SIGTERM) // flushes the access log
	if _, err := g.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no new access log after SIGUSR1: %v", err)
	}
	no, nc := bytes.Count(old, []byte("\n")), bytes.Count(cur, []byte("\n"))
	if no+nc != int(sent.Load()) || nc < 100 {
		t.Errorf("old file has %d lines, new file %d; want %d in all, at least 100 in the new one",
			no, nc, sent.Load())
	}
}

// After a reload removes a backend, and then its upstream, their series
// leave /metrics; the remaining ones stay.
func TestReloadForgetsRemovedSeries(t *testing.T) {
	a, b := NewRecorder(t, nil), NewRecorder(t, nil)
	cfg := func(backends string, extra string) string {
		return loopbackListeners + `upstreams:
  app:
    backends: [` + backends + `]
` + extra + `routes: [{upstream: app}]
`
	}
	other := "  other:\n    backends: [{address: " + b.Addr() + "}]\n"
	g := StartGateway(t, cfg("{address: "+a.Addr()+"}, {address: "+b.Addr()+"}", other))
	for range 10 {
		get(t, g.URL+"/")
	}
	series := func(m, upstream, backend string) bool {
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, "shardgate_") && strings.Contains(line, `upstream="`+upstream+`"`) &&
				(backend == "" || strings.Contains(line, `backend="`+backend+`"`)) {
				return true
			}
		}
		return false
	}
	m := g.Metrics(t)
	if !series(m, "app", b.Addr()) || !series(m, "other", "") {
		t.Fatal("series missing before the reload")
	}
	g.Reload(t, cfg("{address: "+a.Addr()+"}", ""))
	g.WaitForLog(t, "reloaded", 10*time.Second)
	m = g.Metrics(t)
	if series(m, "app", b.Addr()) {
		t.Errorf("removed backend %s still has series", b.Addr())
	}
	if series(m, "other", "") {
		t.Error("removed upstream other still has series")
	}
	if !series(m, "app", a.Addr()) || !strings.Contains(m, `shardgate_requests_total{code="200",upstream="app"} 10`) {
		t.Error("series of the kept upstream and backend were lost")
	}
}
