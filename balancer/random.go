package balancer

// Random picks an Available backend at random with probability proportional
// to its weight, ignoring load. The zero value is ready to use. Random is
// safe for concurrent use.
type Random struct {
	// rnd returns a random number in [0, n); nil means randInt64N.
	// Tests replace it to make picks deterministic.
	rnd randSource
}

// NewRandom returns a new Random policy.
func NewRandom() *Random {
	return &Random{}
}

// Pick returns the index of an Available backend drawn at random by weight,
// or -1 when none is Available.
func (p *Random) Pick(bs []Backend) int {
	count, total := availableWeight(bs)
	switch count {
	case 0:
		return -1
	case 1:
		return byWeight(bs, 0, -1)
	}
	return byWeight(bs, p.rnd.intn(total), -1)
}
