package balancer

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestRandomPick(t *testing.T) {
	weighted := func() []Backend { return pool(fake{weight: 1}, fake{weight: 2}, fake{weight: 3}) }
	tests := []struct {
		name       string
		bs         []Backend
		rnd        []int64
		want       int
		wantBounds []int64
	}{
		{"empty", nil, nil, -1, nil},
		{"one available: no draw", pool(fake{down: true}, fake{inflight: 3}), nil, 1, nil},
		{"start of first stretch", weighted(), []int64{0}, 0, []int64{6}},
		{"start of second stretch", weighted(), []int64{1}, 1, []int64{6}},
		{"end of second stretch", weighted(), []int64{2}, 1, []int64{6}},
		{"start of third stretch", weighted(), []int64{3}, 2, []int64{6}},
		{"end of third stretch", weighted(), []int64{5}, 2, []int64{6}},
		{"ignores load", pool(fake{inflight: 9}, fake{}), []int64{0}, 0, []int64{2}},
		{"skips unavailable",
			pool(fake{weight: 4, down: true}, fake{weight: 2}, fake{weight: 9, inflight: 1, limit: 1}, fake{weight: 1}),
			[]int64{2}, 3, []int64{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd, bounds := script(t, tt.rnd...)
			p := &Random{rnd: rnd}
			if got := p.Pick(tt.bs); got != tt.want {
				t.Errorf("Pick() = %d, want %d", got, tt.want)
			}
			if !slices.Equal(*bounds, tt.wantBounds) {
				t.Errorf("random numbers drawn below %v, want %v", *bounds, tt.wantBounds)
			}
		})
	}
}

// TestRandomWeights pins that picks follow the weights of the available
// backends.
func TestRandomWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	p := &Random{rnd: rng.Int64N}
	bs := pool(fake{weight: 1}, fake{weight: 3, down: true}, fake{weight: 2}, fake{weight: 3})
	got := counts(p, bs, 60000)
	for i, want := range []int{10000, 0, 20000, 30000} {
		if d := got[i] - want; d < -1000 || d > 1000 {
			t.Errorf("backend %d picked %d of 60000 times, want %d±1000", i, got[i], want)
		}
	}
}

// TestRandomDefaultRandom checks the zero value draws real random numbers.
func TestRandomDefaultRandom(t *testing.T) {
	var p Random
	got := counts(&p, pool(fake{}, fake{}, fake{}), 600)
	for i := range 3 {
		if got[i] < 100 {
			t.Errorf("backend %d picked %d of 600 times, want about 200 (picks %v)", i, got[i], got)
		}
	}
}
