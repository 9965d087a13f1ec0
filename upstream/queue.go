package upstream

import (
	"time"
)

// waiter is one queued request. ready receives the backend whose slot was
// handed to it; a waiter is in the list exactly while nothing was sent.
type waiter struct {
	ready      chan *Backend // buffered, capacity 1
	prev, next *waiter
	enqueued   time.Time
	queued     bool // protected by Pool.mu

	deadline *time.Timer
	poll     *time.Ticker
}

// newWaiter is the New of a pool's waiter cache. Each Pool keeps its own, so
// a waiter's timers and channel never pass between pools (nor between
// testing/synctest bubbles).
func newWaiter() any {
	w := &waiter{ready: make(chan *Backend, 1)}
	w.deadline = time.NewTimer(time.Hour)
	w.deadline.Stop()
	w.poll = time.NewTicker(time.Hour)
	w.poll.Stop()
	return w
}

// waitList is an intrusive doubly linked list of waiters, oldest first.
type waitList struct {
	head, tail *waiter
	len        int
}

func (l *waitList) pushBack(w *waiter) {
	w.prev, w.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.len++
	w.queued = true
}

func (l *waitList) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next = nil, nil
	l.len--
	w.queued = false
}

// acquireSlow queues the request unless a slot became free meanwhile.
func (p *Pool) acquireSlow(m *members, client Client) (*Backend, time.Duration, error) {
	p.mu.Lock()
	p.waiting.Add(1) // announce before the last try; see Pool.waiting
	if p.q.len == 0 && !p.othersQueuedLocked() {
		if b := p.tryAcquire(m); b != nil {
			p.waiting.Add(-1)
			p.mu.Unlock()
			return b, 0, nil
		}
	}
	var err error
	switch {
	case !healthy(m):
		err = ErrNoBackend
	case p.q.len >= m.queueLength:
		err = ErrQueueFull
	}
	if err != nil {
		p.waiting.Add(-1)
		p.mu.Unlock()
		return nil, 0, p.countShed(err)
	}
	w := p.waiters.Get().(*waiter)
	w.enqueued = p.now()
	p.q.pushBack(w)
	p.publishLocked()
	p.dispatchLocked() // slots may be free with older waiters ahead of us
	p.mu.Unlock()

	b, err := p.wait(w, m, client)
	waited := p.now().Sub(w.enqueued)
	p.waiters.Put(w)
	if err != nil {
		return nil, waited, p.countShed(err)
	}
	return b, waited, nil
}

// wait blocks until w is handed a slot, its deadline passes or its client
// leaves. The client is checked every pollInterval and once more when a slot
// arrives, so a request whose client left is never sent to a backend.
//
// Once the queue has been overloaded (serving newest-first) for longer than
// lifoAfter, a waiter older than lifoAfter is shed at its next check instead
// of at its deadline: every newer request goes before it, so it would be
// served, if at all, only after its client gave up. It gets its 503 while
// someone still reads it. A burst that drains within about twice lifoAfter
// is served whole.
func (p *Pool) wait(w *waiter, m *members, client Client) (*Backend, error) {
	w.deadline.Reset(m.timeout)
	w.poll.Reset(p.pollInterval)
	defer w.deadline.Stop()
	defer w.poll.Stop()
	for {
		var err error
		select {
		case b := <-w.ready:
			return p.take(b, client)
		case <-w.deadline.C:
			err = ErrQueueTimeout
		case <-w.poll.C:
			switch {
			case client != nil && client.Gone():
				err = ErrClientGone
			case p.overdue(w, m.lifoAfter):
				err = ErrQueueTimeout
			default:
				continue
			}
		}
		if b, ok := p.leave(w); ok {
			return p.take(b, client) // a slot arrived as it was leaving
		}
		return nil, err
	}
}

// take keeps a slot handed to a waiter, unless its client has gone.
func (p *Pool) take(b *Backend, client Client) (*Backend, error) {
	if client != nil && client.Gone() {
		p.Release(b)
		return nil, ErrClientGone
	}
	return b, nil
}

// leave takes w out of the queue. If a slot was handed to it first, it
// returns that backend instead.
func (p *Pool) leave(w *waiter) (*Backend, bool) {
	p.mu.Lock()
	if w.queued {
		p.q.remove(w)
		p.waiting.Add(-1)
		p.afterRemoveLocked()
		p.mu.Unlock()
		return nil, false
	}
	p.mu.Unlock()
	return <-w.ready, true
}

// releaseLocked frees b's slot, handing it directly to the next waiter when
// b can still take it.
func (p *Pool) releaseLocked(b *Backend) {
	m := p.m.Load()
	if w := p.nextLocked(m); w != nil && !p.yieldLocked() && b.Up() && b.fits(b.inflight.Load()) &&
		withinLimit(p.inflight.Load(), m.limit) {
		p.handLocked(w, b)
		return
	}
	b.inflight.Add(-1)
	p.inflight.Add(-1)
	p.dispatchLocked()
}

// withinLimit reports whether a slot held among n may pass to another
// request without exceeding limit (which a reload may have lowered).
func withinLimit(n, limit int64) bool { return limit == 0 || n <= limit }

// dispatchLocked hands free slots to waiters in queue order, and wakes
// another process's waiters for what is left (see shared.go).
func (p *Pool) dispatchLocked() {
	m := p.m.Load()
	for p.q.len > 0 {
		if p.yieldLocked() {
			break
		}
		b := p.tryAcquire(m)
		if b == nil {
			return
		}
		p.handLocked(p.nextLocked(m), b)
	}
	p.wakeRemoteLocked()
}

func (p *Pool) handLocked(w *waiter, b *Backend) {
	p.q.remove(w)
	p.waiting.Add(-1)
	w.ready <- b
	p.afterRemoveLocked()
}

// nextLocked returns the waiter the next slot goes to: the oldest while the
// queue drains normally, the newest once the oldest has waited longer than
// lifoAfter, until the queue is empty again.
func (p *Pool) nextLocked(m *members) *waiter {
	if p.q.len == 0 {
		return nil
	}
	if !p.lifo.Load() && m.lifoAfter > 0 {
		if now := p.now(); now.Sub(p.q.head.enqueued) > m.lifoAfter {
			p.lifoSince.Store(now.UnixNano())
			p.lifo.Store(true)
		}
	}
	if p.lifo.Load() {
		return p.q.tail
	}
	return p.q.head
}

// overdue reports whether w should be shed early: the queue has served
// newest-first for longer than lifoAfter and w has waited longer than that.
func (p *Pool) overdue(w *waiter, lifoAfter time.Duration) bool {
	if lifoAfter <= 0 || !p.lifo.Load() {
		return false
	}
	now := p.now()
	return now.Sub(w.enqueued) > lifoAfter && now.UnixNano()-p.lifoSince.Load() > int64(lifoAfter)
}

func (p *Pool) afterRemoveLocked() {
	if p.q.len == 0 && p.lifo.Load() {
		p.lifo.Store(false)
	}
	p.publishLocked()
}
