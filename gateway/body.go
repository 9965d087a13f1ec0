package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/accesslog"
	"shardgate/config"
	"shardgate/listener"
	"shardgate/upstream"
)

// Large response bodies. A backend response whose body fits in
// response_buffer_bytes is read whole into memory on the exchange worker,
// as it always was: that path is unchanged and allocates nothing. A longer
// one continues into a spool file (a tee): a goroutine copies it from the
// backend as fast as the backend sends, and the moment the backend has sent
// it all its connection goes back to the pool and the slot is released;
// the client reads the file behind it at its own pace through a respBody,
// from the first byte on. A stream (text/event-stream, X-Accel-Buffering:
// no, or a route with buffering: false) is handed to the client as it
// arrives, with the slot held until the stream ends; so is the part of a
// response beyond max_spool_bytes, or a response that cannot be spooled.

// bodyConfig is the body handling of one loaded configuration. Immutable.
type bodyConfig struct {
	config.Bodies
	readTimeout  time.Duration // server.read_timeout, per read of a request body
	writeTimeout time.Duration // server.write_timeout, per write of a response body
	maxBody      int           // server.max_body_bytes
}

// bodyState is the body handling of one request, kept in its scratch.
type bodyState struct {
	g    *Gateway
	u    *upstreamState
	opts upstream.Options
	rb   *respBody // the response body handed to the client writer, if any

	reqBuf []byte // a request body being read; kept for the next request
}

// prepare sets what the exchange for u needs to read the response.
func (bs *bodyState) prepare(g *Gateway, u *upstreamState) {
	bs.g, bs.u, bs.rb = g, u, nil
	bs.opts.BufferBytes = u.bodies.ResponseBufferBytes
	bs.opts.Timeout = u.timeout
	bs.opts.Stream = wantsStream
	if u.stream {
		bs.opts.Stream = streamAlways
	}
}

// wantsStream reports whether a response asks to pass through as it
// arrives: an event stream, or X-Accel-Buffering: no, which is not
// forwarded.
func wantsStream(h *fasthttp.ResponseHeader) bool {
	stream := false
	dropFold(h, "X-Accel-Buffering", func(v []byte) { stream = eqFold(bytes.TrimSpace(v), "no") })
	ct := h.ContentType()
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return stream || eqFold(bytes.TrimSpace(ct), "text/event-stream")
}

// streamAlways is wantsStream for a route with buffering: false.
func streamAlways(h *fasthttp.ResponseHeader) bool {
	dropFold(h, "X-Accel-Buffering", nil)
	return true
}

// do runs the exchange with the slot held; the slot is released on every
// way out, a panic included, except when the response body goes on
// streaming from the backend: then the respBody releases it when the
// stream ends.
func do(s *scratch) error {
	kept := false
	defer func() {
		if !kept {
			s.pool.Release(s.backend)
		}
	}()
	body, err := s.backend.Exchange(&s.ctx.Request, &s.ctx.Response, &s.bodies.opts)
	if err != nil || body == nil {
		return err
	}
	kept, err = s.takeBody(body)
	return err
}

// takeBody sets the response up to send a body that did not fit in memory:
// spooled, or streamed from the backend. kept reports that the slot now
// belongs to the response body (a tee or a live body). On error nothing is
// set and the backend connection is closed.
func (s *scratch) takeBody(body *upstream.Body) (kept bool, err error) {
	handed := false
	defer func() {
		if !handed {
			body.Close()
		}
	}()
	bs := &s.bodies
	rb := &respBody{u: bs.u, conn: s.conn, writeTimeout: bs.u.bodies.writeTimeout}
	size := int64(-1)
	if body.Streaming() {
		rb.src, rb.live = body, body
		size = body.Len()
	} else {
		size = s.spool(rb, body, s.ctx.Response.Body())
		rb.rate.min = int64(bs.u.bodies.MinRate)
		if rb.tee != nil && size < 0 && !s.ctx.Request.Header.IsHTTP11() {
			// An HTTP/1.0 client cannot read chunked framing: spool the
			// whole body first, so that its length is known.
			handed = true
			if size, err = rb.tee.fillWhole(bs.g, int64(bs.u.bodies.MaxSpoolBytes)); err != nil {
				return true, err // the slot went with the tee
			}
		}
	}
	if rb.live != nil {
		rb.pool, rb.backend = s.pool, s.backend
	}
	s.ctx.Response.SetBodyStream(rb, int(size))
	// The header goes out at once; then fasthttp's writer hands each read
	// straight to the socket, so a stream with a Content-Length is not held
	// back in its buffer either.
	s.ctx.Response.ImmediateHeaderFlush = true
	handed, bs.rb = true, rb
	if rb.live != nil {
		rb.watch(bs.u)
	}
	if rb.tee != nil && !rb.tee.filled {
		go rb.tee.fill(bs.g, int64(bs.u.bodies.MaxSpoolBytes))
	}
	return rb.live != nil || rb.tee != nil, nil
}

