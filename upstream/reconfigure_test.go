package upstream

// Admission under reconfiguration, on testing/synctest's fake clock. Each
// test names the rule of docs/DESIGN.md, "Admission rules", that it pins.

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"shardgate/balancer"
)

// bubblePool is a pool of backends with the given limits, made inside the
// current synctest bubble. It returns the config so tests can change it.
func bubblePool(t *testing.T, poolLimit int64, queue int, lifoAfter time.Duration, limits ...int64) (*Pool, PoolConfig) {
	t.Helper()
	c := PoolConfig{
		Balancer: balancer.NewLeastInflight(), MaxInflight: poolLimit,
		QueueLength: queue, Timeout: time.Minute, LIFOAfter: lifoAfter,
	}
	for i, l := range limits {
		c.Backends = append(c.Backends, NewBackend(backendConfig(i, l)))
	}
	return NewPool(c), c
}

func backendConfig(i int, limit int64) BackendConfig {
	return BackendConfig{
		Address: fmt.Sprintf("127.0.0.1:%d", 20000+i), Limit: limit, Weight: 1,
		ConnectTimeout: time.Second, ResponseTimeout: time.Second, IdleConnTimeout: time.Second,
	}
}

// grant is what one queued Acquire got.
type grant struct {
	id  int
	b   *Backend
	err error
}

// queueUp starts n Acquires in order (each queued before the next starts)
// and returns the channel their results arrive on.
func queueUp(t *testing.T, p *Pool, first, n int, out chan grant) {
	t.Helper()
	for i := first; i < first+n; i++ {
		go func() {
			b, _, err := p.Acquire(nil)
			out <- grant{i, b, err}
		}()
		synctest.Wait()
	}
	if got, want := p.QueueLength(), first+n; got < n {
		t.Fatalf("QueueLength() = %d after queueing, want at least %d (of %d)", got, n, want)
	}
}

// mustAcquire takes a slot that must be free now.
func mustAcquire(t *testing.T, p *Pool) *Backend {
	t.Helper()
	b, _, err := p.Acquire(nil)
	if err != nil {
		t.Fatalf("Acquire() = %v, want a free slot", err)
	}
	return b
}

// none fails when a queued Acquire has returned.
func none(t *testing.T, ch chan grant, why string) {
	t.Helper()
	synctest.Wait()
	select {
	case g := <-ch:
		t.Fatalf("waiter %d got %v (err %v), want it still queued: %s", g.id, g.b, g.err, why)
	default:
	}
}

// next returns the result of the queued Acquire that has returned.
func next(t *testing.T, ch chan grant) grant {
	t.Helper()
	synctest.Wait()
	select {
	case g := <-ch:
		return g
	default:
		t.Fatal("no waiter was served, want one")
		return grant{}
	}
}

// Rule 1: a limit lowered while its slots are held admits nothing new until
// in-flight has fallen below the new limit.
func TestLoweredLimitAdmitsNothingUntilBelowIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c := bubblePool(t, 0, 10, 0, 4)
		b := c.Backends[0]
		var held []*Backend
		for range 4 {
			held = append(held, mustAcquire(t, p))
		}
		b.Reconfigure(backendConfig(0, 2))
		p.Update(c)
		ch := make(chan grant, 4)
		queueUp(t, p, 0, 1, ch)

		p.Release(held[0]) // 3 in flight, limit 2
		none(t, ch, "3 in flight ≥ the new limit 2")
		p.Release(held[1]) // 2 in flight
		none(t, ch, "2 in flight = the new limit 2")
		if n := b.Inflight(); n != 2 {
			t.Fatalf("Inflight() = %d, want 2", n)
		}
		p.Release(held[2]) // 1 in flight: a slot under the limit
		g := next(t, ch)
		if g.err != nil || g.b != b {
			t.Fatalf("waiter got (%v, %v), want backend 0", g.b, g.err)
		}
		if n := b.Inflight(); n != 2 {
			t.Fatalf("Inflight() = %d after the handoff, want 2 (the new limit)", n)
		}
		p.Release(held[3])
		p.Release(g.b)
	})
}

