package gateway

import (
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/accesslog"
	"shardgate/upstream"
)

// logAccess writes the request's access log line, if the access log is on.
func (g *Gateway) logAccess(ctx *fasthttp.RequestCtx, s *scratch, start time.Time, u *upstreamState,
	b *upstream.Backend, waited, took time.Duration, shed string) {
	if g.access == nil {
		return
	}
	e := accesslog.Entry{
		Time:        start,
		Method:      ctx.Request.Header.Method(),
		Host:        ctx.Request.Header.Host(),
		Path:        ctx.Request.Header.RequestURI(),
		Status:      ctx.Response.StatusCode(),
		Bytes:       int64(len(ctx.Response.Body())),
		QueueWait:   waited,
		BackendTime: took,
		Total:       time.Since(start),
		Shed:        shed,
		Shard:       -1,
	}
	if c, ok := s.conn.(shardConn); ok {
		e.Shard = c.Shard()
	}
	if s.conn != nil {
		s.buf = peerAddrPort(s.buf[:0], s.conn)
		e.Client = s.buf
	}
	if u != nil {
		e.Upstream = u.name
	}
	if b != nil {
		e.Backend = b.Address()
	}
	g.access.Log(&e)
}
