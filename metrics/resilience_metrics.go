package metrics

import "github.com/prometheus/client_golang/prometheus"

// This file holds the metrics of retries and tunnels (issue 12), kept apart
// so that they move with the others into package metrics.

// RetryResult is what became of a retry decision; String gives the result
// label of shardgate_retries_total.
type RetryResult int

// Retry results.
const (
	RetrySuccess         RetryResult = iota // retried, and a backend answered
	RetryFailure                            // retried, and every try failed
	RetryBudgetExhausted                    // safe to retry, but the budget was spent
	numRetryResults
)

var retryResultNames = [numRetryResults]string{"success", "failure", "budget_exhausted"}

// String returns the result label value, e.g. "budget_exhausted".
func (r RetryResult) String() string {
	if r < 0 || r >= numRetryResults {
		return "unknown"
	}
	return retryResultNames[r]
}

// resilienceMetrics are the vectors of this file, registered by NewMetrics.
type resilienceMetrics struct {
	retries *prometheus.CounterVec
}

func (m *Metrics) registerResilience() {
	m.resilience.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "retries_total",
		Help: "Requests retried after a failure that was safe to retry, by what became of them.",
	}, []string{"upstream", "result"})
	m.reg.MustRegister(m.resilience.retries)
}

// RetryMetrics holds the retry counters of one upstream. Safe for
// concurrent use; a nil *RetryMetrics records nothing.
type RetryMetrics struct {
	results [numRetryResults]prometheus.Counter
}

// Retries returns the retry counters of upstream name.
func (m *Metrics) Retries(name string) *RetryMetrics {
	r := &RetryMetrics{}
	for i := range r.results {
		r.results[i] = m.resilience.retries.WithLabelValues(name, RetryResult(i).String())
	}
	return r
}

// Retry counts one retry outcome.
func (r *RetryMetrics) Retry(res RetryResult) {
	if r == nil || res < 0 || res >= numRetryResults {
		return
	}
	r.results[res].Inc()
}