// Rules 1 and 2: a raised limit hands its new slots to the waiters at once,
// oldest first, and no more than it allows.
func TestRaisedLimitServesWaitersAtOnceInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c := bubblePool(t, 0, 10, 0, 1)
		b := c.Backends[0]
		held := mustAcquire(t, p)
		ch := make(chan grant, 3)
		queueUp(t, p, 0, 3, ch)

		b.Reconfigure(backendConfig(0, 3))
		p.Update(c)
		// Both new slots are handed out inside Update, so the two results
		// arrive in any order; what counts is that they went to the two
		// oldest waiters.
		served := map[int]bool{}
		for range 2 {
			g := next(t, ch)
			if g.err != nil {
				t.Fatalf("waiter %d got %v, want a slot", g.id, g.err)
			}
			served[g.id] = true
		}
		if !served[0] || !served[1] {
			t.Fatalf("served waiters %v, want 0 and 1 (queue order)", served)
		}
		none(t, ch, "the raised limit 3 is used up")
		if n := b.Inflight(); n != 3 {
			t.Fatalf("Inflight() = %d, want 3", n)
		}
		p.Release(held)
		if g := next(t, ch); g.id != 2 {
			t.Fatalf("served waiter %d, want 2", g.id)
		}
	})
}

// Rule 6: a backend removed by a reload while its slots are held takes
// nothing new; its released slots go to no waiter, and the waiters are
// served by the backends that remain.
func TestRemovedBackendWithHeldSlotsGetsNoWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c := bubblePool(t, 0, 10, 0, 1, 1)
		a, gone := c.Backends[0], c.Backends[1]
		h1, h2 := mustAcquire(t, p), mustAcquire(t, p)
		heldA, heldGone := h1, h2
		if h1 == gone {
			heldA, heldGone = h2, h1
		}
		ch := make(chan grant, 2)
		queueUp(t, p, 0, 2, ch)

		c.Backends = []*Backend{a}
		p.Update(c)
		p.Release(heldGone)
		none(t, ch, "the only free slot is on the removed backend")
		if n := gone.Inflight(); n != 0 {
			t.Fatalf("removed backend Inflight() = %d, want 0", n)
		}
		if n := p.Inflight(); n != 1 {
			t.Fatalf("pool Inflight() = %d, want 1", n)
		}
		p.Release(heldA)
		if g := next(t, ch); g.id != 0 || g.b != a {
			t.Fatalf("waiter %d got %s, want waiter 0 on the remaining backend", g.id, g.b.Address())
		}
		if gone.Up() {
			t.Fatal("removed backend Up() = true, want false")
		}
		p.Release(a)
		if g := next(t, ch); g.b != a {
			t.Fatalf("waiter 1 got %s, want %s", g.b.Address(), a.Address())
		}
		p.Release(a)
	})
}

// Rule 6: a backend removed while requests wait for it never gets them; they
// wait for, and get, the backends that remain.
func TestBackendRemovedWhileRequestsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c := bubblePool(t, 0, 10, 0, 1, 1)
		held := []*Backend{mustAcquire(t, p), mustAcquire(t, p)}
		ch := make(chan grant, 2)
		queueUp(t, p, 0, 2, ch)
		keep := held[0]
		c.Backends = []*Backend{keep}
		p.Update(c)
		p.Release(held[1]) // the removed one
		none(t, ch, "only the removed backend has a free slot")
		p.Release(keep)
		g := next(t, ch)
		if g.b != keep || g.id != 0 {
			t.Fatalf("waiter %d got %s, want waiter 0 on %s", g.id, g.b.Address(), keep.Address())
		}
		p.Release(g.b)
		if g := next(t, ch); g.b != keep || g.id != 1 {
			t.Fatalf("waiter %d got %s, want waiter 1 on %s", g.id, g.b.Address(), keep.Address())
		}
	})
}

