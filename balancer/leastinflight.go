package balancer

import "sync/atomic"

// LeastInflight picks the Available backend with the lowest load score and
// shares ties out in turn, in proportion to weight (see the package
// documentation). The zero value is ready to use. LeastInflight is safe for
// concurrent use and must not be copied after first use.
type LeastInflight struct {
	next atomic.Uint64 // counts tied picks; selects whose turn it is
}

// NewLeastInflight returns a new LeastInflight policy.
func NewLeastInflight() *LeastInflight {
	return &LeastInflight{}
}

// Pick returns the index of the Available backend with the lowest load
// score, or -1 when none is Available.
func (p *LeastInflight) Pick(bs []Backend) int {
	best, ties, tieWeight := -1, 0, int64(0)
	var bn, bd uint64
	for i, b := range bs {
		if !b.Available() {
			continue
		}
		n, d := load(b)
		c := -1
		if best >= 0 {
			c = cmpLoad(n, d, bn, bd)
		}
		switch c {
		case -1:
			best, bn, bd, ties, tieWeight = i, n, d, 1, weight(b)
		case 0:
			ties++
			tieWeight += weight(b)
		}
	}
	if ties <= 1 {
		return best
	}
	turn := int64((p.next.Add(1) - 1) % uint64(tieWeight))
	return p.nthTie(bs, best, bn, bd, turn)
}

// nthTie walks the Available backends from best on whose load score is still
// bn/bd and returns the one whose weight stretch holds turn. If loads changed
// since the first scan so that none does, it returns best.
func (p *LeastInflight) nthTie(bs []Backend, best int, bn, bd uint64, turn int64) int {
	for i := best; i < len(bs); i++ {
		b := bs[i]
		if !b.Available() {
			continue
		}
		if n, d := load(b); cmpLoad(n, d, bn, bd) != 0 {
			continue
		}
		turn -= weight(b)
		if turn < 0 {
			return i
		}
	}
	return best
}
