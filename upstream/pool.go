package upstream

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"shardgate/balancer"
)

// Client is what the queue needs of a waiting request: whether the client
// that sent it has gone away.
type Client interface {
	Gone() bool
}

// PoolConfig is what a Pool is built from.
type PoolConfig struct {
	Balancer    balancer.Policy
	MaxInflight int64         // cap over the pool; 0 = no cap of its own
	QueueLength int           // waiters at most; 0 = no queue
	Timeout     time.Duration // longest wait for a slot
	LIFOAfter   time.Duration // oldest waiter older than this → newest-first; 0 = FIFO
	Backends    []*Backend
	Share       *PoolShare    // shared slots across processes (NewPool only); nil = this process only
	Health      *HealthConfig // active checks; nil = none
	Outlier     OutlierConfig // passive ejection
	Retry       RetryConfig   // retry budget
}

// members is the part of a pool a reload replaces as one value.
type members struct {
	backends []*Backend
	view     []balancer.Backend
	policy   balancer.Policy
	limit    int64 // pool cap; 0 = none

	queueLength int
	timeout     time.Duration
	lifoAfter   time.Duration

	outlier OutlierConfig
	retry   RetryConfig
}

// Pool is a set of backends with one admission queue. Safe for concurrent
// use. The fast path (a slot is free and nobody waits) takes no lock.
type Pool struct {
	m        atomic.Pointer[members]
	inflight counter
	shed     [NumShedReasons]atomic.Uint64

	// waiting counts queued requests plus those about to queue. Release reads
	// it after freeing a slot and Acquire raises it before its last try, so a
	// slot freed while a request is queueing is never missed.
	waiting counter
	lifo    atomic.Bool
	// lifoSince is when the queue last turned newest-first (Unix ns).
	lifoSince atomic.Int64

	mu sync.Mutex
	// q (protected by mu) holds the waiters, oldest at the front.
	q waitList

	waiters sync.Pool // of *waiter, made by newWaiter

	share *PoolShare // nil: slots of this process only

	now          func() time.Time
	pollInterval time.Duration

	out    outliers // passive ejection; see outlier.go
	budget budget   // retries; see retry.go
}

// NewPool returns a pool over c.Backends.
func NewPool(c PoolConfig) *Pool {
	p := &Pool{now: time.Now, pollInterval: 100 * time.Millisecond}
	p.waiters.New = newWaiter
	p.out.afterFunc = time.AfterFunc
	p.attach(c.Share)
	p.Update(c)
	return p
}

// Update replaces the pool's backends and settings. Requests in flight and
// queued keep their places. A backend that is no longer a member takes no new
// request (it is marked down for good); its slots are released as usual when
// its requests finish, and never handed to a waiter. A queue shortened below
// its length keeps its waiters and refuses newcomers until it is shorter.
// lifo_after set to 0 returns the queue to FIFO at once; any other change
// takes effect at the next handoff.
func (p *Pool) Update(c PoolConfig) {
	m := &members{
		backends:    c.Backends,
		view:        make([]balancer.Backend, len(c.Backends)),
		policy:      c.Balancer,
		limit:       c.MaxInflight,
		queueLength: c.QueueLength,
		timeout:     c.Timeout,
		lifoAfter:   c.LIFOAfter,
		outlier:     c.Outlier,
		retry:       c.Retry,
	}
	for i, b := range c.Backends {
		m.view[i] = b
		b.setPool(p)
		b.SetHealthCheck(c.Health)
	}
	old := p.m.Swap(m)
	if old != nil {
		for _, b := range old.backends {
			if !slices.Contains(m.backends, b) {
				b.SetUp(false) // out of rotation for good; its checks stop
			}
		}
	}
	p.mu.Lock()
	if m.lifoAfter <= 0 {
		p.lifo.Store(false)
	}
	p.dispatchLocked() // a raised limit may free slots for waiters
	p.mu.Unlock()
}

// Backends returns the pool's current backends. The slice must not be changed.
func (p *Pool) Backends() []*Backend { return p.m.Load().backends }

// Inflight returns the requests running on the pool's backends.
func (p *Pool) Inflight() int64 { return p.inflight.Load() }

// MaxInflight returns the pool's own cap, or the sum of its backends' limits
// when it has none; 0 means unlimited.
func (p *Pool) MaxInflight() int64 {
	m := p.m.Load()
	if m.limit > 0 {
		return m.limit
	}
	var sum int64
	for _, b := range m.backends {
		l := b.Limit()
		if l == 0 {
			return 0
		}
		sum += l
	}
	return sum
}

// QueueLength returns the number of requests waiting for a slot.
func (p *Pool) QueueLength() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.q.len
}

// QueueMax returns the configured queue bound.
func (p *Pool) QueueMax() int { return p.m.Load().queueLength }

// LIFO reports whether the queue is serving newest-first (overloaded).
func (p *Pool) LIFO() bool { return p.lifo.Load() }

// Shed returns how many requests were refused a slot for reason r.
func (p *Pool) Shed(r ShedReason) uint64 { return p.shed[r].Load() }

// tryAcquire takes a pool slot and a backend slot if both are free.
func (p *Pool) tryAcquire(m *members) *Backend {
	if m.limit > 0 {
		for {
			n := p.inflight.Load()
			if n >= m.limit {
				return nil
			}
			if p.inflight.CompareAndSwap(n, n+1) {
				break
			}
		}
	} else {
		p.inflight.Add(1)
	}
	// A pick can lose a race for the backend's last slot; pick again a few
	// times before concluding that nothing is free.
	for range 3 {
		i := m.policy.Pick(m.view)
		if i < 0 {
			break
		}
		if b := m.backends[i]; b.tryAcquire() {
			return b
		}
	}
	p.inflight.Add(-1)
	return nil
}

// Acquire returns a backend with a slot taken for the caller, who must call
// Release when the backend has answered or the connection to it is closed.
// When no slot is free it waits in the queue, FIFO while the queue drains and
// newest-first while it is overloaded, until a slot is handed over, the queue
// timeout passes (ErrQueueTimeout) or client is gone (ErrClientGone). A full
// queue gives ErrQueueFull at once, a pool without a healthy backend
// ErrNoBackend. waited is the time spent queued.
func (p *Pool) Acquire(client Client) (b *Backend, waited time.Duration, err error) {
	m := p.m.Load()
	if p.waiting.Load() == 0 {
		if b := p.tryAcquire(m); b != nil {
			return b, 0, nil
		}
	}
	return p.acquireSlow(m, client)
}

// Release frees the slot taken on b by Acquire, handing it straight to the
// next waiter when there is one.
func (p *Pool) Release(b *Backend) {
	if p.waiting.Load() > 0 {
		p.mu.Lock()
		p.releaseLocked(b)
		p.mu.Unlock()
		return
	}
	b.inflight.Add(-1)
	p.inflight.Add(-1)
	if p.waiting.Load() > 0 { // a request queued meanwhile: it may need this slot
		p.mu.Lock()
		p.dispatchLocked()
		p.mu.Unlock()
	}
}

func (p *Pool) countShed(err error) error {
	if r, ok := Reason(err); ok {
		p.shed[r].Add(1)
	}
	return err
}

// healthy reports whether any backend of m takes requests.
func healthy(m *members) bool {
	for _, b := range m.backends {
		if b.Up() {
			return true
		}
	}
	return false
}

// Healthy reports whether any backend of the pool takes requests.
func (p *Pool) Healthy() bool { return healthy(p.m.Load()) }
