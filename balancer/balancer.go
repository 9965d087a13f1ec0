package balancer

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Names of the policies, as written in the configuration.
const (
	// NameLeastInflight names the LeastInflight policy.
	NameLeastInflight = "least_inflight"
	// NameP2C names the P2C policy.
	NameP2C = "p2c"
	// NameRoundRobin names the RoundRobin policy.
	NameRoundRobin = "round_robin"
	// NameRandom names the Random policy.
	NameRandom = "random"
	// Default names the policy used when the configuration names none.
	Default = NameLeastInflight
)

// ErrUnknownPolicy is returned (wrapped, with the name) by New for a name it
// does not know.
var ErrUnknownPolicy = errors.New("balancer: unknown policy")

// maxWeight caps a backend's weight so that sums of weights cannot overflow.
const maxWeight = 1 << 32

// Backend is the read-only view of a backend a policy needs.
// Implementations must be safe for concurrent use (typed atomics).
type Backend interface {
	// Inflight returns the number of requests in flight to the backend now.
	Inflight() int64
	// Limit returns the backend's concurrency limit; 0 means unlimited.
	Limit() int64
	// Weight returns the backend's share relative to others; at least 1.
	Weight() int64
	// Available reports whether the backend is healthy and has a free slot:
	// Limit() == 0 || Inflight() < Limit().
	Available() bool
}

// Policy picks a backend for the next request.
type Policy interface {
	// Pick returns the index in bs of the chosen backend, or -1 when no
	// backend in bs is Available. Pick is safe for concurrent use and
	// allocates nothing.
	Pick(bs []Backend) int
}

var (
	_ Policy = (*LeastInflight)(nil)
	_ Policy = (*P2C)(nil)
	_ Policy = (*RoundRobin)(nil)
	_ Policy = (*Random)(nil)
)

// registry maps each configuration name to its constructor; it is the one
// list of policy names (config validates against Names).
var registry = []struct {
	name string
	make func() Policy
}{
	{NameLeastInflight, func() Policy { return NewLeastInflight() }},
	{NameP2C, func() Policy { return NewP2C() }},
	{NameRoundRobin, func() Policy { return NewRoundRobin() }},
	{NameRandom, func() Policy { return NewRandom() }},
}

// Names returns the policy names New accepts, the default first.
func Names() []string {
	names := make([]string, len(registry))
	for i, p := range registry {
		names[i] = p.name
	}
	return names
}

// New returns a new policy of the kind name, one of Names. Any other name is
// an error wrapping ErrUnknownPolicy.
func New(name string) (Policy, error) {
	for _, p := range registry {
		if p.name == name {
			return p.make(), nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownPolicy, name)
}

// weight returns b's weight clamped to [1, maxWeight].
func weight(b Backend) int64 {
	return min(max(b.Weight(), 1), maxWeight)
}

// load returns b's load score as the fraction num/den: requests in flight
// over the limit for a limited backend, over the weight for an unlimited one.
func load(b Backend) (num, den uint64) {
	num = uint64(max(b.Inflight(), 0))
	d := b.Limit()
	if d <= 0 {
		d = weight(b)
	}
	return num, uint64(d)
}

// cmpLoad compares the fractions an/ad and bn/bd exactly and returns -1, 0
// or +1 as the first is less than, equal to or greater than the second.
func cmpLoad(an, ad, bn, bd uint64) int {
	lh, ll := bits.Mul64(an, bd)
	rh, rl := bits.Mul64(bn, ad)
	switch {
	case lh < rh || (lh == rh && ll < rl):
		return -1
	case lh == rh && ll == rl:
		return 0
	}
	return 1
}

// availableWeight returns how many backends in bs are Available and the sum
// of their weights.
func availableWeight(bs []Backend) (count int, total int64) {
	for _, b := range bs {
		if b.Available() {
			count++
			total += weight(b)
		}
	}
	return count, total
}

// byWeight walks the Available backends other than bs[skip], giving each a
// stretch of weight(b) numbers, and returns the index of the one whose
// stretch holds r (0 <= r < their total weight). If availability changed
// since the total was taken and r falls beyond the end, it returns the last
// Available backend seen, or -1 when it saw none.
func byWeight(bs []Backend, r int64, skip int) int {
	last := -1
	for i, b := range bs {
		if i == skip || !b.Available() {
			continue
		}
		r -= weight(b)
		if r < 0 {
			return i
		}
		last = i
	}
	return last
}

// randSource returns a random number in [0, n); tests set one to make picks
// deterministic, nil means randInt64N.
type randSource func(n int64) int64

func (r randSource) intn(n int64) int64 {
	if r != nil {
		return r(n)
	}
	return randInt64N(n)
}

// randInt64N returns a uniform random number in [0, n) from the runtime's
// per-thread generator: lock-free and allocation-free.
func randInt64N(n int64) int64 {
	return rand.Int64N(n)
}
