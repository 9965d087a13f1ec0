package gateway

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/valyala/fasthttp"

	"shardgate/admin"
	"shardgate/upstream"
)

// classify maps a failed backend exchange to its error kind, the status the
// client gets and the line of text that names it. It is the one place that
// decides.
func classify(err error) (admin.ErrorKind, int, string) {
	var de *upstream.DialError
	if errors.As(err, &de) {
		if de.Timeout() {
			return admin.ErrConnect, fasthttp.StatusGatewayTimeout, "backend connect timeout"
		}
		return admin.ErrConnect, fasthttp.StatusBadGateway, "backend unreachable"
	}
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout() {
		return admin.ErrTimeout, fasthttp.StatusGatewayTimeout, "backend timeout"
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, net.ErrClosed) {
		return admin.ErrReset, fasthttp.StatusBadGateway, "backend closed the connection"
	}
	return admin.ErrProtocol, fasthttp.StatusBadGateway, "bad response from backend"
}

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
	case errors.As(err, &ne) && ne.Timeout():
		reply(ctx, fasthttp.StatusRequestTimeout, "request timeout", "")
	default:
		reply(ctx, fasthttp.StatusBadRequest, "malformed request", "")
	}
}
