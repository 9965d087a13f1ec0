package demo

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"shardgate/internal/wait"
)

// startBackend starts b and closes it when the test ends, also on failure.
func startBackend(t *testing.T, b *Backend) *Backend {
	t.Helper()
	if err := b.Start(); err != nil {
		t.Fatalf("Start() = %v, want nil", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	})
	return b
}

// newClient returns a keep-alive client that ignores proxy settings.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// fetch GETs url and returns the status and body; a transport error fails the test.
func fetch(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("reading %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestBackendRunsAtMostWorkersAtOnce(t *testing.T) {
	const n, delay = 10, 50 * time.Millisecond
	b := startBackend(t, &Backend{Name: "b1", Workers: 2, Delay: delay})
	c := newClient(t)

	bodies := make([]string, n)
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() { codes[i], bodies[i] = fetch(t, c, "http://"+b.Addr+"/") })
	}
	wg.Wait()
	elapsed := time.Since(start)

	if got := b.MaxConcurrent(); got != 2 {
		t.Errorf("MaxConcurrent() = %d, want 2", got)
	}
	if got := b.Served(); got != n {
		t.Errorf("Served() = %d, want %d", got, n)
	}
	workersSeen := map[string]int{}
	for i := range n {
		if codes[i] != http.StatusOK {
			t.Errorf("request %d: status = %d, want 200", i, codes[i])
		}
		workersSeen[bodies[i]]++
	}
	for body := range workersSeen {
		if body != "backend b1 worker 0\n" && body != "backend b1 worker 1\n" {
			t.Errorf("body = %q, want worker 0 or 1 of b1", body)
		}
	}
	// Two workers, ten requests of 50ms each: at least five rounds.
	if min := n / 2 * delay; elapsed < min {
		t.Errorf("10 requests on 2 workers took %v, want >= %v (no queuing?)", elapsed, min)
	}
}

func TestBackendCountsRequestsWaitingForAWorker(t *testing.T) {
	b := startBackend(t, &Backend{Name: "b", Workers: 1})
	c := newClient(t)

	var wg sync.WaitGroup
	wg.Go(func() { fetch(t, c, "http://"+b.Addr+"/?ms=300") })
	wait.For(t, "first request to hold the worker", func() bool { return b.running.Load() == 1 })
	code, _ := fetch(t, c, "http://"+b.Addr+"/") // must wait for the first to finish
	wg.Wait()

	if code != http.StatusOK {
		t.Errorf("second request: status = %d, want 200", code)
	}
	if got := b.MaxWaiting(); got != 1 {
		t.Errorf("MaxWaiting() = %d, want 1", got)
	}
	if got := b.MaxConcurrent(); got != 1 {
		t.Errorf("MaxConcurrent() = %d, want 1", got)
	}
}

func TestBackendDelayQuery(t *testing.T) {
	tests := []struct {
		name     string
		delay    time.Duration
		query    string
		wantCode int
		atLeast  time.Duration
	}{
		{"ms shortens a long delay", time.Minute, "?ms=1", http.StatusOK, 0},
		{"ms lengthens a zero delay", 0, "?ms=200", http.StatusOK, 200 * time.Millisecond},
		{"ms=0 means no delay", time.Minute, "?ms=0", http.StatusOK, 0},
		{"negative ms", 0, "?ms=-1", http.StatusBadRequest, 0},
		{"non-numeric ms", 0, "?ms=abc", http.StatusBadRequest, 0},
		{"ms over the cap", 0, "?ms=600001", http.StatusBadRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBackend(t, &Backend{Name: "b", Workers: 1, Delay: tt.delay})
			c := newClient(t) // 10s timeout: a one-minute delay would fail
			start := time.Now()
			code, _ := fetch(t, c, "http://"+b.Addr+"/"+tt.query)
			if code != tt.wantCode {
				t.Errorf("GET %s: status = %d, want %d", tt.query, code, tt.wantCode)
			}
			if got := time.Since(start); got < tt.atLeast {
				t.Errorf("GET %s took %v, want >= %v", tt.query, got, tt.atLeast)
			}
		})
	}
}

func TestBackendKeepsConnectionsAlive(t *testing.T) {
	b := startBackend(t, &Backend{Name: "b", Workers: 1})
	c := newClient(t)
	fetch(t, c, "http://"+b.Addr+"/")

	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace),
		http.MethodGet, "http://"+b.Addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("second GET: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !reused {
		t.Errorf("second GET reused connection = false, want true")
	}
}

func TestBackendCloseReleasesPortAndGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	b := &Backend{Name: "b", Workers: 1, Delay: time.Minute}
	if err := b.Start(); err != nil {
		t.Fatalf("Start() = %v, want nil", err)
	}
	t.Cleanup(func() { b.Close() })
	tr := &http.Transport{Proxy: nil}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)

	// One request holds the worker for a minute, one waits behind it.
	codes := make(chan int, 2)
	for range 2 {
		go func() {
			resp, err := c.Get("http://" + b.Addr + "/")
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wait.For(t, "one request running and one waiting", func() bool {
		return b.running.Load() == 1 && b.waiting.Load() == 1
	})

	start := time.Now()
	if err := b.Close(); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}
	if got := time.Since(start); got > 3*time.Second {
		t.Errorf("Close() with a request in flight took %v, want it to cut the delay short", got)
	}
	for range 2 {
		if code := <-codes; code != http.StatusServiceUnavailable {
			t.Errorf("request cut short by Close: status = %d, want 503", code)
		}
	}

	ln, err := net.Listen("tcp", b.Addr)
	if err != nil {
		t.Fatalf("re-binding %s after Close: %v", b.Addr, err)
	}
	ln.Close()
	tr.CloseIdleConnections()
	wait.For(t, "goroutines to return to their count before Start", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestBackendStart(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		wantErr error
	}{
		{"empty picks a loopback port", "", nil},
		{"ipv4 loopback", "127.0.0.1:0", nil},
		{"localhost", "localhost:0", nil},
		{"all interfaces", ":0", ErrNotLoopback},
		{"wildcard ipv4", "0.0.0.0:0", ErrNotLoopback},
		{"host name", "example.com:0", ErrNotLoopback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Backend{Name: "b", Addr: tt.addr}
			err := b.Start()
			t.Cleanup(func() { b.Close() })
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Start() with Addr %q = %v, want %v", tt.addr, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			host, port, _ := net.SplitHostPort(b.Addr)
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() || port == "0" {
				t.Errorf("Addr after Start = %q, want a loopback IP with its real port", b.Addr)
			}
		})
	}
}

func TestBackendStartTwice(t *testing.T) {
	b := startBackend(t, &Backend{Name: "b"})
	if err := b.Start(); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start() = %v, want %v", err, ErrStarted)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}
	if err := b.Start(); !errors.Is(err, ErrStarted) {
		t.Errorf("Start() after Close = %v, want %v", err, ErrStarted)
	}
	if !strings.HasPrefix(ErrStarted.Error(), "demo: ") {
		t.Errorf("ErrStarted = %q, want the package name as prefix", ErrStarted)
	}
}
