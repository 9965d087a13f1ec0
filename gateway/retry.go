package gateway

import (
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/metrics"
	"shardgate/upstream"
)

// maxAttempts bounds the backends one request is sent to: the first try
// and two retries.
const maxAttempts = 3

// retry reports whether the request that failed with err on its attempt-th
// try is to be sent again: it must be safe (upstream.Resendable), under
// maxAttempts, and within the upstream's retry budget; a connect failure is
// retried only when another backend than b is in rotation. A refusal by the
// budget is counted.
func (g *Gateway) retry(ctx *fasthttp.RequestCtx, u *upstreamState, b *upstream.Backend, err error, attempt int) bool {
	if attempt >= maxAttempts || !upstream.Resendable(err, upstream.Idempotent(ctx.Request.Header.Method())) {
		return false
	}
	var de *upstream.DialError
	connectFailed := errors.As(err, &de)
	if connectFailed && !u.pool.OthersUp(b) {
		return false // it refused just now; another dial would fail the same way
	}
	if !connectFailed && ctx.Request.IsBodyStream() {
		// A spooled body was (partly) written and its stream consumed: it
		// cannot be sent again.
		return false
	}
	if !u.pool.RetryAllowed(time.Now()) {
		u.retries.Retry(metrics.RetryBudgetExhausted)
		return false
	}
	return true
}

// retried counts the outcome of a request that was retried (attempt > 1):
// answered by a backend (ok) or not.
func (g *Gateway) retried(u *upstreamState, attempt int, ok bool) {
	if attempt == 1 {
		return
	}
	if ok {
		u.retries.Retry(metrics.RetrySuccess)
	} else {
		u.retries.Retry(metrics.RetryFailure)
	}
}

// failed counts a failed exchange against b's ejection (a failed connect
// ejects at once) and logs an ejection it caused.
func (g *Gateway) failed(u *upstreamState, b *upstream.Backend, err error) {
	var de *upstream.DialError
	ejected := false
	if errors.As(err, &de) {
		ejected = u.pool.ConnectFailed(b)
	} else {
		ejected = u.pool.Failed(b)
	}
	if ejected {
		_, reason := b.State()
		g.log.Warn("backend ejected", "upstream", u.name, "backend", b.Address(), "reason", reason, "error", err)
	}
}
