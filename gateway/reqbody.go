package gateway

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Request bodies. The server hands the handler a request as soon as its
// header block is read (fasthttp's StreamRequestBody); readBody then reads
// the body whole before a backend slot is taken, so a slow upload never
// holds a worker: in memory up to request_buffer_bytes, beyond that into a
// spool file, up to max_body_bytes. Each read waits at most read_timeout,
// and a body slower than min_rate is cut. A chunked body is de-chunked and
// forwarded with Content-Length.

// prefetched is how much of a body fasthttp reads along with the header.
const prefetched = 8 << 10

var (
	errBodyTooLarge = errors.New("gateway: request body too large")
	errSpool        = errors.New("gateway: cannot spool request body")
)

// readBody reads the request body whole. It answers the client itself and
// returns false when it cannot.
func (g *Gateway) readBody(ctx *fasthttp.RequestCtx, s *scratch, u *upstreamState, start time.Time) bool {
	req := &ctx.Request
	if !req.IsBodyStream() {
		return true
	}
	cfg := u.bodies
	cl := req.Header.ContentLength()
	if cl > cfg.maxBody {
		return g.bodyFailed(ctx, s, u, start, errBodyTooLarge)
	}
	if cl >= 0 && cl <= prefetched {
		req.Body() // all of it arrived with the header
		dropTrailers(&req.Header, s)
		req.Header.SetContentLength(len(req.Body()))
		return true
	}
	n, f, err := g.receive(ctx, s, cfg)
	dropTrailers(&req.Header, s)
	switch {
	case err != nil:
		return g.bodyFailed(ctx, s, u, start, err)
	case f == nil:
		req.SetBody(s.bodies.reqBuf[:n])
		req.Header.SetContentLength(n)
	default:
		req.SetBodyStream(&spooledBody{SectionReader: f.reader(), f: f}, n)
	}
	return true
}

// receive reads the body stream into s.bodies.reqBuf, then, past
// request_buffer_bytes, into a spool file. It returns the body length and
// the file, nil when the body fits in memory.
func (g *Gateway) receive(ctx *fasthttp.RequestCtx, s *scratch, cfg *bodyConfig) (int, *spoolFile, error) {
	r := ctx.Request.BodyStream()
	c := ctx.Conn()
	buf := s.bodies.reqBuf[:0]
	if cap(buf) < cfg.RequestBufferBytes {
		buf = make([]byte, 0, cfg.RequestBufferBytes)
	}
	rate := rateCheck{min: int64(cfg.MinRate)}
	var f *spoolFile
	total := 0
	fail := func(err error) (int, *spoolFile, error) {
		if f != nil {
			f.Close()
		}
		s.bodies.reqBuf = buf[:0]
		return 0, nil, err
	}
	for {
		if len(buf) == cap(buf) {
			if f == nil {
				var err error
				if f, err = g.spool.create(cfg.SpoolDir, dirRequest); err != nil {
					g.spoolFailed(err)
					return fail(errSpool)
				}
			}
			if _, err := f.Write(buf); err != nil {
				g.spoolFailed(err)
				return fail(errSpool)
			}
			buf = buf[:0]
		}
		if err := rate.check(int64(total)); err != nil {
			return fail(err)
		}
		if cfg.readTimeout > 0 {
			c.SetReadDeadline(time.Now().Add(cfg.readTimeout))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		total += n
		if total > cfg.maxBody {
			return fail(errBodyTooLarge)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
	}
	if f != nil {
		if _, err := f.Write(buf); err != nil {
			g.spoolFailed(err)
			return fail(errSpool)
		}
		g.spoolOK()
		buf = buf[:0]
	}
	s.bodies.reqBuf = buf[:0]
	if cap(buf) > cfg.RequestBufferBytes {
		s.bodies.reqBuf = nil // the config shrank: do not keep the old size
	}
	return total, f, nil
}

// bodyFailed answers a request whose body could not be read and records
// it.
func (g *Gateway) bodyFailed(ctx *fasthttp.RequestCtx, s *scratch, u *upstreamState, start time.Time, err error) bool {
	var ne net.Error
	code, text := fasthttp.StatusBadRequest, "malformed request body"
	switch {
	case errors.Is(err, errBodyTooLarge):
		code, text = fasthttp.StatusRequestEntityTooLarge, "request body too large"
	case errors.Is(err, errSpool):
		code, text = fasthttp.StatusServiceUnavailable, "cannot buffer the request body"
	case errors.Is(err, errTooSlow), errors.As(err, &ne) && ne.Timeout():
		code, text = fasthttp.StatusRequestTimeout, "request timeout"
	}
	reply(ctx, code, text, "")
	ctx.SetConnectionClose()
	if code != fasthttp.StatusRequestTimeout {
		lingerOnClose(ctx.Conn()) // the client may still be sending the body
	}
	u.metrics.Request(code, time.Since(start))
	g.logAccess(ctx, s, start, u, nil, 0, 0, "")
	return false
}

// rateCheck cuts a transfer slower than min bytes per second over
// rateWindow. The zero min checks nothing.
type rateCheck struct {
	min      int64
	winStart time.Time
	winBytes int64
}

func (rc *rateCheck) check(total int64) error {
	if rc.min <= 0 {
		return nil
	}
	now := time.Now()
	if rc.winStart.IsZero() {
		rc.winStart, rc.winBytes = now, total
		return nil
	}
	if el := now.Sub(rc.winStart); el >= rateWindow {
		if (total-rc.winBytes)*int64(time.Second) < rc.min*int64(el) {
			return errTooSlow
		}
		rc.winStart, rc.winBytes = now, total
	}
	return nil
}

// spooledBody is a spooled request body as the backend client reads it;
// fasthttp closes it once the request is written or reset, which frees the
// file.
type spooledBody struct {
	*io.SectionReader
	f *spoolFile
}

// Close frees the spool file.
func (b *spooledBody) Close() error { return b.f.Close() }

// SupportsBodyWriteTo implements fasthttp.BodyWriterTo: fasthttp writes
// the body with WriteTo.
func (b *spooledBody) SupportsBodyWriteTo() bool { return true }

// WriteTo hands the file itself to fasthttp's body writer, which sends it
// to the backend with sendfile.
func (b *spooledBody) WriteTo(w io.Writer) (int64, error) {
	if _, err := b.f.f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(io.LimitReader(b.f.f, b.f.size))
	}
	return io.Copy(w, b.SectionReader)
}
