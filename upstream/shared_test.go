package upstream

// Admission across processes (rule 8), with two mappings of one segment in
// this test process standing for two shardgate processes.

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shardgate/balancer"
	"shardgate/internal/wait"
	"shardgate/shm"
)

// sharedProcs returns n memberships of one new segment, each through its
// own mapping, started and closed at cleanup.
func sharedProcs(t testing.TB, n int) []*Shared {
	t.Helper()
	first, err := shm.Create()
	if err != nil {
		t.Fatalf("shm.Create() = %v", err)
	}
	t.Cleanup(func() { first.Close() })
	var out []*Shared
	for i := range n {
		seg := first
		if i > 0 {
			if seg, err = shm.Open(first.File()); err != nil {
				t.Fatalf("shm.Open() = %v", err)
			}
			t.Cleanup(func() { seg.Close() })
		}
		proc, err := seg.Join()
		if err != nil {
			t.Fatalf("Join() = %v", err)
		}
		s := NewShared(proc)
		s.Start()
		t.Cleanup(s.Close)
		out = append(out, s)
	}
	return out
}

// sharedPool builds process s's pool "app" over backends with limits,
// counted on the shared slots.
func sharedPool(t testing.TB, s *Shared, poolLimit int64, lifoAfter time.Duration, limits ...int64) *Pool {
	t.Helper()
	share, err := s.PoolShare("app", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := PoolConfig{Balancer: balancer.NewLeastInflight(), MaxInflight: poolLimit, QueueLength: 100000,
		Timeout: 20 * time.Second, LIFOAfter: lifoAfter, Share: share}
	for i, l := range limits {
		bc := backendConfig(i, l)
		if bc.Slot, err = s.BackendSlot("app", bc.Address, time.Second, noShare); err != nil {
			t.Fatal(err)
		}
		c.Backends = append(c.Backends, NewBackend(bc))
	}
	return NewPool(c)
}

// Rule 8 with rule 1: two processes admitting at once never run more on a
// backend, or on the pool, than its limit, and the counts end at zero.
func TestSharedLimitsHoldAcrossProcesses(t *testing.T) {
	procs := sharedProcs(t, 2)
	limits := []int64{2, 3, 1}
	pools := []*Pool{sharedPool(t, procs[0], 5, 0, limits...), sharedPool(t, procs[1], 5, 0, limits...)}
	var total, peakTotal atomic.Int64
	running := make([]atomic.Int64, len(limits))
	peak := make([]atomic.Int64, len(limits))
	raise := func(v *atomic.Int64, n int64) {
		for m := v.Load(); n > m && !v.CompareAndSwap(m, n); m = v.Load() {
		}
	}
	var wg sync.WaitGroup
	for g := range 16 {
		p := pools[g%2]
		wg.Go(func() {
			for range 300 {
				b, _, err := p.Acquire(nil)
				if err != nil {
					t.Errorf("Acquire() = %v", err)
					return
				}
				var i int
				fmt.Sscanf(b.Address(), "127.0.0.1:%d", &i)
				i -= 20000
				raise(&peak[i], running[i].Add(1))
				raise(&peakTotal, total.Add(1))
				time.Sleep(50 * time.Microsecond)
				total.Add(-1)
				running[i].Add(-1)
				p.Release(b)
			}
		})
	}
	wg.Wait()
	for i, l := range limits {
		if got := peak[i].Load(); got > l {
			t.Errorf("backend %d ran %d at once across processes, want at most its limit %d", i, got, l)
		}
	}
	if got := peakTotal.Load(); got > 5 || got < 2 {
		t.Errorf("pool ran %d at once, want at most its cap 5 (and more than one)", got)
	}
	for i, p := range pools {
		if p.Inflight() != 0 || p.QueueLength() != 0 || p.waiting.Load() != 0 {
			t.Errorf("process %d after the run: inflight %d queue %d waiting %d, want 0",
				i, p.Inflight(), p.QueueLength(), p.waiting.Load())
		}
		for _, b := range p.Backends() {
			if b.Inflight() != 0 {
				t.Errorf("backend %s inflight = %d after the run, want 0", b.Address(), b.Inflight())
			}
		}
	}
}

// queuedAcquire starts an Acquire on p and waits until it is queued.
func queuedAcquire(t *testing.T, p *Pool, id int, out chan<- grant) {
	t.Helper()
	n := p.QueueLength()
	go func() {
		b, _, err := p.Acquire(nil)
		out <- grant{id, b, err}
	}()
	wait.For(t, fmt.Sprintf("waiter %d queued", id), func() bool { return p.QueueLength() == n+1 })
}

func nextGrant(t *testing.T, ch <-chan grant) grant {
	t.Helper()
	select {
	case g := <-ch:
		if g.err != nil {
			t.Fatalf("waiter %d: Acquire() = %v, want a slot", g.id, g.err)
		}
		return g
	case <-time.After(wait.Timeout):
		t.Fatal("no waiter got the freed slot")
	}
	return grant{}
}

// Rule 8: a slot freed in a process with no waiter of its own reaches a
// waiter of another process promptly.
func TestSharedFreedSlotWakesOtherProcess(t *testing.T) {
	procs := sharedProcs(t, 2)
	a, b := sharedPool(t, procs[0], 0, 0, 1), sharedPool(t, procs[1], 0, 0, 1)
	held := mustAcquire(t, a)
	ch := make(chan grant, 1)
	queuedAcquire(t, b, 1, ch)
	if n := a.waiting.Load(); n != 1 {
		t.Fatalf("first process sees %d waiting, want the other process's 1 (so it takes no fast path)", n)
	}
	start := time.Now()
	a.Release(held)
	g := nextGrant(t, ch)
	t.Logf("slot crossed processes in %v", time.Since(start))
	if g.b.Inflight() != 1 || a.Backends()[0].Inflight() != 1 {
		t.Errorf("inflight = %d, %d after the handover, want 1 in both views", g.b.Inflight(), a.Backends()[0].Inflight())
	}
	b.Release(g.b)
}

// Rule 8 with rule 2: under contention the oldest waiter across processes
// is served first, whichever process frees the slot.
func TestSharedFIFOAcrossProcesses(t *testing.T) {
	procs := sharedProcs(t, 2)
	pools := []*Pool{sharedPool(t, procs[0], 0, 0, 1), sharedPool(t, procs[1], 0, 0, 1)}
	held := mustAcquire(t, pools[0])
	holder := pools[0]
	ch := make(chan grant, 4)
	// Waiters alternate between the processes, each older than the next by
	// well over crossTolerance.
	for id := range 4 {
		queuedAcquire(t, pools[(id+1)%2], id, ch)
		time.Sleep(4 * crossTolerance) // ages, not synchronisation
	}
	for want := range 4 {
		holder.Release(held)
		g := nextGrant(t, ch)
		if g.id != want {
			t.Fatalf("slot went to waiter %d, want %d (the oldest across processes)", g.id, want)
		}
		held, holder = g.b, pools[(want+1)%2]
	}
	holder.Release(held)
}

// Rule 8: a slot left to an older waiter of another process that cannot
// use it (its backend is down there) goes to this process's own waiter
// after yieldGrace instead of idling while both wait.
func TestSharedSlotLeftToOtherProcessIsTakenBack(t *testing.T) {
	procs := sharedProcs(t, 2)
	a, b := sharedPool(t, procs[0], 0, 0, 1), sharedPool(t, procs[1], 0, 0, 1)
	held := mustAcquire(t, b)
	old := make(chan grant, 1)
	queuedAcquire(t, a, 1, old)
	time.Sleep(4 * crossTolerance) // ages, not synchronisation
	a.Backends()[0].SetUp(false)   // a's older waiter can no longer use the slot
	young := make(chan grant, 1)
	queuedAcquire(t, b, 2, young)
	start := time.Now()
	b.Release(held)
	g := nextGrant(t, young)
	t.Logf("slot taken back after %v", time.Since(start))
	b.Release(g.b)
	a.Backends()[0].SetUp(true)
	a.mu.Lock()
	a.dispatchLocked()
	a.mu.Unlock()
	g = nextGrant(t, old)
	a.Release(g.b)
}

// Rule 7 on shared slots: the fast path allocates nothing either.
func TestSharedFastPathAllocatesNothing(t *testing.T) {
	checkFastPathAllocs(t, sharedPool(t, sharedProcs(t, 1)[0], 0, 0, 0, 4), "Acquire/Release on shared slots")
}

// BenchmarkSharedAcquireRelease is BenchmarkAcquireRelease on shared slots:
// the cost of the held words next to the shared counts.
func BenchmarkSharedAcquireRelease(b *testing.B) {
	benchAcquireRelease(b, func(b *testing.B, limits ...int64) *Pool {
		return sharedPool(b, sharedProcs(b, 1)[0], 0, 0, limits...)
	})
}

// Rule 8 with rule 2: a newcomer in a process with no waiter of its own
// does not take a slot freed for another process's waiter.
func TestSharedNewcomerDoesNotOvertakeOtherProcess(t *testing.T) {
	procs := sharedProcs(t, 2)
	a, b := sharedPool(t, procs[0], 0, 0, 1), sharedPool(t, procs[1], 0, 0, 1)
	held := mustAcquire(t, a)
	waiter := make(chan grant, 1)
	queuedAcquire(t, b, 1, waiter)
	time.Sleep(4 * crossTolerance) // ages, not synchronisation
	// The slot is freed while the next Acquire in a is already past the
	// fast path (it saw b's waiter): it must queue, not take the slot.
	a.mu.Lock()
	a.releaseLocked(held)
	newcomer := make(chan grant, 1)
	go func() {
		be, _, err := a.Acquire(nil)
		newcomer <- grant{2, be, err}
	}()
	a.mu.Unlock()
	g := nextGrant(t, waiter)
	select {
	case n := <-newcomer:
		t.Fatalf("newcomer got %v (err %v) while the older waiter of another process waited", n.b, n.err)
	default:
	}
	b.Release(g.b)
	if n := nextGrant(t, newcomer); n.id != 2 {
		t.Fatalf("got grant %d, want the newcomer's", n.id)
	}
	a.Release(a.Backends()[0])
}