// spool sets rb to send body, after prefix, through a spool file that the
// client reads while it fills (see tee), which takes the slot along. A
// response that cannot be spooled streams from the backend instead
// (rb.live). It returns the body size, or -1 when unknown.
func (s *scratch) spool(rb *respBody, body *upstream.Body, prefix []byte) int64 {
	bs := &s.bodies
	g, cfg := bs.g, bs.u.bodies
	size := int64(-1)
	if n := body.Len(); n >= 0 {
		size = int64(len(prefix)) + n
	}
	if cfg.MaxSpoolBytes > 0 {
		f, err := g.spool.create(cfg.SpoolDir, dirResponse)
		if err == nil {
			if _, err = f.Write(prefix); err != nil {
				f.Close()
			}
		}
		if err == nil {
			pool, b := s.pool, s.backend
			rb.tee = newTee(f, body, func() { pool.Release(b) }, bs.u)
			rb.src = rb.tee
			return size
		}
		g.spoolFailed(err)
	}
	rb.src, rb.live = io.MultiReader(bytes.NewReader(bytes.Clone(prefix)), body), body
	return size
}

const copyBufSize = 32 << 10

var copyBufs = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

// spoolFailed logs the first of a run of spool failures.
func (g *Gateway) spoolFailed(err error) {
	if !g.spool.failing.Swap(true) {
		g.log.Error("cannot spool: streaming responses with their backend slot held, refusing large uploads",
			"error", err)
	}
}

func (g *Gateway) spoolOK() {
	if g.spool.failing.Swap(false) {
		g.log.Info("spooling works again")
	}
}

// finish records a request that reached a backend: now, or, when its body
// is still to be sent, once the client has it (or has left).
func (g *Gateway) finish(ctx *fasthttp.RequestCtx, s *scratch, u *upstreamState, b *upstream.Backend,
	start time.Time, waited, took time.Duration) {
	rb := s.bodies.rb
	s.bodies.g, s.bodies.u, s.bodies.rb = nil, nil, nil
	if rb == nil {
		g.done(ctx, s, u, b, start, waited, took)
		return
	}
	u.metrics.QueueWait(waited)
	rb.g, rb.start, rb.code = g, start, ctx.Response.StatusCode()
	if g.access != nil {
		rb.entry = &accesslog.Entry{
			Time:        start,
			Method:      bytes.Clone(ctx.Request.Header.Method()),
			Host:        bytes.Clone(ctx.Request.Header.Host()),
			Path:        bytes.Clone(ctx.Request.Header.RequestURI()),
			Status:      rb.code,
			Upstream:    u.name,
			Backend:     b.Address(),
			QueueWait:   waited,
			BackendTime: took,
			Shard:       -1,
		}
		if c, ok := s.conn.(shardConn); ok {
			rb.entry.Shard = c.Shard()
		}
		if s.conn != nil {
			rb.entry.Client = peerAddrPort(nil, s.conn)
		}
	}
}

// rateWindow is the span min_rate is averaged over.
const rateWindow = 10 * time.Second

// watchEvery is how often a stream checks that its client is still there.
const watchEvery = 100 * time.Millisecond

var errTooSlow = errors.New("gateway: client below min_rate")

// respBody is a response body the client writer reads after the handler
// returned: a spool file, the backend connection, or both in turn. Each
// read moves the client's write deadline, so write_timeout bounds each
// write rather than the whole body; a buffered body read slower than
// min_rate is cut. Closing it releases the backend slot a stream holds,
// frees the spool file and records the request as the client got it.
// fasthttp's writer calls Read and CloseWithError from one goroutine.
type respBody struct {
	src          io.Reader
	tee          *tee           // the spool, when the body goes through one
	live         *upstream.Body // the backend connection, when the body comes from it
	pool         *upstream.Pool // with backend: the slot a live body holds
	backend      *upstream.Backend
	conn         net.Conn // the client's
	writeTimeout time.Duration

	sent, last int64 // bytes handed to the writer; of them, the last read
	eof        bool
	srcErr     bool // the body failed on the backend's side
	rate       rateCheck
	stop, done chan struct{} // the client watcher of a live body
	left       atomic.Bool   // the watcher saw the client go and aborted the backend

	g      *Gateway
	u      *upstreamState
	start  time.Time
	code   int
	entry  *accesslog.Entry
	closed bool
}

