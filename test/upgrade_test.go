package test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"shardgate/internal/wait"
)

// upgrade sends g SIGUSR2 and waits until g's process, replaced by the one
// it started, exited 0 (within timeout). It returns the new process's pid;
// that process is killed at cleanup.
func upgrade(t *testing.T, g *Gateway, timeout time.Duration) int {
	t.Helper()
	g.Signal(t, syscall.SIGUSR2)
	g.WaitForLog(t, "upgrade: new process started", 10*time.Second)
	m := startedPid.FindStringSubmatch(g.Logs())
	if m == nil {
		t.Fatalf("no child pid in the logs:\n%s", g.Logs())
	}
	child, _ := strconv.Atoi(m[1])
	t.Cleanup(func() {
		syscall.Kill(child, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(child, &ws, 0, nil)
	})
	if code, err := g.Wait(timeout); err != nil || code != 0 {
		t.Fatalf("old process exit = %d, %v; want 0", code, err)
	}
	return child
}

// SIGUSR2 starts the binary again on the same sockets; the new process stops
// the old one, which drains. Clients hammering the gateway all the while —
// over kept-alive and over new connections — see no error at all.
func TestBinaryUpgradeDropsNothing(t *testing.T) {
	// The new process outlives the one the harness started; as a subreaper
	// this test inherits it and can wait for it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	be := NewRecorder(t, nil)
	g := StartGateway(t, fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    backends: [{address: %s}]
routes: [{upstream: app}]
`, be.Addr()))

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		keepAlive := i%2 == 0
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(g.URL + "/")
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})
	wait.For(t, "traffic before the upgrade", func() bool { return ok.Load() > 100 })

	child := upgrade(t, g, 15*time.Second)
	after := ok.Load()
	wait.For(t, "traffic served by the new process", func() bool { return ok.Load() > after+100 })
	if code, body := get(t, g.AdminURL+"/readyz"); code != 200 {
		t.Fatalf("new process /readyz = %d %q, want 200", code, body)
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed across the upgrade; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	t.Logf("%d requests, none failed", ok.Load())

	if err := syscall.Kill(child, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan syscall.WaitStatus, 1)
	go func() {
		var ws syscall.WaitStatus
		syscall.Wait4(child, &ws, 0, nil)
		exited <- ws
	}()
	select {
	case ws := <-exited:
		if ws.ExitStatus() != 0 {
			t.Fatalf("new process exit status = %d, want 0", ws.ExitStatus())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("new process did not exit after SIGTERM")
	}
}
