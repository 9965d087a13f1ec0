package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// History is an upstream's last minutes, one sample per second, oldest
// first; every slice has the same length.
type History struct {
	Served   []uint32  `json:"served"`   // responses from backends per second
	Shed     []uint32  `json:"shed"`     // requests shed per second
	Errors   []uint32  `json:"errors"`   // failed backend exchanges per second
	Queue    []int32   `json:"queue"`    // queue length at the sample
	Inflight []int32   `json:"inflight"` // requests at the backends at the sample
	Limit    []int32   `json:"limit"`    // the pool's limit (0: unlimited)
	WaitP50  []float32 `json:"wait_p50"` // queue wait of that second, seconds (bucket bound)
	WaitP99  []float32 `json:"wait_p99"`
}

// TransitionStatus is one change of a backend's rotation state.
type TransitionStatus struct {
	Time   string `json:"time"` // RFC 3339
	Up     bool   `json:"up"`
	Reason string `json:"reason"`
}

// QueueWaitBuckets appends to dst the cumulative counts of the upstream's
// queue wait histogram, one per bucket of QueueWaitBounds, and returns it.
// A nil *UpstreamMetrics returns dst unchanged. For the status history,
// once a second; not for the request path.
func (u *UpstreamMetrics) QueueWaitBuckets(dst []uint64) []uint64 {
	if u == nil {
		return dst
	}
	m, ok := u.queueWait.(prometheus.Metric)
	if !ok {
		return dst
	}
	var d dto.Metric
	if m.Write(&d) != nil || d.Histogram == nil {
		return dst
	}
	for _, b := range d.Histogram.Bucket {
		dst = append(dst, b.GetCumulativeCount())
	}
	return append(dst, d.Histogram.GetSampleCount())
}

// QueueWaitBounds returns the upper bounds, in seconds, of the buckets
// QueueWaitBuckets counts; the last bucket (+Inf) has none.
func QueueWaitBounds() []float64 { return durationBuckets }
