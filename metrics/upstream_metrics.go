package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shardgate/upstream"
)

const (
	minCode = 100
	maxCode = 599
)

// codeTable holds the shardgate_requests_total child of every status code one
// upstream has answered with. Slots are filled on first use, so only codes
// actually seen become series.
type codeTable struct {
	codes [maxCode - minCode + 1]atomic.Pointer[codeCounter]
	other atomic.Pointer[codeCounter] // codes outside 100..599
}

type codeCounter struct{ c prometheus.Counter }

// UpstreamMetrics holds the request-path metric handles of one upstream. Its
// methods neither allocate (after a status code's first use) nor lock. It is
// safe for concurrent use; a nil *UpstreamMetrics records nothing.
type UpstreamMetrics struct {
	name      string
	requests  *prometheus.CounterVec
	codes     *codeTable
	duration  prometheus.Observer
	queueWait prometheus.Observer
	shed      [upstream.NumShedReasons]prometheus.Counter
	backends  []BackendMetrics
	streams   prometheus.Gauge
}

// Request records one request routed to the upstream: the status code the
// client got and the total time it took, shed requests included.
func (u *UpstreamMetrics) Request(code int, total time.Duration) {
	if u == nil {
		return
	}
	u.counter(code).Inc()
	u.duration.Observe(total.Seconds())
}

func (u *UpstreamMetrics) counter(code int) prometheus.Counter {
	slot := &u.codes.other
	if code >= minCode && code <= maxCode {
		slot = &u.codes.codes[code-minCode]
	}
	if c := slot.Load(); c != nil {
		return c.c
	}
	label := "other"
	if slot != &u.codes.other {
		label = strconv.Itoa(code)
	}
	// Racing callers resolve the same child, so whichever store wins is right.
	c := &codeCounter{c: u.requests.WithLabelValues(u.name, label)}
	slot.Store(c)
	return c.c
}

// Stream adds delta to the upstream's open streams (shardgate_streams_open).
func (u *UpstreamMetrics) Stream(delta int) {
	if u == nil {
		return
	}
	u.streams.Add(float64(delta))
}

// QueueWait records how long a request waited in the queue for a slot.
func (u *UpstreamMetrics) QueueWait(d time.Duration) {
	if u == nil {
		return
	}
	u.queueWait.Observe(d.Seconds())
}

// Shed counts one request shed for reason r. Unknown reasons are ignored.
func (u *UpstreamMetrics) Shed(r upstream.ShedReason) {
	if u == nil || r < 0 || r >= upstream.NumShedReasons {
		return
	}
	u.shed[r].Inc()
}

// Backend returns the handles of the i-th backend given to Metrics.Upstream,
// or nil (which records nothing) when i is out of range.
func (u *UpstreamMetrics) Backend(i int) *BackendMetrics {
	if u == nil || i < 0 || i >= len(u.backends) {
		return nil
	}
	return &u.backends[i]
}

// BackendMetrics holds the request-path metric handles of one backend. Its
// methods neither allocate nor lock. It is safe for concurrent use; a nil
// *BackendMetrics records nothing.
type BackendMetrics struct {
	response prometheus.Observer
	errors   [upstream.NumErrorKinds]prometheus.Counter
}

// Response records the time from sending a request to the backend to reading
// its response.
func (b *BackendMetrics) Response(d time.Duration) {
	if b == nil {
		return
	}
	b.response.Observe(d.Seconds())
}

// Error counts one failed exchange of kind k. Unknown kinds are ignored.
func (b *BackendMetrics) Error(k upstream.ErrorKind) {
	if b == nil || k < 0 || k >= upstream.NumErrorKinds {
		return
	}
	b.errors[k].Inc()
}

var _ upstream.Observer = (*BackendMetrics)(nil)
