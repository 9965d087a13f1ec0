package upstream

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shardgate/balancer"
	"shardgate/internal/wait"
)

func newTestPool(t testing.TB, poolLimit int64, queue int, timeout, lifoAfter time.Duration, limits ...int64) *Pool {
	t.Helper()
	var bs []*Backend
	for i, l := range limits {
		bs = append(bs, NewBackend(BackendConfig{
			Address: fmt.Sprintf("127.0.0.1:%d", 10000+i), Limit: l, Weight: 1,
			ConnectTimeout: time.Second, ResponseTimeout: time.Second, IdleConnTimeout: time.Second,
		}))
	}
	return NewPool(PoolConfig{
		Balancer: balancer.NewLeastInflight(), MaxInflight: poolLimit,
		QueueLength: queue, Timeout: timeout, LIFOAfter: lifoAfter, Backends: bs,
	})
}

// fakeClient is a waiting request's client; gone is flipped by the test.
type fakeClient struct{ gone atomic.Bool }

func (c *fakeClient) Gone() bool { return c.gone.Load() }

func TestAcquireRespectsLimitsUnderContention(t *testing.T) {
	p := newTestPool(t, 5, 10000, 10*time.Second, 0, 2, 3, 1)
	backends := p.Backends()
	var violations atomic.Int64
	check := func() {
		if n := p.Inflight(); n > 5 {
			violations.Add(1)
		}
		for _, b := range backends {
			if b.Inflight() > b.Limit() {
				violations.Add(1)
			}
		}
	}
	var wg sync.WaitGroup
	var served atomic.Int64
	for range 64 {
		wg.Go(func() {
			for range 200 {
				b, _, err := p.Acquire(nil)
				if err != nil {
					t.Errorf("Acquire() error = %v", err)
					return
				}
				check()
				served.Add(1)
				p.Release(b)
				check()
			}
		})
	}
	wg.Wait()
	if v := violations.Load(); v != 0 {
		t.Fatalf("saw %d limit violations", v)
	}
	if got := served.Load(); got != 64*200 {
		t.Fatalf("served %d, want %d", got, 64*200)
	}
	if p.Inflight() != 0 || p.QueueLength() != 0 {
		t.Fatalf("after the run inflight=%d queue=%d, want 0 and 0", p.Inflight(), p.QueueLength())
	}
	for _, b := range backends {
		if b.Inflight() != 0 {
			t.Fatalf("backend %s inflight = %d after the run, want 0", b.Address(), b.Inflight())
		}
	}
}

// waitQueued polls until n requests wait in p's queue.
func waitQueued(t *testing.T, p *Pool, n int) {
	t.Helper()
	wait.For(t, fmt.Sprintf("QueueLength() = %d", n), func() bool { return p.QueueLength() == n })
}

// enqueue starts a waiter and returns the channel its result arrives on.
func enqueue(p *Pool, c Client) chan error {
	ch := make(chan error, 1)
	go func() {
		b, _, err := p.Acquire(c)
		if err == nil {
			p.Release(b)
		}
		ch <- err
	}()
	return ch
}

func TestQueueServesFIFOAndHandsOffDirectly(t *testing.T) {
	p := newTestPool(t, 0, 100, 10*time.Second, 0, 1)
	held, _, err := p.Acquire(nil)
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 5)
	release := make(chan struct{})
	for i := range 5 {
		go func() {
			b, _, err := p.Acquire(nil)
			if err != nil {
				t.Errorf("Acquire() error = %v", err)
				return
			}
			order <- i
			<-release
			p.Release(b)
		}()
		waitQueued(t, p, i+1)
	}
	for i := range 5 {
		if i == 0 {
			p.Release(held) // the slot goes to waiter 0, not back to the pool
		} else {
			release <- struct{}{}
		}
		if got := <-order; got != i {
			t.Fatalf("served waiter %d, want %d (FIFO)", got, i)
		}
		if n := p.Inflight(); n != 1 {
			t.Fatalf("Inflight() = %d during handoff, want 1", n)
		}
	}
	release <- struct{}{}
}

