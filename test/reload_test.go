package test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/wait"
)

func reloadConfig(backend string, limit int, extra string) string {
	return fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    queue: {timeout: 10s}
    backends:
      - address: %s
        max_inflight: %d
%s
routes:
  - upstream: app
`, backend, limit, extra)
}

func TestReloadSwapsBackendsAndRejectsBadConfig(t *testing.T) {
	a := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") })
	b := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") })
	g := StartGateway(t, reloadConfig(a.Addr(), 0, ""))
	if _, body := get(t, g.URL+"/"); body != "a" {
		t.Fatalf("before reload body = %q, want a", body)
	}

	g.Reload(t, reloadConfig(b.Addr(), 0, ""))
	wait.For(t, "reload to route to b", func() bool { _, body := get(t, g.URL+"/"); return body == "b" })

	// An invalid file changes nothing and is logged with its path and line.
	g.Reload(t, reloadConfig(b.Addr(), -1, ""))
	g.WaitForLog(t, "reload failed", 10*time.Second)
	logs := g.Logs()
	if !strings.Contains(logs, g.ConfigPath) || !strings.Contains(logs, "(line 11)") {
		t.Fatalf("reload failure log lacks path or line:\n%s", logs)
	}
	if _, body := get(t, g.URL+"/"); body != "b" {
		t.Fatalf("after a bad reload body = %q, want b (unchanged)", body)
	}
	m := g.Metrics(t)
	for _, want := range []string{
		`shardgate_config_reloads_total{result="success"} 1`,
		`shardgate_config_reloads_total{result="failure"} 1`,
		`shardgate_config_last_reload_successful 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// A backend that keeps its address across a reload keeps its in-flight
// count: the limit still holds for the request that was running.
func TestReloadKeepsInflightCounts(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	seen := make(chan struct{}, 10)
	var running, most atomic.Int64
	be := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		seen <- struct{}{}
		<-release
		io.WriteString(w, "ok")
	})
	g := StartGateway(t, reloadConfig(be.Addr(), 1, ""))

	first := make(chan int, 1)
	go func() { code, _ := get(t, g.URL+"/1"); first <- code }()
	<-seen
	// Same backend, same limit, plus an unrelated change.
	g.Reload(t, reloadConfig(be.Addr(), 1, "    connect_timeout: 2s"))
	g.WaitForLog(t, "msg=reloaded", 10*time.Second)

	second := make(chan int, 1)
	go func() { code, _ := get(t, g.URL+"/2"); second <- code }()
	wait.For(t, "second request to queue", func() bool {
		return strings.Contains(g.Metrics(t), `shardgate_queue_length{upstream="app"} 1`)
	})
	close(release)
	if c := <-first; c != 200 {
		t.Fatalf("first = %d, want 200", c)
	}
	if c := <-second; c != 200 {
		t.Fatalf("second = %d, want 200", c)
	}
	if n := be.Count(); n != 2 {
		t.Fatalf("backend saw %d requests, want 2", n)
	}
	if m := most.Load(); m != 1 {
		t.Fatalf("backend ran %d requests at once across the reload, want 1 (its limit)", m)
	}
	g.Signal(t, syscall.SIGTERM)
	if code, err := g.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit = %d, %v; want 0", code, err)
	}
}

// TestSignalOnReadyLine is the regression test of a startup race: the
// gateway logged ready before it caught signals, so a SIGHUP sent on the
// ready line (as a deploy script that waits for it does) could take Go's
// default action and kill it. Signals are now caught before ready: each
// SIGHUP sent the moment ready is seen is a reload.
func TestSignalOnReadyLine(t *testing.T) {
	be := NewRecorder(t, nil)
	cfg := loopbackListeners + fmt.Sprintf(`upstreams:
  app:
    backends: [{address: %q}]
routes: [{upstream: app}]
`, be.Addr())
	for i := range 5 {
		g := StartGateway(t, cfg) // returns on the ready line
		g.Signal(t, syscall.SIGHUP)
		g.WaitForLog(t, "msg=reloaded", 10*time.Second)
		if code, status := get(t, g.URL+"/"); code != 200 || status != "ok" {
			t.Fatalf("run %d: after the SIGHUP got %d %q, want 200 ok from a live gateway", i, code, status)
		}
	}
}
