package upstream

import (
	"strconv"
	"sync"
	"time"
)

// OutlierConfig configures passive ejection for a pool.
type OutlierConfig struct {
	// Consecutive failed exchanges in a row eject a backend (a failed
	// connect at once); 0 = never.
	Consecutive int64
	// BaseTime is the first ejection's length; each ejection that follows
	// within MaxEjectionTime of the last one's end lasts twice as long,
	// up to MaxEjectionTime.
	BaseTime time.Duration
	// MaxPercent caps the share of the pool's backends ejected at once,
	// rounded down. The last backend in rotation is never ejected.
	MaxPercent int
	// On5xx counts 5xx answers as failures.
	On5xx bool
}

// MaxEjectionTime caps one ejection; a backend that stayed in rotation
// that long since its last ejection starts again from the base time.
const MaxEjectionTime = 5 * time.Minute

// outliers is the pool's ejection state: which backends are ejected, and the
// timer seam that ends ejections.
type outliers struct {
	mu sync.Mutex // protects ejection decisions, so two never race past the cap
	// afterFunc runs f after d (time.AfterFunc; tests may replace it).
	afterFunc func(d time.Duration, f func()) *time.Timer
}

// Answered records a response from b with the given status: it ends b's
// streak of failures unless the status is a 5xx and the pool counts those.
// It neither allocates nor locks.
func (p *Pool) Answered(b *Backend, status int) {
	b.rot.answered.Add(1)
	if status >= 500 && status <= 599 && p.m.Load().outlier.On5xx {
		p.Failed(b)
		return
	}
	if b.rot.streak.Load() != 0 {
		b.rot.streak.Store(0)
	}
}

// Failed records a failed exchange with b: a connect failure, a reset, a
// protocol error or a timeout. The Consecutive-th in a row ejects b when
// the pool's cap allows; it reports whether b was ejected now.
func (p *Pool) Failed(b *Backend) bool {
	c := p.m.Load().outlier
	n := b.rot.streak.Add(1)
	if c.Consecutive <= 0 || n < c.Consecutive {
		return false
	}
	return p.eject(b, c, "after "+strconv.FormatInt(n, 10)+" failures in a row")
}

// ConnectFailed records a failed connect to b (refused, or not accepted
// within connect_timeout): unlike other failures it ejects b at once, when
// the pool's cap allows, since a retry would otherwise meet the same
// refusal (and least_inflight favours a backend whose requests fail fast).
// It reports whether b was ejected now.
func (p *Pool) ConnectFailed(b *Backend) bool {
	c := p.m.Load().outlier
	b.rot.streak.Add(1)
	if c.Consecutive <= 0 {
		return false
	}
	return p.eject(b, c, "connect failed")
}

// eject takes b out of rotation unless that would exceed the pool's cap or
// leave it with no backend in rotation.
func (p *Pool) eject(b *Backend, c OutlierConfig, why string) bool {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	m := p.m.Load()
	ejected, others := 0, 0
	for _, x := range m.backends {
		x.rot.mu.Lock()
		if x.rot.ejected {
			ejected++
		}
		x.rot.mu.Unlock()
		if x != b && x.Up() {
			others++
		}
	}
	if others == 0 || ejected+1 > len(m.backends)*c.MaxPercent/100 {
		return false
	}
	b.rot.mu.Lock()
	defer b.rot.mu.Unlock()
	r := &b.rot
	if r.ejected || r.removed {
		return false
	}
	now := p.now()
	if now.Sub(r.returned) > MaxEjectionTime {
		r.ejections = 0
	}
	d := min(c.BaseTime<<r.ejections, MaxEjectionTime)
	if d <= 0 { // shifted past int64
		d = MaxEjectionTime
	}
	r.ejections = min(r.ejections+1, 32)
	r.ejected = true
	r.reason = "ejected for " + d.String() + ": " + why
	b.rot.streak.Store(0)
	b.refreshLocked()
	p.out.afterFunc(d, func() { p.unEject(b) })
	return true
}

// unEject puts b back in rotation after its ejection time.
func (p *Pool) unEject(b *Backend) {
	b.rot.mu.Lock()
	defer b.rot.mu.Unlock()
	r := &b.rot
	r.ejected = false
	r.returned = p.now()
	r.reason = "back after ejection"
	b.refreshLocked()
}

// OthersUp reports whether a backend of the pool other than b is in
// rotation.
func (p *Pool) OthersUp(b *Backend) bool {
	for _, x := range p.m.Load().backends {
		if x != b && x.Up() {
			return true
		}
	}
	return false
}