// Rule 3: a queue shortened below its length keeps its waiters and refuses
// newcomers at once until it is shorter than the new length.
func TestShortenedQueueKeepsWaitersRefusesNewcomers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c := bubblePool(t, 0, 5, 0, 1)
		held := mustAcquire(t, p)
		ch := make(chan grant, 4)
		queueUp(t, p, 0, 4, ch)
		c.QueueLength = 2
		p.Update(c)
		if n := p.QueueLength(); n != 4 {
			t.Fatalf("QueueLength() = %d after shortening, want 4 (kept)", n)
		}
		if _, _, err := p.Acquire(nil); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Acquire() on a queue of 4 > 2 = %v, want ErrQueueFull", err)
		}
		b := held
		for want := range 3 { // serve three: one left, below the new length
			p.Release(b)
			g := next(t, ch)
			if g.id != want {
				t.Fatalf("served waiter %d, want %d", g.id, want)
			}
			b = g.b
		}
		queueUp(t, p, 4, 1, ch) // 1 waiting < 2: a newcomer queues again
		if n := p.QueueLength(); n != 2 {
			t.Fatalf("QueueLength() = %d, want 2", n)
		}
		if n := p.Shed(ShedQueueFull); n != 1 {
			t.Fatalf("Shed(queue_full) = %d, want 1", n)
		}
		p.Release(b)
		p.Release(next(t, ch).b)
		p.Release(next(t, ch).b)
	})
}

// overloaded returns a pool (lifo_after 20ms, one slot) whose queue has
// turned newest-first: three waiters queued 10ms apart, the slot released,
// the newest served (g). Waiters 0 and 1 are still queued on ch.
func overloaded(t *testing.T) (*Pool, PoolConfig, chan grant, grant) {
	t.Helper()
	p, c := bubblePool(t, 0, 10, 20*time.Millisecond, 1)
	held := mustAcquire(t, p)
	ch := make(chan grant, 3)
	for i := range 3 {
		queueUp(t, p, i, 1, ch)
		time.Sleep(10 * time.Millisecond)
	}
	p.Release(held) // the oldest waited 30ms > 20ms: LIFO
	g := next(t, ch)
	if g.id != 2 || !p.LIFO() {
		t.Fatalf("served %d with LIFO()=%v, want the newest (2) with LIFO", g.id, p.LIFO())
	}
	return p, c, ch, g
}

// Rule 2: lifo_after set to 0 while the queue serves newest-first returns it
// to FIFO at once; the next slot goes to the oldest waiter.
func TestLIFOAfterZeroedWhileLIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c, ch, g := overloaded(t)
		c.LIFOAfter = 0
		p.Update(c)
		if p.LIFO() {
			t.Fatal("LIFO() = true after lifo_after: 0, want FIFO at once")
		}
		p.Release(g.b)
		if g := next(t, ch); g.id != 0 {
			t.Fatalf("served waiter %d after lifo_after: 0, want the oldest (0)", g.id)
		} else {
			p.Release(g.b)
		}
		p.Release(next(t, ch).b)
	})
}

// Rule 2: a raised lifo_after does not end an overload already recognised;
// the queue serves newest-first until it drains.
func TestLIFOAfterRaisedWhileLIFOKeepsLIFOUntilDrained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c, ch, g := overloaded(t)
		c.LIFOAfter = time.Minute
		p.Update(c)
		p.Release(g.b)
		if g = next(t, ch); g.id != 1 {
			t.Fatalf("served waiter %d, want 1 (still newest-first)", g.id)
		}
		p.Release(g.b)
		if g = next(t, ch); g.id != 0 {
			t.Fatalf("served waiter %d, want 0", g.id)
		}
		p.Release(g.b)
		if p.LIFO() {
			t.Fatal("LIFO() = true after the queue drained, want false")
		}
	})
}

// ejecting is an outlier configuration that ejects at a failed connect for
// ejectTime.
const ejectTime = 2 * time.Second

