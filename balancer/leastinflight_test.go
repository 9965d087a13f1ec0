package balancer

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestLeastInflightPick(t *testing.T) {
	tests := []struct {
		name string
		bs   []Backend
		want int
	}{
		{"one idle", pool(fake{}), 0},
		{"fewest in flight, unlimited", pool(fake{inflight: 3}, fake{inflight: 1}, fake{inflight: 2}), 1},
		{"lowest fraction of limit, not fewest in flight",
			pool(fake{inflight: 2, limit: 4}, fake{inflight: 1, limit: 3}, fake{inflight: 2, limit: 8}), 2},
		{"unlimited: in flight per weight",
			pool(fake{inflight: 4, weight: 2}, fake{inflight: 3, weight: 1}), 0},
		{"limited: weight does not change the score",
			pool(fake{inflight: 1, limit: 4, weight: 100}, fake{inflight: 1, limit: 8}), 1},
		{"mixed limited and unlimited",
			pool(fake{inflight: 3, limit: 4}, fake{inflight: 1, weight: 2}), 1},
		{"skips down even when idle", pool(fake{down: true}, fake{inflight: 5}), 1},
		{"skips full", pool(fake{inflight: 4, limit: 4}, fake{inflight: 9}), 1},
		{"first pick of a tie is the first tied", pool(fake{inflight: 2}, fake{inflight: 1}, fake{inflight: 1}), 1},
		{"equal fractions tie", pool(fake{inflight: 2, limit: 4}, fake{inflight: 1, limit: 2}), 0},
		{"weight below 1 counts as 1",
			pool(fake{inflight: 2, weight: -5}, fake{inflight: 3, weight: 2}), 1},
		// 2^40/(2^42+1) < 2^41/2^42, but both cross products exceed int64.
		{"no overflow",
			pool(fake{inflight: 1 << 40, limit: 1<<42 + 1}, fake{inflight: 1 << 41, limit: 1 << 42}), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewLeastInflight().Pick(tt.bs); got != tt.want {
				t.Errorf("Pick() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestLeastInflightTiesRotate pins that backends tied for the lowest load
// take turns (by weight), so an idle pool is not herded onto bs[0].
func TestLeastInflightTiesRotate(t *testing.T) {
	tests := []struct {
		name  string
		bs    []Backend
		picks int
		want  []int // per backend, then -1
	}{
		{"idle pool spread evenly", pool(fake{}, fake{}, fake{}), 300, []int{100, 100, 100, 0}},
		{"only the tied take turns",
			pool(fake{inflight: 1}, fake{}, fake{inflight: 5}, fake{}), 100, []int{0, 50, 0, 50, 0}},
		// Starting a scan at a rotating offset would give backend 2, after
		// the down one, a double share.
		{"a down neighbour's share is not inherited",
			pool(fake{}, fake{down: true}, fake{}, fake{}), 300, []int{100, 0, 100, 100, 0}},
		{"idle backends with different limits tie",
			pool(fake{limit: 4}, fake{limit: 1}, fake{}), 300, []int{100, 100, 100, 0}},
		{"ties share by weight",
			pool(fake{weight: 3, limit: 4}, fake{weight: 1, limit: 4}), 400, []int{300, 100, 0}},
		{"ties share by weight, heavy last",
			pool(fake{weight: 1}, fake{weight: 3}, fake{inflight: 1}), 400, []int{100, 300, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := counts(NewLeastInflight(), tt.bs, tt.picks); !slices.Equal(got, tt.want) {
				t.Errorf("picks per backend = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLeastInflightFills pins that requests held at the backends fill every
// backend in proportion to its limit before any is full.
func TestLeastInflightFills(t *testing.T) {
	fs := []*fake{{limit: 4}, {limit: 2}, {limit: 2}}
	bs := []Backend{fs[0], fs[1], fs[2]}
	p := NewLeastInflight()
	for k := range 8 {
		i := p.Pick(bs)
		if i < 0 {
			t.Fatalf("pick %d: Pick() = -1 with free slots", k)
		}
		fs[i].inflight++
		// No backend may be more than one request ahead of its fair share.
		for j, f := range fs {
			if f.inflight*8 > (int64(k)+1)*f.limit+8 {
				t.Fatalf("pick %d: backend %d has %d in flight, more than its share", k, j, f.inflight)
			}
		}
	}
	if got := p.Pick(bs); got != -1 {
		t.Errorf("Pick() on a full pool = %d, want -1", got)
	}
	for j, f := range fs {
		if f.inflight != f.limit {
			t.Errorf("backend %d in flight = %d, want %d", j, f.inflight, f.limit)
		}
	}
}

// TestLeastInflightLowest compares Pick with a float reference on random
// small pools, where float division is exact enough to rank fractions.
func TestLeastInflightLowest(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := NewLeastInflight()
	for range 3000 {
		bs := randomPool(rng)
		got := p.Pick(bs)
		best := -1.0
		for _, b := range bs {
			if b.Available() && (best < 0 || score(b) < best) {
				best = score(b)
			}
		}
		switch {
		case best < 0 && got != -1:
			t.Fatalf("Pick(%v) = %d, want -1", describe(bs), got)
		case best >= 0 && (got < 0 || !bs[got].Available() || score(bs[got]) != best):
			t.Fatalf("Pick(%v) = %d, want a backend with score %v", describe(bs), got, best)
		}
	}
}

func score(b Backend) float64 {
	d := b.Limit()
	if d == 0 {
		d = max(b.Weight(), 1)
	}
	return float64(b.Inflight()) / float64(d)
}
