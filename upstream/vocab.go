package upstream

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// ShedReason says why a request was refused a slot. The pool decides it;
// String gives the reason label of shardgate_requests_shed_total.
type ShedReason int

// Shed reasons (docs/DESIGN.md, "Admission rules", rules 3, 4 and 6).
const (
	ShedQueueFull    ShedReason = iota // the queue was at queue.max_length
	ShedQueueTimeout                   // waited queue.timeout (or overdue in LIFO) without a slot
	ShedClientGone                     // the client left while waiting
	ShedNoBackend                      // no backend takes new requests
	NumShedReasons                     // the number of reasons, for tables indexed by reason
)

var shedNames = [NumShedReasons]string{"queue_full", "queue_timeout", "client_gone", "no_backend"}

// String returns the reason's label value, e.g. "queue_full".
func (r ShedReason) String() string {
	if r < 0 || r >= NumShedReasons {
		return "unknown"
	}
	return shedNames[r]
}

// Errors Acquire returns when it gives no slot, one per ShedReason.
var (
	ErrQueueFull    = errors.New("upstream: queue full")
	ErrQueueTimeout = errors.New("upstream: queue timeout")
	ErrClientGone   = errors.New("upstream: client gone")
	ErrNoBackend    = errors.New("upstream: no healthy backend")
)

var shedErrors = [NumShedReasons]error{ErrQueueFull, ErrQueueTimeout, ErrClientGone, ErrNoBackend}

// Reason returns the shed reason of an error Acquire returned; ok is false
// for any other error.
func Reason(err error) (r ShedReason, ok bool) {
	for i, e := range shedErrors {
		if err == e {
			return ShedReason(i), true
		}
	}
	return 0, false
}

// ErrorKind classifies a failed backend exchange. Classify decides it;
// String gives the kind label of shardgate_backend_errors_total.
type ErrorKind int

// Backend error kinds.
const (
	ErrConnect    ErrorKind = iota // refused, or not accepted within connect_timeout: the backend saw nothing
	ErrTimeout                     // no response within response_timeout
	ErrReset                       // connection reset or closed mid-exchange
	ErrProtocol                    // the backend sent something that is not a valid HTTP response
	NumErrorKinds                  // the number of kinds, for tables indexed by kind
)

var errorKindNames = [NumErrorKinds]string{"connect", "timeout", "reset", "protocol"}

// String returns the kind's label value, e.g. "connect".
func (k ErrorKind) String() string {
	if k < 0 || k >= NumErrorKinds {
		return "unknown"
	}
	return errorKindNames[k]
}

// Classify returns the kind of a non-nil error from Backend.Do.
func Classify(err error) ErrorKind {
	var de *DialError
	if errors.As(err, &de) {
		return ErrConnect
	}
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, net.ErrClosed) {
		return ErrReset
	}
	return ErrProtocol
}

// Observer records the outcome of one backend's exchanges. Backend.Do calls
// it; implementations must be safe for concurrent use and should neither
// lock nor allocate. The metrics package provides one per backend.
type Observer interface {
	// Response records a completed exchange and how long it took.
	Response(took time.Duration)
	// Error records a failed exchange of kind k.
	Error(k ErrorKind)
}
