package upstream

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"shardgate/balancer"
)

// waitUntil polls cond every 5ms for up to 5s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkedPool(t *testing.T, addr string, limit int64, hc *HealthConfig) (*Pool, *Backend) {
	t.Helper()
	b := NewBackend(BackendConfig{Address: addr, Limit: limit, Weight: 1,
		ConnectTimeout: time.Second, ResponseTimeout: time.Second, IdleConnTimeout: time.Second})
	p := NewPool(PoolConfig{Balancer: balancer.NewLeastInflight(), QueueLength: 10, Timeout: time.Second,
		Backends: []*Backend{b}, Health: hc})
	t.Cleanup(p.StopChecks)
	return p, b
}

func fastChecks() *HealthConfig {
	return &HealthConfig{Path: "/health", Interval: 20 * time.Millisecond, Timeout: 15 * time.Millisecond,
		Rise: 2, Fall: 3, ExpectMin: 200, ExpectMax: 399}
}

func TestHealthCheckFallAndRise(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	var checks, wrongPath atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks.Add(1)
		if r.URL.Path != "/health" || r.Host != "app.test" {
			wrongPath.Add(1)
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	hc := fastChecks()
	hc.Host = "app.test"
	_, b := checkedPool(t, srv.Listener.Addr().String(), 0, hc)
	if !b.Up() {
		t.Fatal("a new backend is down before its first check, want up-but-unchecked")
	}
	waitUntil(t, "the first check", b.Checked)
	status.Store(503)
	waitUntil(t, "the backend to go down", func() bool { return !b.Up() })
	if _, reason := b.State(); reason != "3 checks failed: upstream: health check answered 503" {
		t.Errorf("State() reason = %q", reason)
	}
	status.Store(204)
	waitUntil(t, "the backend to come back", b.Up)
	if _, reason := b.State(); reason != "back after 2 checks passed" {
		t.Errorf("State() reason = %q", reason)
	}
	if n := wrongPath.Load(); n != 0 {
		t.Errorf("%d checks went to the wrong path or host", n)
	}
}

// hangingServer accepts connections and never answers them.
func hangingServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

// A check that times out while every slot of the backend is taken and the
// backend keeps answering requests is inconclusive: the backend stays up.
// The same timeouts with no answers (a frozen backend at its limit) mark it
// down.
func TestHealthCheckLoadAware(t *testing.T) {
	addr := hangingServer(t)
	p, b := checkedPool(t, addr, 1, fastChecks())
	held, _, err := p.Acquire(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release(held)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the busy backend answers a request every 5ms
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				p.Answered(b, 200)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // 15 check intervals
	close(stop)
	<-done
	if !b.Up() {
		_, reason := b.State()
		t.Fatalf("busy backend marked down by checks (%s), want inconclusive checks", reason)
	}
	waitUntil(t, "the frozen backend to go down", func() bool { return !b.Up() })
}

func TestHealthCheckRefusedMarksDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, b := checkedPool(t, addr, 1, fastChecks())
	waitUntil(t, "the refusing backend to go down", func() bool { return !b.Up() })
}

// Turning checks off brings a checked-down backend back; settings changed
// on a running checker keep its state.
func TestHealthCheckReconfigure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
	}))
	t.Cleanup(srv.Close)
	_, b := checkedPool(t, srv.Listener.Addr().String(), 0, fastChecks())
	waitUntil(t, "the backend to go down", func() bool { return !b.Up() })
	hc := fastChecks()
	hc.Rise = 5
	b.SetHealthCheck(hc)
	time.Sleep(50 * time.Millisecond)
	if b.Up() {
		t.Fatal("reconfigured checks forgot the backend was down")
	}
	b.SetHealthCheck(nil)
	if !b.Up() {
		t.Fatal("checks turned off, backend still down")
	}
	b.SetUp(false)
	b.SetHealthCheck(fastChecks())
	if b.Checked() {
		t.Fatal("a removed backend started checks")
	}
}

// A backend that comes back hands its slot to a queued request.
func TestHealthCheckBackWakesWaiters(t *testing.T) {
	var status atomic.Int64
	status.Store(500)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	live := NewBackend(BackendConfig{Address: "127.0.0.1:1", Limit: 1, Weight: 1})
	b := NewBackend(BackendConfig{Address: srv.Listener.Addr().String(), Limit: 1, Weight: 1})
	p := NewPool(PoolConfig{Balancer: balancer.NewLeastInflight(), QueueLength: 10, Timeout: 5 * time.Second,
		Backends: []*Backend{live, b}})
	b.setPool(p)
	b.SetHealthCheck(fastChecks())
	t.Cleanup(p.StopChecks)
	waitUntil(t, "the backend to go down", func() bool { return !b.Up() })
	held, _, err := p.Acquire(nil)
	if err != nil || held != live {
		t.Fatalf("Acquire() = %v, %v, want the live backend", held, err)
	}
	got := make(chan *Backend, 1)
	go func() {
		x, _, _ := p.Acquire(nil)
		got <- x
	}()
	waitUntil(t, "the request to queue", func() bool { return p.QueueLength() == 1 })
	status.Store(200)
	select {
	case x := <-got:
		if x != b {
			t.Fatalf("waiter got %s, want the backend that came back", x.Address())
		}
		p.Release(x)
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not served when the backend came back")
	}
	p.Release(held)
}
