package balancer

// P2C is the power-of-two-choices policy: it draws two distinct Available
// backends at random, each with probability proportional to its weight, and
// picks the one with the lower load score. The zero value is ready to use.
// P2C is safe for concurrent use.
type P2C struct {
	// rnd returns a random number in [0, n); nil means randInt64N.
	// Tests replace it to make picks deterministic.
	rnd randSource
}

// NewP2C returns a new P2C policy.
func NewP2C() *P2C {
	return &P2C{}
}

// Pick returns the index of the less loaded of two Available backends drawn
// at random, the only Available one if there is one, or -1 when none is
// Available. On equal load the first drawn wins.
func (p *P2C) Pick(bs []Backend) int {
	count, total := availableWeight(bs)
	switch count {
	case 0:
		return -1
	case 1:
		return byWeight(bs, 0, -1)
	}
	i := byWeight(bs, p.rnd.intn(total), -1)
	if i < 0 {
		return -1
	}
	rest := total - weight(bs[i])
	if rest <= 0 {
		return i
	}
	j := byWeight(bs, p.rnd.intn(rest), i)
	if j < 0 {
		return i
	}
	in, id := load(bs[i])
	jn, jd := load(bs[j])
	if cmpLoad(jn, jd, in, id) < 0 {
		return j
	}
	return i
}
