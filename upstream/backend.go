// Package upstream owns the backends a gateway forwards to, the pools they
// form, and the admission queue in front of each pool.
//
// A request may run on a backend only while the backend has a free slot
// (in-flight below its limit) and the pool as a whole is below its own limit.
// When no slot is free the request waits in the pool's queue until a slot is
// handed to it, its deadline passes, or its client goes away. See
// docs/DESIGN.md, "Admission rules".
package upstream

import (
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/shm"
)

// BackendConfig is what a Backend is built from.
type BackendConfig struct {
	Address         string
	Limit           int64         // concurrent requests it can run; 0 = unlimited
	Weight          int64         // >= 1
	ConnectTimeout  time.Duration // TCP connect
	ResponseTimeout time.Duration // whole exchange once connected
	IdleConnTimeout time.Duration // pooled connections idle longer are closed
	TimeoutHold     time.Duration // after a response timeout, hold the slot until the backend answers, this long at most; 0 = release at once
	Observer        Observer      // records exchange outcomes; nil records nothing
	Slot            *shm.Slot     // shared in-flight count across processes (NewBackend only); nil = this process only
}

// Backend is one server of a pool: its address, its concurrency limit, the
// requests in flight on it and the connection pool to it. Safe for concurrent
// use. A Backend satisfies balancer.Backend.
type Backend struct {
	addr  string
	limit atomic.Int64
	// share points at the cluster share (share.go): the slot's word when
	// the backend counts on a shared slot, else ownShare; noShare = none.
	share    atomic.Pointer[atomic.Int64]
	ownShare atomic.Int64
	weight   atomic.Int64
	inflight counter
	up       atomic.Bool
	requests atomic.Uint64
	errors   atomic.Uint64

	client   *fasthttp.HostClient
	observer Observer  // set at creation, never changed
	slot     *shm.Slot // the shared count; nil = this process only

	rot  rotation     // what keeps it out of rotation; see health.go
	hold atomic.Int64 // TimeoutHold in ns; see hold.go
}

// NewBackend returns a healthy backend with no requests in flight.
func NewBackend(c BackendConfig) *Backend {
	b := &Backend{addr: c.Address, observer: c.Observer}
	if b.observer == nil {
		b.observer = nopObserver{}
	}
	b.ownShare.Store(noShare)
	b.share.Store(&b.ownShare)
	if c.Slot != nil {
		b.inflight.attach(c.Slot.Inflight(), c.Slot.Held())
		b.slot = c.Slot
		b.share.Store(c.Slot.Share())
	}
	b.up.Store(true)
	b.client = newHostClient(c)
	b.client.Transport = cleanTransport{b: b}
	b.Reconfigure(c)
	return b
}

// Reconfigure sets the tunables a reload may change without losing state:
// limit, weight, timeouts and the connection cap.
func (b *Backend) Reconfigure(c BackendConfig) {
	b.limit.Store(c.Limit)
	if b.slot != nil {
		b.slot.Limit().Store(c.Limit) // for the supervisor's cluster node
	}
	w := c.Weight
	if w < 1 {
		w = 1
	}
	b.weight.Store(w)
	b.hold.Store(int64(c.TimeoutHold))
	b.client.ReadTimeout = c.ResponseTimeout
	b.client.WriteTimeout = c.ResponseTimeout
	b.client.MaxIdleConnDuration = c.IdleConnTimeout
	b.client.SetMaxConns(maxConns(c.Limit))
}

// maxConns is the HostClient connection cap for a backend limit: never below
// the limit, so fasthttp never queues or refuses on its own.
func maxConns(limit int64) int {
	if limit <= 0 {
		return 1 << 20
	}
	return int(limit)
}

// Address returns the backend's host:port.
func (b *Backend) Address() string { return b.addr }

// Inflight returns the requests running on the backend now.
func (b *Backend) Inflight() int64 { return b.inflight.Load() }

// Limit returns the concurrency limit; 0 means unlimited.
func (b *Backend) Limit() int64 { return b.limit.Load() }

// Weight returns the balancing weight (>= 1).
func (b *Backend) Weight() int64 { return b.weight.Load() }

// Up reports whether the backend takes new requests.
func (b *Backend) Up() bool { return b.up.Load() }

// SetUp(false) takes the backend out of rotation for good, as a reload
// that removes it does: it takes no new requests, those in flight finish,
// and its checks stop. SetUp(true) undoes that; checks and ejection still
// apply.
func (b *Backend) SetUp(up bool) {
	if !up {
		b.remove()
		return
	}
	b.rot.mu.Lock()
	b.rot.removed = false
	b.refreshLocked()
	b.rot.mu.Unlock()
}

// Available reports whether a new request could start on the backend now.
func (b *Backend) Available() bool {
	if !b.up.Load() {
		return false
	}
	return !b.full(b.inflight.Load())
}

// Requests returns how many requests were forwarded to the backend.
func (b *Backend) Requests() uint64 { return b.requests.Load() }

// Errors returns how many forwarded requests failed at the transport level.
func (b *Backend) Errors() uint64 { return b.errors.Load() }

// tryAcquire takes a slot on the backend if one is free.
func (b *Backend) tryAcquire() bool {
	if !b.up.Load() {
		return false
	}
	for {
		n := b.inflight.Load()
		if b.full(n) {
			return false
		}
		if b.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

type nopObserver struct{}

func (nopObserver) Response(time.Duration) {}
func (nopObserver) Error(ErrorKind)        {}

// CloseIdleConnections closes the backend's pooled idle connections.
func (b *Backend) CloseIdleConnections() { b.client.CloseIdleConnections() }

// Retire is called once a reload or DNS discovery removed the backend: it
// leaves rotation for good and its checks stop, its idle connections
// close, and its shared slot entry may serve another backend once its last
// requests are done.
func (b *Backend) Retire() {
	b.remove() // Pool.Update did, unless the reload removed its whole upstream
	b.CloseIdleConnections()
	if b.slot != nil {
		// The entry may serve another backend once dropped: from now on
		// a cluster share set on b (its last round) stays with b.
		b.ownShare.Store(b.share.Load().Load())
		b.share.Store(&b.ownShare)
		b.slot.Drop()
	}
}
