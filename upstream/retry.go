package upstream

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// RetryConfig is a pool's retry budget (Finagle's): over the last
// budgetWindow, retries may add Percent percent to the requests sent, plus
// MinPerSecond per second whatever the traffic.
type RetryConfig struct {
	Percent      int64
	MinPerSecond int64
}

// budgetWindow is how far back a retry budget counts.
const budgetWindow = 10 // seconds

// budget counts requests and retries per second over the last budgetWindow
// seconds, in a ring indexed by the Unix second. Deposit is lock-free; a
// retry, which is rare, takes mu to decide and count as one step. Counts
// racing with a slot's reset at a second's turn may be lost: the budget is
// an estimate, never a hard guarantee.
type budget struct {
	slots [budgetWindow]budgetSlot

	mu sync.Mutex // protects withdrawals' check-and-count
}

type budgetSlot struct {
	sec      atomic.Int64 // the Unix second the counts belong to
	requests atomic.Int64
	retries  atomic.Int64
}

// slot returns the ring slot of second sec, reset if it held an older one.
func (bu *budget) slot(sec int64) *budgetSlot {
	s := &bu.slots[uint64(sec)%budgetWindow]
	if old := s.sec.Load(); old != sec && s.sec.CompareAndSwap(old, sec) {
		s.requests.Store(0)
		s.retries.Store(0)
	}
	return s
}

// Sent counts one request sent to the pool at now, a first attempt: it adds
// to the retry budget. It neither allocates nor locks.
func (p *Pool) Sent(now time.Time) {
	p.budget.slot(now.Unix()).requests.Add(1)
}

// RetryAllowed takes one retry from the pool's budget at now, or reports
// false when the budget is spent.
func (p *Pool) RetryAllowed(now time.Time) bool {
	c := p.m.Load().retry
	bu := &p.budget
	sec := now.Unix()
	bu.mu.Lock()
	defer bu.mu.Unlock()
	var requests, retries int64
	for i := range bu.slots {
		s := &bu.slots[i]
		if d := sec - s.sec.Load(); d >= 0 && d < budgetWindow {
			requests += s.requests.Load()
			retries += s.retries.Load()
		}
	}
	if retries+1 > requests*c.Percent/100+c.MinPerSecond*budgetWindow {
		return false
	}
	bu.slot(sec).retries.Add(1)
	return true
}

// ExchangeError is a failed exchange on an open connection to a backend,
// with what is known of how far it got.
type ExchangeError struct {
	Err error
	// Reused is set when the connection had carried an exchange before:
	// the backend may have closed it meanwhile.
	Reused bool
	// Answering is set once a byte of the response arrived.
	Answering bool
}

func (e *ExchangeError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ExchangeError) Unwrap() error { return e.Err }

// Resendable reports whether a request that failed with err may be sent
// again, to the same or another backend: always when nothing of it was
// written (the connect failed), and for an idempotent request also when the
// connection failed, by a reset or a close, before any byte of the response
// arrived (most often a pooled connection the backend closed as it was
// reused). A timeout is never resendable: the backend may still be working
// on the request.
func Resendable(err error, idempotent bool) bool {
	var de *DialError
	if errors.As(err, &de) {
		return true
	}
	var ee *ExchangeError
	if !idempotent || !errors.As(err, &ee) || ee.Answering {
		return false
	}
	return !isTimeout(err)
}

// Idempotent reports whether requests with method may be sent twice
// without a different effect (RFC 9110 §9.2.2, less TRACE).
func Idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE":
		return true
	}
	return false
}
