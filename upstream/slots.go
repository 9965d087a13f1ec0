package upstream

import "sync/atomic"

// counter is an in-flight count of a backend or a pool, or a pool's count
// of queued requests (and those about to queue). Its zero value counts in
// this process's memory; attached to a shm.Slot it counts on the slot's
// shared word, so that every process of the instance draws from the same
// slots (docs/DESIGN.md, "Admission rules", rule 1), and a process takes
// the fast path only while nobody anywhere waits and a release anywhere
// looks for a waiter (rule 2). It has the methods of atomic.Int64 that
// admission uses, and the same cost when local: one predictable branch
// more.
//
// Shared, it also keeps this process's share of the count (the slot's
// Held or MyWaiting word) for crash reclaim. The total is raised first and
// this process's share second, lowered in the other order: a process
// killed between the two leaks one slot instead of letting a backend be
// overrun, and leaves the waiting count too high (everyone takes the slow
// path, which is correct) rather than too low (shm invariant 1).
//
// A counter must not be copied; attach must happen before first use.
type counter struct {
	local   atomic.Int64
	n, held *atomic.Int64 // the shared words (total, this process's); nil while local
}

// attach makes c count on the shared words total and mine.
func (c *counter) attach(total, mine *atomic.Int64) { c.n, c.held = total, mine }

// Load returns the count.
func (c *counter) Load() int64 {
	if c.n == nil {
		return c.local.Load()
	}
	return c.n.Load()
}

// CompareAndSwap sets the count from old to new; admission uses it only to
// take slots (new > old).
func (c *counter) CompareAndSwap(old, new int64) bool {
	if c.n == nil {
		return c.local.CompareAndSwap(old, new)
	}
	if !c.n.CompareAndSwap(old, new) {
		return false
	}
	c.held.Add(new - old)
	return true
}

// Add adds d to the count and returns the new count.
func (c *counter) Add(d int64) int64 {
	if c.n == nil {
		return c.local.Add(d)
	}
	if d < 0 {
		c.held.Add(d)
		return c.n.Add(d)
	}
	r := c.n.Add(d)
	c.held.Add(d)
	return r
}