func TestNewArrivalDoesNotOvertakeWaiter(t *testing.T) {
	p := newTestPool(t, 0, 100, 10*time.Second, 0, 1)
	held, _, _ := p.Acquire(nil)
	got := make(chan string, 2)
	go func() {
		b, _, _ := p.Acquire(nil)
		got <- "waiter"
		p.Release(b)
	}()
	waitQueued(t, p, 1)
	p.Release(held)
	b, _, err := p.Acquire(nil) // arrives after the release: must queue behind
	if err != nil {
		t.Fatal(err)
	}
	got <- "newcomer"
	p.Release(b)
	if first := <-got; first != "waiter" {
		t.Fatalf("first served = %s, want waiter", first)
	}
}

func TestQueueTimeoutAndFull(t *testing.T) {
	p := newTestPool(t, 0, 1, 50*time.Millisecond, 0, 1)
	held, _, _ := p.Acquire(nil)
	defer p.Release(held)
	first := enqueue(p, nil)
	waitQueued(t, p, 1)
	if _, _, err := p.Acquire(nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Acquire() on a full queue = %v, want ErrQueueFull", err)
	}
	if err := <-first; !errors.Is(err, ErrQueueTimeout) {
		t.Fatalf("queued Acquire() = %v, want ErrQueueTimeout", err)
	}
	if p.Shed(ShedQueueFull) != 1 || p.Shed(ShedQueueTimeout) != 1 {
		t.Fatalf("shed full=%d timeout=%d, want 1 and 1", p.Shed(ShedQueueFull), p.Shed(ShedQueueTimeout))
	}
	if p.QueueLength() != 0 {
		t.Fatalf("QueueLength() = %d after timeout, want 0", p.QueueLength())
	}
}

func TestClientGoneWhileQueuedNeverGetsSlot(t *testing.T) {
	p := newTestPool(t, 0, 10, 10*time.Second, 0, 1)
	p.pollInterval = 5 * time.Millisecond
	held, _, _ := p.Acquire(nil)
	c := &fakeClient{}
	res := enqueue(p, c)
	waitQueued(t, p, 1)
	c.gone.Store(true)
	if err := <-res; !errors.Is(err, ErrClientGone) {
		t.Fatalf("Acquire() = %v, want ErrClientGone", err)
	}
	// Gone at the moment the slot arrives: the slot passes on, unused.
	c2 := &fakeClient{}
	p.pollInterval = time.Hour
	res2 := enqueue(p, c2)
	waitQueued(t, p, 1)
	c2.gone.Store(true)
	before := held.Requests()
	p.Release(held)
	if err := <-res2; !errors.Is(err, ErrClientGone) {
		t.Fatalf("Acquire() = %v, want ErrClientGone", err)
	}
	if p.Inflight() != 0 || held.Requests() != before {
		t.Fatalf("inflight=%d requests=%d after client left, want 0 and %d", p.Inflight(), held.Requests(), before)
	}
	if got := p.Shed(ShedClientGone); got != 2 {
		t.Fatalf("Shed(client_gone) = %d, want 2", got)
	}
}

func TestLIFOUnderOverload(t *testing.T) {
	p := newTestPool(t, 0, 100, 10*time.Second, 20*time.Millisecond, 1)
	p.pollInterval = time.Hour // no overload shedding here; see TestOverloadShedsOldWaiters
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	held, _, _ := p.Acquire(nil)
	order := make(chan int, 3)
	release := make(chan struct{})
	for i := range 3 {
		go func() {
			b, _, err := p.Acquire(nil)
			if err != nil {
				t.Errorf("Acquire() = %v", err)
				return
			}
			order <- i
			<-release
			p.Release(b)
		}()
		waitQueued(t, p, i+1)
		advance(10 * time.Millisecond)
	}
	// The oldest has waited 30ms > lifo_after: newest first.
	p.Release(held)
	if got := <-order; got != 2 {
		t.Fatalf("served %d first, want 2 (newest) under overload", got)
	}
	if !p.LIFO() {
		t.Fatal("LIFO() = false under overload, want true")
	}
	release <- struct{}{}
	if got := <-order; got != 1 {
		t.Fatalf("served %d second, want 1", got)
	}
	release <- struct{}{}
	if got := <-order; got != 0 {
		t.Fatalf("served %d third, want 0", got)
	}
	release <- struct{}{}
	if p.LIFO() {
		t.Fatal("LIFO() = true after the queue drained, want false")
	}
}