var ejecting = OutlierConfig{Consecutive: 3, BaseTime: ejectTime, MaxPercent: 50}

// Rule 6: an ejected backend takes nothing new for its ejection time, then
// is re-admitted on the clock and served to the waiters at once.
func TestEjectionAndReadmissionOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c := bubblePool(t, 0, 10, 0, 1, 1)
		c.Outlier = ejecting
		p.Update(c)
		a, b := c.Backends[0], c.Backends[1]
		if !p.ConnectFailed(b) {
			t.Fatal("ConnectFailed() = false for an up backend, want it ejected")
		}
		if p.ConnectFailed(a) {
			t.Fatal("ConnectFailed() ejected the last backend in rotation, want it kept")
		}
		held := mustAcquire(t, p)
		if held != a {
			t.Fatalf("Acquire() = %s, want %s (the other is ejected)", held.Address(), a.Address())
		}
		ch := make(chan grant, 1)
		queueUp(t, p, 0, 1, ch)
		time.Sleep(ejectTime - time.Millisecond)
		none(t, ch, "the ejected backend is not back yet")
		if b.Up() {
			t.Fatal("Up() = true before its ejection time, want false")
		}
		time.Sleep(2 * time.Millisecond)
		g := next(t, ch)
		if g.b != b || !b.Up() {
			t.Fatalf("waiter got %v with Up()=%v, want the re-admitted backend", g.b, b.Up())
		}
		p.Release(g.b)
		p.Release(held)
	})
}

// Rule 6: a backend removed by a reload while ejected stays down when its
// ejection time is up.
func TestEjectedBackendRemovedStaysDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c := bubblePool(t, 0, 10, 0, 1, 1)
		c.Outlier = ejecting
		p.Update(c)
		b := c.Backends[1]
		if !p.ConnectFailed(b) {
			t.Fatal("ConnectFailed() = false, want the backend ejected")
		}
		c.Backends = c.Backends[:1]
		p.Update(c)
		time.Sleep(2 * ejectTime)
		if b.Up() {
			t.Fatal("removed backend came back up after its ejection, want it down")
		}
	})
}

// Rule 1: the pool cap binds before the backends' own limits.
func TestPoolCapIsTheBindingLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := bubblePool(t, 2, 10, 0, 4, 4)
		h1, h2 := mustAcquire(t, p), mustAcquire(t, p)
		if h1 == h2 {
			t.Fatalf("both slots on %s, want them spread (least_inflight)", h1.Address())
		}
		ch := make(chan grant, 1)
		queueUp(t, p, 0, 1, ch)
		none(t, ch, "the pool cap 2 is reached although both backends have room")
		if n := p.Inflight(); n != 2 {
			t.Fatalf("Inflight() = %d, want 2", n)
		}
		p.Release(h1)
		g := next(t, ch)
		if g.err != nil {
			t.Fatalf("waiter got %v, want a slot", g.err)
		}
		if n := p.Inflight(); n != 2 {
			t.Fatalf("Inflight() = %d after the handoff, want 2", n)
		}
		p.Release(g.b)
		p.Release(h2)
	})
}

// Rule 1: a pool cap lowered below what is held admits nothing new until the
// pool is below the new cap.
func TestLoweredPoolCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c := bubblePool(t, 3, 10, 0, 4, 4)
		held := []*Backend{mustAcquire(t, p), mustAcquire(t, p), mustAcquire(t, p)}
		c.MaxInflight = 1
		p.Update(c)
		ch := make(chan grant, 1)
		queueUp(t, p, 0, 1, ch)
		p.Release(held[0])
		none(t, ch, "2 in flight > the new cap 1")
		p.Release(held[1])
		none(t, ch, "1 in flight = the new cap 1")
		p.Release(held[2])
		g := next(t, ch)
		if n := p.Inflight(); g.err != nil || n != 1 {
			t.Fatalf("after the handoff Inflight() = %d (err %v), want 1", n, g.err)
		}
		p.Release(g.b)
	})
}
