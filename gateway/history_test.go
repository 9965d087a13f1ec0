package gateway

import (
	"testing"

	"shardgate/metrics"
)

func TestHistoryQuantile(t *testing.T) {
	bounds := metrics.QueueWaitBounds()
	cum := func(perBucket map[int]uint64) []uint64 {
		out := make([]uint64, len(bounds)+1)
		var c uint64
		for i := range out {
			c += perBucket[i]
			out[i] = c
		}
		return out
	}
	before := cum(map[int]uint64{0: 50})
	// This second: 90 waits in bucket 2, 9 in bucket 5, 1 beyond every bound.
	now := cum(map[int]uint64{0: 50, 2: 90, 5: 9, len(bounds): 1})
	tests := []struct {
		q    float64
		want float32
	}{{0.5, float32(bounds[2])}, {0.95, float32(bounds[5])}, {0.99, float32(bounds[5])}, {1, float32(bounds[len(bounds)-1])}}
	for _, tt := range tests {
		if got := quantile(before, now, tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := quantile(now, now, 0.5); got != 0 {
		t.Errorf("quantile() without observations = %v, want 0", got)
	}
	if got := quantile(nil, now, 0.5); got != 0 {
		t.Errorf("quantile() without a previous reading = %v, want 0", got)
	}
}
