package balancer

import "sync/atomic"

// RoundRobin hands out turns to the Available backends in proportion to
// their weights, ignoring load. One cycle of turns is a sequence of rounds:
// round r gives one turn, in index order, to every backend whose weight is
// above r. Weights 3, 2 and 1 thus cycle A B C A B A. A single atomic counter
// says which turn of the cycle is next, so concurrent callers never share a
// turn. The zero value is ready to use. RoundRobin is safe for concurrent use
// and must not be copied after first use.
type RoundRobin struct {
	next atomic.Uint64 // counts picks; the turn within the cycle
}

// NewRoundRobin returns a new RoundRobin policy.
func NewRoundRobin() *RoundRobin {
	return &RoundRobin{}
}

// Pick returns the index of the Available backend whose turn it is, or -1
// when none is Available.
func (p *RoundRobin) Pick(bs []Backend) int {
	count, total, minW, maxW := rrScan(bs)
	if count == 0 {
		return -1
	}
	n := p.next.Add(1) - 1
	if minW == maxW {
		// Equal weights: one round per cycle.
		return nthOver(bs, int64(n%uint64(count)), 0)
	}
	pos := int64(n % uint64(total))
	r, before := roundOf(bs, pos, maxW)
	return nthOver(bs, pos-before, r)
}

// rrScan returns the number of Available backends, the sum of their weights
// and their smallest and largest weight.
func rrScan(bs []Backend) (count int, total, minW, maxW int64) {
	for _, b := range bs {
		if !b.Available() {
			continue
		}
		w := weight(b)
		if count == 0 || w < minW {
			minW = w
		}
		maxW = max(maxW, w)
		count++
		total += w
	}
	return count, total, minW, maxW
}

// turnsBefore returns how many turns the rounds before round r hand out:
// the sum over Available backends of min(weight, r).
func turnsBefore(bs []Backend, r int64) int64 {
	var s int64
	for _, b := range bs {
		if b.Available() {
			s += min(weight(b), r)
		}
	}
	return s
}

// roundOf returns the round r in [0, maxW) that holds turn pos of the cycle,
// found by binary search, and the number of turns before it.
func roundOf(bs []Backend, pos, maxW int64) (r, before int64) {
	lo, hi := int64(0), maxW-1
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if s := turnsBefore(bs, mid); s <= pos {
			lo, before = mid, s
		} else {
			hi = mid - 1
		}
	}
	return lo, before
}

// nthOver returns the index of the q-th (from 0) Available backend whose
// weight is above r. If availability changed so that there are not that
// many, it returns the last such backend seen, or -1 when it saw none.
func nthOver(bs []Backend, q, r int64) int {
	last := -1
	for i, b := range bs {
		if !b.Available() || weight(b) <= r {
			continue
		}
		if q == 0 {
			return i
		}
		q--
		last = i
	}
	return last
}
