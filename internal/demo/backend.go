// Package demo provides the in-process pieces of `shardgate demo`: backends that
// behave like a gunicorn sync pool, a burst client, and a plain-text report that
// shows whether any backend ever ran more requests than it has workers.
package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Backend.Start.
var (
	// ErrNotLoopback means Backend.Addr does not name a loopback address.
	ErrNotLoopback = errors.New("demo: backend address is not loopback")
	// ErrStarted means Backend.Start was called a second time; a Backend runs once.
	ErrStarted = errors.New("demo: backend already started")
)

const (
	// idleTimeout is how long a keep-alive connection may sit idle, as gunicorn's
	// gthread worker's default keepalive of 2s.
	idleTimeout = 2 * time.Second
	// readHeaderTimeout bounds a client that trickles its request line and headers.
	readHeaderTimeout = 10 * time.Second
	// maxDelayMS caps ?ms=N so one request cannot hold a worker for hours.
	maxDelayMS = 600_000
	// shutdownTimeout bounds how long Close waits for connections to go idle.
	shutdownTimeout = 5 * time.Second
)

// Backend is an in-process HTTP server that behaves like a gunicorn sync pool:
// Workers workers each serve one request at a time, and a request that finds
// every worker busy waits without a deadline, as in gunicorn's kernel backlog.
// Each request holds its worker for Delay (or ?ms=N when given), then answers
// 200 "backend NAME worker K\n". A client that leaves does not free its worker
// early: like gunicorn, the backend finishes the work anyway.
//
// Set the exported fields before Start and do not change them afterwards.
// The methods are safe for concurrent use.
type Backend struct {
	Name    string        // shown in responses and the report
	Addr    string        // listen address; "127.0.0.1:0" picks a port; "" means that
	Workers int           // requests it runs at once; values below 1 mean 1
	Delay   time.Duration // how long each request holds its worker

	// mu protects started, srv, quit and done.
	mu      sync.Mutex
	started bool
	srv     *http.Server
	quit    chan struct{} // closed by Close: sleeping and waiting requests give up
	done    chan struct{} // closed when the Serve goroutine has returned

	pool    chan int // free worker ids
	running atomic.Int64
	maxRun  atomic.Int64
	inside  atomic.Int64 // requests received and not yet answered
	maxIn   atomic.Int64
	waiting atomic.Int64
	maxWait atomic.Int64
	served  atomic.Uint64
}

// Start binds Addr, which must be a loopback address, updates Addr to the
// address actually bound and serves in a goroutine that Close stops. A Backend
// starts once; a second call returns ErrStarted, even after Close.
func (b *Backend) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return ErrStarted
	}
	if b.Addr == "" {
		b.Addr = "127.0.0.1:0"
	}
	if err := checkLoopback(b.Addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", b.Addr)
	if err != nil {
		return fmt.Errorf("demo: backend %s: %w", b.Name, err)
	}
	b.started = true
	b.Addr = ln.Addr().String()
	b.pool = make(chan int, max(b.Workers, 1))
	for id := range cap(b.pool) {
		b.pool <- id
	}
	b.quit = make(chan struct{})
	b.done = make(chan struct{})
	b.srv = &http.Server{
		Handler:           http.HandlerFunc(b.serveHTTP),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
	}
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		_ = srv.Serve(ln) // returns http.ErrServerClosed once Close runs
	}(b.srv, b.done)
	return nil
}

// checkLoopback returns ErrNotLoopback unless addr's host is a loopback IP or
// "localhost". An empty host would listen on every interface.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("demo: parsing address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return nil
}

// Close stops the backend: requests still waiting for or holding a worker are
// answered 503 at once, the listener is closed, and Close returns when the
// serving goroutine has ended. Closing a backend that is not running is a no-op.
// The counters keep their values.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv == nil {
		return nil
	}
	close(b.quit)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := b.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, b.srv.Close())
	}
	<-b.done
	b.srv = nil
	if err != nil {
		return fmt.Errorf("demo: closing backend %s: %w", b.Name, err)
	}
	return nil
}

// MaxConcurrent returns the highest number of requests that held a worker at
// the same time. It never exceeds Workers.
func (b *Backend) MaxConcurrent() int64 { return b.maxRun.Load() }

// MaxInside returns the highest number of requests the backend had at once,
// running or waiting for a worker: what a gunicorn instance would see. A
// gateway that keeps to the backend's limit keeps it at or below Workers.
func (b *Backend) MaxInside() int64 { return b.maxIn.Load() }

// MaxWaiting returns the highest number of requests that waited at the same
// time for a free worker (gunicorn's backlog). Behind a gateway that admits no
// more than Workers requests to this backend it stays 0.
func (b *Backend) MaxWaiting() int64 { return b.maxWait.Load() }

// Served returns how many requests got their 200 answer.
func (b *Backend) Served() uint64 { return b.served.Load() }

func (b *Backend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	delay, ok := requestDelay(r, b.Delay)
	if !ok {
		http.Error(w, "demo: ms must be an integer from 0 to 600000", http.StatusBadRequest)
		return
	}
	storeMax(&b.maxIn, b.inside.Add(1))
	defer b.inside.Add(-1)
	id, ok := b.acquire()
	if !ok {
		http.Error(w, "demo: backend shutting down", http.StatusServiceUnavailable)
		return
	}
	// The worker goes back before the handler returns, and net/http flushes the
	// buffered response only after that, so a client that sends its next request
	// on receiving this answer always finds the worker free.
	defer b.release(id)
	if !b.sleep(delay) {
		http.Error(w, "demo: backend shutting down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "backend %s worker %d\n", b.Name, id)
	b.served.Add(1)
}

// requestDelay returns the ?ms=N override or def; ok is false for a bad N.
func requestDelay(r *http.Request, def time.Duration) (d time.Duration, ok bool) {
	s := r.URL.Query().Get("ms")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxDelayMS {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// acquire waits, without a deadline and ignoring the client, for a free worker;
// it returns false only when the backend is closing.
func (b *Backend) acquire() (id int, ok bool) {
	select {
	case id = <-b.pool:
	default:
		storeMax(&b.maxWait, b.waiting.Add(1))
		select {
		case id = <-b.pool:
			b.waiting.Add(-1)
		case <-b.quit:
			b.waiting.Add(-1)
			return 0, false
		}
	}
	storeMax(&b.maxRun, b.running.Add(1))
	return id, true
}

func (b *Backend) release(id int) {
	b.running.Add(-1)
	b.pool <- id
}

// sleep holds the worker for d; it returns false if the backend closes first.
func (b *Backend) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.quit:
		return false
	}
}

// storeMax raises m to v if v is larger.
func storeMax(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}
