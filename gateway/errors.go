package gateway

import (
	"errors"
	"net"

	"github.com/valyala/fasthttp"

	"shardgate/upstream"
)

// backendStatus maps a failed backend exchange to the status the client gets
// and the line of text that names it (docs/DESIGN.md, "Errors a client can
// get"). upstream.Classify decides the kind; this is the one place that
// decides the status.
func backendStatus(kind upstream.ErrorKind, err error) (int, string) {
	switch kind {
	case upstream.ErrConnect:
		var de *upstream.DialError
		if errors.As(err, &de) && de.Timeout() {
			return fasthttp.StatusGatewayTimeout, "backend connect timeout"
		}
		return fasthttp.StatusBadGateway, "backend unreachable"
	case upstream.ErrTimeout:
		return fasthttp.StatusGatewayTimeout, "backend timeout"
	case upstream.ErrReset:
		return fasthttp.StatusBadGateway, "backend closed the connection"
	default:
		return fasthttp.StatusBadGateway, "bad response from backend"
	}
}

// shedText is the body line of a shed request, by reason.
var shedText = [upstream.NumShedReasons]string{
	upstream.ShedQueueFull:    "queue full",
	upstream.ShedQueueTimeout: "queue timeout",
	upstream.ShedClientGone:   "client gone",
	upstream.ShedNoBackend:    "no healthy backend",
}

// statusClientGone is recorded for requests whose client left while they
// waited; the client never sees it (nginx's 499).
const statusClientGone = 499

// serverError answers requests fasthttp could not read: 431 for an
// oversized header block, 413 for an oversized body, 408 for a client too
// slow to send its request, 400 for anything malformed (a head ended by a
// bare LF included, see headConn). fasthttp closes the
// connection afterwards.
func serverError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		reply(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request header too large", "")
	case errors.Is(err, errBareLF):
		reply(ctx, fasthttp.StatusBadRequest, "bare LF in header", "")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		reply(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large", "")
		lingerOnClose(ctx.Conn()) // the client may still be sending the body
	case errors.As(err, &ne) && ne.Timeout():
		reply(ctx, fasthttp.StatusRequestTimeout, "request timeout", "")
	default:
		reply(ctx, fasthttp.StatusBadRequest, "malformed request", "")
	}
}

// reply replaces the response with the gateway's own: a status and one line
// of text naming the reason.
func reply(ctx *fasthttp.RequestCtx, code int, text, retryAfter string) {
	r := &ctx.Response
	r.Reset()
	r.SetStatusCode(code)
	r.Header.SetContentType("text/plain; charset=utf-8")
	if retryAfter != "" {
		r.Header.Set("Retry-After", retryAfter)
	}
	r.SetBodyString(text + "\n")
}