// Under sustained overload (newest-first for longer than lifo_after) a
// waiter older than lifo_after is answered at its next check, long before its
// 10s deadline; while the queue is FIFO, or has only just turned LIFO, nobody
// leaves early.
func TestOverloadShedsOldWaiters(t *testing.T) {
	p := newTestPool(t, 0, 100, 10*time.Second, 20*time.Millisecond, 1)
	p.pollInterval = 5 * time.Millisecond
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	held, _, _ := p.Acquire(nil)
	old := enqueue(p, nil)
	waitQueued(t, p, 1)
	advance(30 * time.Millisecond)
	select {
	case err := <-old:
		t.Fatalf("waiter left a FIFO queue early: %v", err)
	case <-time.After(50 * time.Millisecond): // ten checks, none shed it
	}
	got := make(chan *Backend, 1)
	go func() {
		b, _, err := p.Acquire(nil)
		if err != nil {
			t.Errorf("newest Acquire() = %v", err)
		}
		got <- b
	}()
	waitQueued(t, p, 2)
	p.Release(held) // oldest is 30ms old > lifo_after: newest first
	newest := <-got
	defer p.Release(newest)
	select { // overloaded only just now: a burst, not yet shed
	case err := <-old:
		t.Fatalf("waiter shed as soon as the queue turned LIFO: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	advance(30 * time.Millisecond) // LIFO for 30ms > lifo_after: sustained
	select {
	case err := <-old:
		if !errors.Is(err, ErrQueueTimeout) {
			t.Fatalf("old waiter got %v, want ErrQueueTimeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("old waiter still queued under overload")
	}
	if n := p.Shed(ShedQueueTimeout); n != 1 {
		t.Fatalf("Shed(queue_timeout) = %d, want 1", n)
	}
}

func TestNoHealthyBackend(t *testing.T) {
	p := newTestPool(t, 0, 10, time.Second, 0, 1, 0)
	for _, b := range p.Backends() {
		b.SetUp(false)
	}
	if _, _, err := p.Acquire(nil); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("Acquire() = %v, want ErrNoBackend", err)
	}
	if p.Shed(ShedNoBackend) != 1 {
		t.Fatalf("Shed(no_backend) = %d, want 1", p.Shed(ShedNoBackend))
	}
}

func TestUnlimitedFastPathAllocatesNothing(t *testing.T) {
	checkFastPathAllocs(t, newTestPool(t, 0, 10, time.Second, 0, 0, 0), "Acquire/Release")
}

// checkFastPathAllocs fails t unless an Acquire and Release on p, whose
// slots are free, allocate nothing (rule 7).
func checkFastPathAllocs(t *testing.T, p *Pool, what string) {
	t.Helper()
	allocs := testing.AllocsPerRun(1000, func() {
		b, _, err := p.Acquire(nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Release(b)
	})
	if allocs != 0 {
		t.Fatalf("%s allocates %v per op, want 0", what, allocs)
	}
}

// benchAcquireRelease runs the uncontended and parallel Acquire/Release
// benchmarks on pools made by newPool, unlimited and limited.
func benchAcquireRelease(b *testing.B, newPool func(b *testing.B, limits ...int64) *Pool) {
	for _, bc := range []struct {
		name   string
		limits []int64
	}{{"unlimited", []int64{0, 0, 0}}, {"limited", []int64{64, 64, 64}}} {
		b.Run(bc.name+"/uncontended", func(b *testing.B) {
			p := newPool(b, bc.limits...)
			b.ReportAllocs()
			for b.Loop() {
				be, _, _ := p.Acquire(nil)
				p.Release(be)
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			p := newPool(b, bc.limits...)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					be, _, _ := p.Acquire(nil)
					p.Release(be)
				}
			})
		})
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	benchAcquireRelease(b, func(b *testing.B, limits ...int64) *Pool {
		return newTestPool(b, 0, 100000, time.Minute, 0, limits...)
	})
	b.Run("contended-queue", func(b *testing.B) {
		p := newTestPool(b, 0, 100000, time.Minute, 0, 1, 1)
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				be, _, _ := p.Acquire(nil)
				p.Release(be)
			}
		})
	})
}

// BenchmarkHandoff measures the time from Release to the waiter holding the slot.
func BenchmarkHandoff(b *testing.B) {
	p := newTestPool(b, 0, 10, time.Minute, 0, 1)
	held, _, _ := p.Acquire(nil)
	got := make(chan *Backend)
	b.ReportAllocs()
	for b.Loop() {
		go func() {
			be, _, _ := p.Acquire(nil)
			got <- be
		}()
		for p.QueueLength() == 0 {
		}
		p.Release(held)
		held = <-got
	}
	p.Release(held)
}
