package balancer

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestP2CPick(t *testing.T) {
	tests := []struct {
		name       string
		bs         []Backend
		rnd        []int64 // scripted random numbers
		want       int
		wantBounds []int64 // the n each random number was drawn below
	}{
		{"empty", nil, nil, -1, nil},
		{"all down", pool(fake{down: true}, fake{down: true}), nil, -1, nil},
		{"one available: no draw", pool(fake{down: true}, fake{inflight: 9}, fake{inflight: 1, limit: 1}), nil, 1, nil},
		{"second drawn is less loaded", pool(fake{inflight: 3}, fake{inflight: 1}), []int64{0, 0}, 1, []int64{2, 1}},
		{"first drawn is less loaded", pool(fake{inflight: 3}, fake{inflight: 1}), []int64{1, 0}, 1, []int64{2, 1}},
		{"equal load: first drawn", pool(fake{inflight: 1}, fake{inflight: 1}), []int64{1, 0}, 1, []int64{2, 1}},
		{"second draw excludes the first", pool(fake{}, fake{inflight: 5}), []int64{1, 0}, 0, []int64{2, 1}},
		{"draws skip unavailable",
			pool(fake{down: true}, fake{inflight: 2}, fake{inflight: 1, limit: 1}, fake{inflight: 1}),
			[]int64{0, 0}, 3, []int64{2, 1}},
		{"score is fraction of limit",
			pool(fake{inflight: 1, limit: 2}, fake{inflight: 2, limit: 8}), []int64{0, 0}, 1, []int64{2, 1}},
		{"weighted draw: inside the heavy stretch",
			pool(fake{weight: 3}, fake{weight: 1}), []int64{2, 0}, 0, []int64{4, 1}},
		{"weighted draw: past the heavy stretch",
			pool(fake{weight: 3}, fake{weight: 1}), []int64{3, 0}, 1, []int64{4, 3}},
		{"three backends: middle pair",
			pool(fake{inflight: 1, weight: 2}, fake{inflight: 7}, fake{inflight: 4, weight: 2}),
			[]int64{2, 2}, 2, []int64{5, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd, bounds := script(t, tt.rnd...)
			p := &P2C{rnd: rnd}
			if got := p.Pick(tt.bs); got != tt.want {
				t.Errorf("Pick() = %d, want %d", got, tt.want)
			}
			if !slices.Equal(*bounds, tt.wantBounds) {
				t.Errorf("random numbers drawn below %v, want %v", *bounds, tt.wantBounds)
			}
		})
	}
}

// TestP2CAvoidsMostLoaded pins that the most loaded of three backends is
// never picked: it is always drawn together with a less loaded one.
func TestP2CAvoidsMostLoaded(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	p := &P2C{rnd: rng.Int64N}
	bs := pool(fake{inflight: 2}, fake{inflight: 50}, fake{inflight: 3})
	got := counts(p, bs, 3000)
	if got[1] != 0 {
		t.Errorf("most loaded backend picked %d times, want 0 (picks %v)", got[1], got)
	}
	// The least loaded wins whenever drawn: in 2 of 3 pairs.
	if got[0] < 1800 || got[0] > 2200 {
		t.Errorf("least loaded backend picked %d of 3000 times, want about 2000", got[0])
	}
}

// TestP2CWeights pins that on an idle pool (every pair ties, the first drawn
// wins) picks follow the weights.
func TestP2CWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	p := &P2C{rnd: rng.Int64N}
	bs := pool(fake{weight: 1}, fake{weight: 2}, fake{weight: 3, limit: 5})
	got := counts(p, bs, 60000)
	for i, want := range []int{10000, 20000, 30000} {
		if d := got[i] - want; d < -1000 || d > 1000 {
			t.Errorf("backend %d picked %d of 60000 times, want %d±1000", i, got[i], want)
		}
	}
}

// TestP2CDefaultRandom checks the zero value draws real random numbers.
func TestP2CDefaultRandom(t *testing.T) {
	var p P2C
	got := counts(&p, pool(fake{}, fake{}, fake{}), 600)
	for i := range 3 {
		if got[i] < 100 {
			t.Errorf("backend %d picked %d of 600 times, want about 200 (picks %v)", i, got[i], got)
		}
	}
}
