package test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/wait"
)

// SIGTERM finishes what was admitted and what was queued: with one request
// at the backend and three waiting for its only slot, all four get their
// 200 after the signal, and the process exits 0.
func TestSignalTermFinishesQueued(t *testing.T) {
	release := make(chan struct{})
	var released bool
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	be := NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	})
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`server: {shutdown_timeout: 20s}
upstreams:
  app:
    queue: {timeout: 20s, lifo_after: 0}
    backends: [{address: %s, max_inflight: 1}]
routes: [{upstream: app}]
`, be.Addr()))
	results := make(chan string, 4)
	for i := range 4 {
		go func() {
			code, body := get(t, fmt.Sprintf("%s/%d", g.URL, i))
			results <- fmt.Sprintf("%d %s", code, body)
		}()
	}
	wait.For(t, "one request at the backend and three queued", func() bool {
		return be.Count() == 1 && strings.Contains(g.Metrics(t), `shardgate_queue_length{upstream="app"} 3`)
	})
	g.Signal(t, syscall.SIGTERM)
	waitNotReady(t, g)
	released = true
	close(release)
	for range 4 {
		select {
		case r := <-results:
			if r != "200 done" {
				t.Fatalf("response = %q, want 200 done", r)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("a queued request never finished")
		}
	}
	if code, err := g.Wait(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit = %d, %v; want 0", code, err)
	}
	if n := be.Count(); n != 4 {
		t.Fatalf("backend served %d, want 4", n)
	}
}
