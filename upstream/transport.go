package upstream

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/listener"
)

// readBufferSize bounds a backend's response header block.
const readBufferSize = 32 << 10

// minBodyRate is the slowest, in bytes per second, a backend may take a
// streamed (spooled) request body: its write may take the response timeout
// plus the body length at this rate. The wait for the response then starts
// anew.
const minBodyRate = 1 << 20

func newHostClient(c BackendConfig) *fasthttp.HostClient {
	// No TCP keep-alive probes: pooled connections live idle_conn_timeout at
	// most, and the probes would cost three setsockopt calls per dial.
	d := &net.Dialer{Timeout: c.ConnectTimeout, KeepAlive: -1}
	return &fasthttp.HostClient{
		Addr: c.Address,
		Dial: func(addr string) (net.Conn, error) {
			return dial(d, addr)
		},
		Transport:                 cleanTransport{},
		MaxConns:                  maxConns(c.Limit),
		MaxIdleConnDuration:       c.IdleConnTimeout,
		ReadTimeout:               c.ResponseTimeout,
		WriteTimeout:              c.ResponseTimeout,
		MaxIdemponentCallAttempts: 1, // never resend: cleanTransport checks connections first
		ConnPoolStrategy:          fasthttp.LIFO,
		NoDefaultUserAgentHeader:  true,
		DisablePathNormalizing:    true,
		ReadBufferSize:            readBufferSize,
	}
}

// DialError is a failure to open a connection to a backend.
type DialError struct{ Err error }

func (e *DialError) Error() string { return "upstream: connect: " + e.Err.Error() }

// Unwrap returns the dial error.
func (e *DialError) Unwrap() error { return e.Err }

// Timeout reports whether the connect attempt timed out.
func (e *DialError) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// backendConn is a pooled connection to a backend. used is false until the
// connection has carried one exchange; only fasthttp's pool, which hands a
// connection to one request at a time, touches it.
type backendConn struct {
	*net.TCPConn
	peeker *listener.Peeker
	used   bool
	served int   // exchanges completed on it
	nread  int64 // bytes read since the current exchange was written
}

// Read counts the bytes read, so a failed exchange tells whether the
// response had begun.
func (c *backendConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	c.nread += int64(n)
	return n, err
}

// exchangeError wraps err, an exchange's failure on c, with how far the
// exchange got.
func exchangeError(c net.Conn, err error) error {
	bc, ok := c.(*backendConn)
	if !ok {
		return err
	}
	return &ExchangeError{Err: err, Reused: bc.served > 0, Answering: bc.nread > 0}
}

func dial(d *net.Dialer, addr string) (net.Conn, error) {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, &DialError{Err: err}
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, &DialError{Err: fmt.Errorf("dialing %s: not a TCP connection", addr)}
	}
	p, err := listener.NewPeeker(tc)
	if err != nil {
		tc.Close()
		return nil, &DialError{Err: err}
	}
	return &backendConn{TCPConn: tc, peeker: p}, nil
}

// cleanTransport is fasthttp's round trip with one rule added: a backend
// connection is reused only when its last exchange ended cleanly and nothing
// has arrived on it since. Bytes a backend sends after a complete response
// (gunicorn 20.1 writes a body after a HEAD response) or a close it sent
// while the connection sat in the pool would otherwise become the next
// request's response or fail a request that is not safe to resend.
type cleanTransport struct {
	b *Backend // whose slot a timed-out exchange may hold; see hold.go
}

// RoundTrip implements fasthttp.RoundTripper. It never asks fasthttp to retry.
func (t cleanTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	_, err := t.roundTrip(hc, req, resp, nil)
	return false, err
}

// roundTrip is one exchange. With o nil it reads the whole response; else
// as o says, returning the Body that continues it, if any (see Options).
func (t cleanTransport) roundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, o *Options) (*Body, error) {
	timeout := hc.ReadTimeout
	if o != nil && o.Timeout > 0 {
		timeout = o.Timeout
	}
	// Find a connection that is safe to write a request to: freshly
	// dialled, or pooled with nothing waiting to be read on it.
	cc, err := hc.AcquireConn(timeout, false)
	for err == nil && !clean(cc.Conn()) {
		hc.CloseConn(cc) // the backend closed it, or sent bytes nobody asked for
		cc, err = hc.AcquireConn(timeout, false)
	}
	if err != nil {
		return nil, err
	}
	conn := cc.Conn()
	deadline := time.Now().Add(timeout)
	long := req.IsBodyStream() // a spooled body: give its write time, see minBodyRate
	if n := req.Header.ContentLength(); long && n > 0 {
		deadline = deadline.Add(time.Duration(n) * time.Second / minBodyRate)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		return nil, err
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err == nil && long {
		err = conn.SetReadDeadline(time.Now().Add(timeout))
	}
	if err != nil {
		err = exchangeError(conn, err)
		hc.CloseConn(cc)
		return nil, err
	}
	if bc, ok := conn.(*backendConn); ok {
		bc.nread = 0
	}
	head := req.Header.IsHead()
	resp.SkipBody = head
	// Header names reach the client as the backend spelled them (ETag,
	// not Etag); the gateway's own lookups ignore case.
	resp.Header.DisableNormalizing()
	br := hc.AcquireReader(conn)
	keep := true
	if o == nil {
		err = resp.ReadLimitBody(br, hc.MaxResponseBodySize)
	} else {
		var open bool
		open, err = readResponse(resp, br, conn, o, timeout)
		if open && err == nil {
			c, r := cc, br // captured by value: only this branch allocates
			return openBody(o, resp.ConnectionClose() || req.ConnectionClose(), func(reuse bool) {
				hc.ReleaseReader(r)
				if reuse {
					hc.ReleaseConn(c)
				} else {
					hc.CloseConn(c)
				}
			}), nil
		}
		keep = o.body.keep
		o.body = Body{}
	}
	leftover := br.Buffered() > 0
	hc.ReleaseReader(br)
	if err != nil || leftover || head || !keep || resp.ConnectionClose() || req.ConnectionClose() {
		// A HEAD response may be followed by a body the backend should not
		// have sent; never reuse a connection that carried one.
		if err != nil {
			if t.hold(conn, func() { hc.CloseConn(cc) }, err) {
				return nil, exchangeError(conn, err) // the connection is the hold's now
			}
			err = exchangeError(conn, err)
		}
		hc.CloseConn(cc)
		return nil, err
	}
	if bc, ok := conn.(*backendConn); ok {
		bc.served++
	}
	hc.ReleaseConn(cc)
	return nil, nil
}

// openBody moves the body read in place in o to the heap, with release as
// its way to hand the connection back. closing: the connection may not be
// reused whatever happens.
func openBody(o *Options, closing bool, release func(reuse bool)) *Body {
	b := new(Body)
	*b = o.body
	o.body = Body{}
	if closing {
		b.keep = false
	}
	b.release = release
	return b
}

// clean reports whether a connection from the pool may carry a request.
func clean(c net.Conn) bool {
	bc, ok := c.(*backendConn)
	if !ok {
		return true
	}
	if !bc.used {
		bc.used = true
		return true
	}
	return bc.peeker.Peek() == listener.StateIdle
}