// Read implements io.Reader for fasthttp's response writer.
func (rb *respBody) Read(p []byte) (int, error) {
	if rb.tee != nil && rb.rate.min > 0 && rb.tee.spooling() {
		rb.rate.winStart = time.Time{} // the backend sets the pace until it is done
	}
	if err := rb.rate.check(rb.sent); err != nil {
		return 0, err
	}
	n, err := rb.src.Read(p)
	rb.sent += int64(n)
	rb.last = int64(n)
	switch {
	case err == io.EOF:
		rb.eof = true
	case err != nil:
		rb.srcErr = true
	}
	if n > 0 && rb.conn != nil && rb.writeTimeout > 0 {
		if derr := rb.conn.SetWriteDeadline(time.Now().Add(rb.writeTimeout)); derr != nil && err == nil {
			err = derr
		}
	}
	return n, err
}

// watch aborts a live body when its client goes away, so that the backend
// learns of it at once rather than at its next write.
func (rb *respBody) watch(u *upstreamState) {
	rb.stop, rb.done = make(chan struct{}), make(chan struct{})
	u.metrics.Stream(1)
	u.streams.Add(1)
	go func() {
		defer close(rb.done)
		t := time.NewTicker(watchEvery)
		defer t.Stop()
		for {
			select {
			case <-rb.stop:
				return
			case <-t.C:
				if clientGone(rb.conn) {
					rb.left.Store(true)
					rb.live.Abort()
					return
				}
			}
		}
	}()
}

// clientGone reports whether the client on c closed its connection.
func clientGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	return ok && listener.Peek(sc) == listener.StateClosed
}

// CloseWithError implements fasthttp.ReadCloserWithError: fasthttp calls it
// once the body is written (err nil) or writing failed.
func (rb *respBody) CloseWithError(err error) error {
	if rb.closed {
		return nil
	}
	rb.closed = true
	if rb.stop != nil {
		close(rb.stop)
		<-rb.done
	}
	if rb.live != nil {
		rb.live.Close()
		if rb.pool != nil {
			rb.pool.Release(rb.backend)
		}
		rb.u.metrics.Stream(-1)
		rb.u.streams.Add(-1)
	}
	if rb.tee != nil {
		rb.tee.closeReader()
	}
	rb.record(err)
	return nil
}

// record counts and logs the request as the client got it: a body cut
// short is never a clean response.
func (rb *respBody) record(werr error) {
	if rb.g == nil {
		return // closed before the handler finished: forward records the error
	}
	aborted := ""
	sent := rb.sent
	var ne net.Error
	switch {
	case rb.left.Load():
		aborted, sent = "client", sent-rb.last
	case rb.srcErr:
		aborted = "backend"
	case rb.eof && werr == nil:
	case errors.Is(werr, errTooSlow):
		aborted = "min_rate"
	case errors.As(werr, &ne) && ne.Timeout():
		aborted, sent = "timeout", sent-rb.last
	default:
		aborted, sent = "client", sent-rb.last
	}
	code := rb.code
	switch aborted {
	case "":
	case "backend":
		code = fasthttp.StatusBadGateway
	default:
		code = statusClientGone
	}
	rb.u.metrics.Request(code, time.Since(rb.start))
	if e := rb.entry; e != nil {
		e.Bytes, e.Aborted, e.Total = sent, aborted, time.Since(rb.start)
		rb.g.access.Log(e)
	}
}

// routeView returns the upstream state a route's requests use: u itself,
// or, for a route with its own buffering or response_timeout, a copy of u
// with those set (sharing u's pool, metrics and counters).
func routeView(u *upstreamState, r config.Route) *upstreamState {
	if u == nil || r.Buffering && r.ResponseTimeout == 0 {
		return u
	}
	v := *u
	v.stream = !r.Buffering
	v.timeout = r.ResponseTimeout
	return &v
}
