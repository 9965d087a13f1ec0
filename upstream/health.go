package upstream

import (
	"bufio"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// A backend is in rotation (Backend.Up) unless one of three things keeps it
// out: a reload removed it, active checks marked it down, or passive outlier
// detection ejected it. Each has its own flag in rotation, under rotation.mu;
// Backend.up is their summary, the one value the request path reads.
// Whoever changes a flag recomputes the summary under the same lock, and a
// backend coming back hands its free slots to the pool's waiters.

// HealthConfig configures the active checks of a pool's backends.
type HealthConfig struct {
	Path      string        // request target, e.g. "/healthz"
	Host      string        // Host header; "" = the backend's address
	Interval  time.Duration // between the starts of two checks
	Timeout   time.Duration // one check, connect included
	Rise      int           // passes in a row that bring a down backend back
	Fall      int           // failures in a row that mark it down
	ExpectMin int           // lowest passing status code
	ExpectMax int           // highest passing status code
}

// rotation is the part of a Backend that decides whether it takes requests.
type rotation struct {
	// answered counts responses read from the backend (any status); a
	// check that times out while it rose is inconclusive.
	answered atomic.Uint64
	// streak counts failed exchanges in a row, for outlier detection.
	streak atomic.Int64

	mu        sync.Mutex // protects the fields below
	removed   bool
	checkDown bool // active checks marked it down
	checked   bool // at least one check finished since it was added
	passes    int  // checks passed in a row
	fails     int  // checks failed in a row
	ejected   bool
	ejections int       // ejections in a row; the next lasts base << ejections
	returned  time.Time // when the last ejection ended
	reason    string    // why it last went out of or back into rotation
	pool      *Pool     // the pool whose waiters a return wakes
	checker   *checker  // nil while checks are off
	history   transitions
}

// refreshLocked recomputes b.up from the flags and, when b came back,
// hands its slots to waiting requests. b.rot.mu must be held; the pool lock
// is taken after it, never the other way round.
func (b *Backend) refreshLocked() {
	r := &b.rot
	up := !r.removed && !r.checkDown && !r.ejected
	was := b.up.Swap(up)
	if was != up {
		r.history.add(Transition{Time: time.Now(), Up: up, Reason: r.reason})
	}
	if up && !was && r.pool != nil {
		p := r.pool
		p.mu.Lock()
		p.dispatchLocked()
		p.mu.Unlock()
	}
}

// setPool records the pool that b serves; Pool.Update calls it.
func (b *Backend) setPool(p *Pool) {
	b.rot.mu.Lock()
	b.rot.pool = p
	b.rot.mu.Unlock()
}

// remove takes b out of rotation for good and stops its checks.
func (b *Backend) remove() {
	b.rot.mu.Lock()
	defer b.rot.mu.Unlock()
	b.rot.removed = true
	b.rot.reason = "removed by a reload"
	b.stopChecksLocked()
	b.refreshLocked()
}

// State reports whether b takes requests and, in words, why it last went out
// of or back into rotation ("" when nothing happened yet).
func (b *Backend) State() (up bool, reason string) {
	b.rot.mu.Lock()
	defer b.rot.mu.Unlock()
	return b.up.Load(), b.rot.reason
}

// Checked reports whether active checks run on b and at least one finished.
func (b *Backend) Checked() bool {
	b.rot.mu.Lock()
	defer b.rot.mu.Unlock()
	return b.rot.checker != nil && b.rot.checked
}

// SetHealthCheck starts, reconfigures (c non-nil) or stops (c nil) the
// active checks of b. A backend keeps its check state across a change of
// settings; checks that start now run at once, and b stays in rotation
// until they fail Fall times.
func (b *Backend) SetHealthCheck(c *HealthConfig) {
	b.rot.mu.Lock()
	defer b.rot.mu.Unlock()
	r := &b.rot
	switch {
	case r.removed:
	case c == nil:
		if r.checker != nil {
			b.stopChecksLocked()
			if r.checkDown {
				r.reason = "health checks turned off"
			}
			r.checkDown, r.passes, r.fails = false, 0, 0
			b.refreshLocked()
		}
	case r.checker != nil:
		r.checker.cfg.Store(c)
	default:
		ck := &checker{b: b, stop: make(chan struct{}), done: make(chan struct{})}
		ck.cfg.Store(c)
		r.checker = ck
		go ck.run()
	}
}

// stopChecksLocked stops b's checker without waiting for a check that is
// under way; its result is then ignored.
func (b *Backend) stopChecksLocked() {
	if ck := b.rot.checker; ck != nil {
		close(ck.stop)
		b.rot.checker = nil
	}
}

// result is what one check found.
type result int

const (
	checkPass result = iota
	checkFail
	checkInconclusive // timed out while the backend was busy serving
)

// checker runs the active checks of one backend on a goroutine of its own,
// which ends when stop is closed.
type checker struct {
	b    *Backend
	cfg  atomic.Pointer[HealthConfig]
	stop chan struct{}
	done chan struct{} // closed when run returns
}

func (ck *checker) run() {
	defer close(ck.done)
	t := time.NewTimer(0) // the first check runs at once
	defer t.Stop()
	prev := ck.b.rot.answered.Load() // responses counted one interval ago
	for {
		select {
		case <-ck.stop:
			return
		case <-t.C:
		}
		c := ck.cfg.Load()
		t.Reset(c.Interval)
		res, err := ck.check(c, prev)
		prev = ck.b.rot.answered.Load()
		ck.b.applyCheck(ck, c, res, err)
	}
}

// check runs one check. A timeout is inconclusive when the backend was at
// its limit and answered requests since since (its answered count one
// interval ago): the worker that would answer the check was busy, not dead.
func (ck *checker) check(c *HealthConfig, since uint64) (result, error) {
	b := ck.b
	busy := b.atLimit()
	err := probe(b.addr, c)
	if err == nil {
		return checkPass, nil
	}
	if isTimeout(err) && (busy || b.atLimit()) && b.rot.answered.Load() > since {
		return checkInconclusive, err
	}
	return checkFail, err
}

// isTimeout reports whether err is a timeout (fasthttp's ErrTimeout is no
// net.Error, but has the Timeout method).
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// atLimit reports whether every slot of b is taken.
func (b *Backend) atLimit() bool {
	return b.full(b.inflight.Load())
}

// applyCheck applies the result of one check by ck, unless ck was stopped
// meanwhile.
func (b *Backend) applyCheck(ck *checker, c *HealthConfig, res result, err error) {
	b.rot.mu.Lock()
	defer b.rot.mu.Unlock()
	r := &b.rot
	if r.checker != ck {
		return
	}
	r.checked = true
	switch res {
	case checkPass:
		r.fails = 0
		r.passes++
		if r.checkDown && r.passes >= c.Rise {
			r.checkDown = false
			r.reason = "back after " + strconv.Itoa(r.passes) + " checks passed"
			b.refreshLocked()
		}
	case checkFail:
		r.passes = 0
		r.fails++
		if !r.checkDown && r.fails >= c.Fall {
			r.checkDown = true
			r.reason = strconv.Itoa(r.fails) + " checks failed: " + err.Error()
			b.refreshLocked()
		}
	}
}

// HealthError is a check that got an answer outside the expected statuses.
type HealthError struct{ Status int }

func (e *HealthError) Error() string {
	return "upstream: health check answered " + strconv.Itoa(e.Status)
}

// checkTimeout is a check that got no answer within its timeout.
type checkTimeout struct{ d time.Duration }

func (e checkTimeout) Error() string { return "no answer within " + e.d.String() }

// Timeout reports true: isTimeout recognises it.
func (e checkTimeout) Timeout() bool { return true }

// probe sends one check request on a connection of its own and reads the
// status line and headers of the answer. A timeout, at any step, is a
// checkTimeout.
func probe(addr string, c *HealthConfig) error {
	err := probeOnce(addr, c)
	if err != nil && isTimeout(err) {
		return checkTimeout{c.Timeout}
	}
	return err
}

func probeOnce(addr string, c *HealthConfig) error {
	deadline := time.Now().Add(c.Timeout)
	conn, err := net.DialTimeout("tcp", addr, c.Timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	host := c.Host
	if host == "" {
		host = addr
	}
	req := "GET " + c.Path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUser-Agent: shardgate-health-check\r\nConnection: close\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return err
	}
	var h fasthttp.ResponseHeader
	if err := h.Read(bufio.NewReaderSize(conn, 4096)); err != nil {
		return err
	}
	if s := h.StatusCode(); s < c.ExpectMin || s > c.ExpectMax {
		return &HealthError{Status: s}
	}
	return nil
}

// StopChecks stops the active checks of the pool's backends; call it once
// the pool serves no more.
func (p *Pool) StopChecks() {
	for _, b := range p.Backends() {
		b.SetHealthCheck(nil)
	}
}
