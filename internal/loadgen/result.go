// Package loadgen drives HTTP load for shardgate's end-to-end tests and
// benchmarks. OpenLoop sends requests at a constant arrival rate, each on a
// new connection with its own patience, whether or not earlier ones were
// answered (the way independent users arrive). ClosedLoop runs a fixed
// number of keep-alive clients that each send the next request only when the
// previous one is answered. Both return one Result per request.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Kind classifies how a request ended.
type Kind uint8

// Kinds of request outcome.
const (
	// KindNone: a complete response (any status) arrived.
	KindNone Kind = iota
	// KindTimeout: the client's patience ran out before the response was complete.
	KindTimeout
	// KindReset: the server reset or closed the connection before a complete response.
	KindReset
	// KindRefused: the connection was refused.
	KindRefused
	// KindOther: any other error.
	KindOther
)

var kindNames = [...]string{"ok", "timeout", "reset", "refused", "other"}

// String returns the kind's short name: ok, timeout, reset, refused or other.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Result is the outcome of one request.
type Result struct {
	// Start is when the request was due: its scheduled arrival for OpenLoop,
	// the moment it was sent for ClosedLoop.
	Start time.Time
	// Latency runs from Start until the whole body was read or the error.
	Latency time.Duration
	// Status is the response status code, 0 when no complete response arrived.
	Status int
	// RetryAfter is the response's Retry-After header, "" when absent.
	RetryAfter string
	// Kind says how the request ended; KindNone when a response arrived.
	Kind Kind
	// Err is the error behind Kind, nil for KindNone.
	Err error
}

// Classify maps a request error to its Kind; nil is KindNone.
func Classify(err error) Kind {
	var ne net.Error
	switch {
	case err == nil:
		return KindNone
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return KindReset
	default:
		return KindOther
	}
}

// Summary aggregates a set of Results.
type Summary struct {
	// Total is the number of results.
	Total int
	// Status counts complete responses by status code.
	Status map[int]int
	// Errors counts requests without a complete response, by Kind.
	Errors map[Kind]int
	// P50 and P99 are latency percentiles of the 200 responses (0 when none).
	P50, P99 time.Duration
	// Span runs from the earliest Start to the latest end of any request.
	Span time.Duration
}

// Summarize aggregates rs.
func Summarize(rs []Result) Summary {
	s := Summary{Total: len(rs), Status: map[int]int{}, Errors: map[Kind]int{}}
	var ok []time.Duration
	var first, last time.Time
	for _, r := range rs {
		if r.Kind == KindNone {
			s.Status[r.Status]++
		} else {
			s.Errors[r.Kind]++
		}
		if r.Kind == KindNone && r.Status == 200 {
			ok = append(ok, r.Latency)
		}
		if end := r.Start.Add(r.Latency); last.IsZero() || end.After(last) {
			last = end
		}
		if first.IsZero() || r.Start.Before(first) {
			first = r.Start
		}
	}
	s.Span = last.Sub(first)
	s.P50 = Percentile(ok, 50)
	s.P99 = Percentile(ok, 99)
	return s
}

// String renders s on one line, e.g.
// "n=10 200=8 503=1 timeout=1 p50=21ms p99=40ms span=1s".
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "n=%d", s.Total)
	codes := make([]int, 0, len(s.Status))
	for c := range s.Status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, " %d=%d", c, s.Status[c])
	}
	for k := KindTimeout; k <= KindOther; k++ {
		if n := s.Errors[k]; n > 0 {
			fmt.Fprintf(&b, " %s=%d", k, n)
		}
	}
	fmt.Fprintf(&b, " p50=%v p99=%v span=%v", s.P50.Round(time.Microsecond),
		s.P99.Round(time.Microsecond), s.Span.Round(time.Millisecond))
	return b.String()
}

// Percentile returns the p-th percentile (0..100, nearest rank) of ds,
// 0 when ds is empty. ds is not modified.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
