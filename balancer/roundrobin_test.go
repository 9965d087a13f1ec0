package balancer

import (
	"slices"
	"testing"
)

// TestRoundRobinSequence pins the order of picks of a fresh RoundRobin.
func TestRoundRobinSequence(t *testing.T) {
	tests := []struct {
		name string
		bs   []Backend
		want []int
	}{
		{"equal weights", pool(fake{}, fake{}, fake{}), []int{0, 1, 2, 0, 1, 2}},
		{"equal weights above 1 interleave", pool(fake{weight: 4}, fake{weight: 4}), []int{0, 1, 0, 1, 0, 1}},
		{"skips down", pool(fake{}, fake{down: true}, fake{}), []int{0, 2, 0, 2}},
		{"skips full", pool(fake{inflight: 2, limit: 2}, fake{}, fake{inflight: 1, limit: 3}), []int{1, 2, 1, 2}},
		{"ignores load", pool(fake{inflight: 9}, fake{}), []int{0, 1, 0, 1}},
		{"weights 2 1 interleave", pool(fake{weight: 2}, fake{weight: 1}), []int{0, 1, 0, 0, 1, 0}},
		{"weights 3 2 1", pool(fake{weight: 3}, fake{weight: 2}, fake{weight: 1}),
			[]int{0, 1, 2, 0, 1, 0, 0, 1, 2, 0, 1, 0}},
		{"weights 1 3 with a down backend", pool(fake{weight: 1}, fake{weight: 5, down: true}, fake{weight: 3}),
			[]int{0, 2, 2, 2, 0, 2, 2, 2}},
		{"none available", pool(fake{down: true}), []int{-1, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewRoundRobin()
			got := make([]int, len(tt.want))
			for i := range got {
				got[i] = p.Pick(tt.bs)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Pick() sequence = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRoundRobinShares pins that each available backend gets exactly
// weight/sum of the picks over whole cycles.
func TestRoundRobinShares(t *testing.T) {
	tests := []struct {
		name  string
		bs    []Backend
		picks int
		want  []int // per backend, then -1
	}{
		{"weights 5 3 1", pool(fake{weight: 5}, fake{weight: 3}, fake{weight: 1}), 9000, []int{5000, 3000, 1000, 0}},
		{"large weight", pool(fake{weight: 1000}, fake{weight: 1}), 10010, []int{10000, 10, 0}},
		{"weight below 1 counts as 1", pool(fake{weight: -3}, fake{weight: 2}), 300, []int{100, 200, 0}},
		{"down backend's share goes to all others",
			pool(fake{weight: 2}, fake{weight: 2, down: true}, fake{weight: 1}), 300, []int{200, 0, 100, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := counts(NewRoundRobin(), tt.bs, tt.picks); !slices.Equal(got, tt.want) {
				t.Errorf("picks per backend = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRoundRobinAvailabilityChange checks the rotation carries on over the
// backends left when one becomes unavailable mid-cycle.
func TestRoundRobinAvailabilityChange(t *testing.T) {
	fs := []*fake{{}, {}, {}}
	bs := []Backend{fs[0], fs[1], fs[2]}
	p := NewRoundRobin()
	p.Pick(bs)
	fs[1].down = true
	got := counts(p, bs, 100)
	if want := []int{50, 0, 50, 0}; !slices.Equal(got, want) {
		t.Errorf("picks per backend = %v, want %v", got, want)
	}
}
