package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// A panic inside a backend exchange surfaces on the caller's goroutine (where
// the handler's recover turns it into a 500), the slot is released, and the
// worker survives to run the next exchange.
func TestExchangerPanicReachesCaller(t *testing.T) {
	g, _ := newTestGateway(t, oneUpstream(startSmallBackend(t), 1, ""))
	u := g.state.Load().upstreams[0]
	ex := newExchanger()
	defer ex.close()

	b, _, err := u.pool.Acquire(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &scratch{done: make(chan struct{}, 1), pool: u.pool, backend: b} // ctx nil: Do panics
	func() {
		defer func() {
			v := recover()
			if v == nil || !strings.Contains(v.(error).Error(), "panic in backend exchange") {
				t.Fatalf("recover() = %v, want the exchange's panic", v)
			}
		}()
		ex.run(s)
		t.Fatal("run() returned normally after a panic")
	}()
	if n := u.pool.Inflight(); n != 0 {
		t.Fatalf("Inflight() = %d after a panicking exchange, want 0 (slot released)", n)
	}
	if len(ex.idle) != 1 {
		t.Fatalf("idle workers = %d after the panic, want 1", len(ex.idle))
	}

	// The same worker runs a real exchange next.
	b, _, _ = u.pool.Acquire(nil)
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/")
	ctx.Request.Header.SetHost("x")
	s = &scratch{done: make(chan struct{}, 1), pool: u.pool, backend: b, ctx: &ctx}
	if err := ex.run(s); err != nil || ctx.Response.StatusCode() != 200 {
		t.Fatalf("run() = %v, status %d; want nil, 200", err, ctx.Response.StatusCode())
	}
}

// close ends every parked worker.
func TestExchangerCloseStopsWorkers(t *testing.T) {
	g, _ := newTestGateway(t, oneUpstream(startSmallBackend(t), 0, ""))
	u := g.state.Load().upstreams[0]
	ex := newExchanger()
	done := make(chan struct{})
	for range 8 { // concurrent exchanges start 8 workers
		go func() {
			b, _, _ := u.pool.Acquire(nil)
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI("/")
			ctx.Request.Header.SetHost("x")
			ex.run(&scratch{done: make(chan struct{}, 1), pool: u.pool, backend: b, ctx: &ctx})
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
	if len(ex.idle) == 0 {
		t.Fatal("no worker parked after the exchanges")
	}
	ex.close()
	deadline := time.Now().Add(5 * time.Second)
	for ex.live.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still running after close, want 0", ex.live.Load())
		}
		time.Sleep(time.Millisecond)
	}
}
