package admin

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ShedReason says why a request was answered without reaching a backend.
type ShedReason int

// Shed reasons; String gives the reason label value.
const (
	ShedQueueFull    ShedReason = iota // the queue was at max_length
	ShedQueueTimeout                   // waited queue.timeout without a slot
	ShedClientGone                     // the client left while waiting
	ShedNoBackend                      // no healthy backend
	numShedReasons
)

var shedReasonNames = [numShedReasons]string{"queue_full", "queue_timeout", "client_gone", "no_backend"}

// String returns the reason label value, e.g. "queue_full".
func (r ShedReason) String() string {
	if r < 0 || r >= numShedReasons {
		return "unknown"
	}
	return shedReasonNames[r]
}

// ErrorKind classifies a failed backend exchange.
type ErrorKind int

// Backend error kinds; String gives the kind label value.
const (
	ErrConnect  ErrorKind = iota // refused or failed to connect
	ErrTimeout                   // no response within response_timeout
	ErrReset                     // connection reset or closed mid-exchange
	ErrProtocol                  // the backend sent something that is not HTTP
	numErrorKinds
)

var errorKindNames = [numErrorKinds]string{"connect", "timeout", "reset", "protocol"}

// String returns the kind label value, e.g. "connect".
func (k ErrorKind) String() string {
	if k < 0 || k >= numErrorKinds {
		return "unknown"
	}
	return errorKindNames[k]
}

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
	shed      [numShedReasons]prometheus.Counter
	backends  []BackendMetrics
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

// QueueWait records how long a request waited in the queue for a slot.
func (u *UpstreamMetrics) QueueWait(d time.Duration) {
	if u == nil {
		return
	}
	u.queueWait.Observe(d.Seconds())
}

// Shed counts one request shed for reason r. Unknown reasons are ignored.
func (u *UpstreamMetrics) Shed(r ShedReason) {
	if u == nil || r < 0 || r >= numShedReasons {
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
	errors   [numErrorKinds]prometheus.Counter
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
func (b *BackendMetrics) Error(k ErrorKind) {
	if b == nil || k < 0 || k >= numErrorKinds {
		return
	}
	b.errors[k].Inc()
}
