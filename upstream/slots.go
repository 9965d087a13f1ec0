package upstream

import (
	"sync/atomic"

	"shardgate/shm"
)

// counter is an in-flight count of a backend or a pool. Its zero value
// counts in this process's memory; attached to a shm.Slot it counts on the
// slot's shared word, so that every process of the instance draws from the
// same slots (docs/DESIGN.md, "Admission rules", rule 1). It has the
// methods of atomic.Int64 that admission uses, and the same cost when
// local: one predictable branch more.
//
// Shared, it also keeps this process's share of the count (the slot's
// Held word) for crash reclaim. A slot is taken first and recorded second,
// un-recorded first and freed second: a process killed between the two
// leaks one slot instead of letting a backend be overrun (shm invariant 1).
//
// A counter must not be copied; attach must happen before first use.
type counter struct {
	local   atomic.Int64
	n, held *atomic.Int64 // the shared words; nil while local
}

func (c *counter) attach(sl *shm.Slot) { c.n, c.held = sl.Inflight(), sl.Held() }

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

// waitCount is a pool's count of queued requests (and those about to
// queue): local by default, or the sum over all processes when attached,
// so that a process takes the fast path only while nobody anywhere waits
// and a release anywhere looks for a waiter (rule 2). The total is raised
// first and lowered second, so a process killed in between leaves it too
// high (everyone takes the slow path, which is correct) rather than too
// low (a waiter missed).
type waitCount struct {
	local     atomic.Int64
	all, mine *atomic.Int64 // the shared words; nil while local
}

func (c *waitCount) attach(sl *shm.Slot) { c.all, c.mine = sl.Waiting(), sl.MyWaiting() }

// Load returns the count, over all processes when shared.
func (c *waitCount) Load() int64 {
	if c.all == nil {
		return c.local.Load()
	}
	return c.all.Load()
}

// Add adds d to the count.
func (c *waitCount) Add(d int64) {
	if c.all == nil {
		c.local.Add(d)
		return
	}
	if d < 0 {
		c.mine.Add(d)
		c.all.Add(d)
		return
	}
	c.all.Add(d)
	c.mine.Add(d)
}
