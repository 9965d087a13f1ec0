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
	// Find a connection that is safe to write a request to: freshly
	// dialled, or pooled with nothing waiting to be read on it.
	cc, err := hc.AcquireConn(hc.ReadTimeout, false)
	for err == nil && !clean(cc.Conn()) {
		hc.CloseConn(cc) // the backend closed it, or sent bytes nobody asked for
		cc, err = hc.AcquireConn(hc.ReadTimeout, false)
	}
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	deadline := time.Now().Add(hc.ReadTimeout)
	if err := conn.SetDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		return false, err
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		err = exchangeError(conn, err)
		hc.CloseConn(cc)
		return false, err
	}
	if bc, ok := conn.(*backendConn); ok {
		bc.nread = 0
	}
	head := req.Header.IsHead()
	resp.SkipBody = head
	br := hc.AcquireReader(conn)
	err = resp.ReadLimitBody(br, hc.MaxResponseBodySize)
	leftover := br.Buffered() > 0
	hc.ReleaseReader(br)
	if err != nil || leftover || head || resp.ConnectionClose() || req.ConnectionClose() {
		// A HEAD response may be followed by a body the backend should not
		// have sent; never reuse a connection that carried one.
		if err != nil {
			if t.hold(conn, func() { hc.CloseConn(cc) }, err) {
				return false, exchangeError(conn, err) // the connection is the hold's now
			}
			err = exchangeError(conn, err)
		}
		hc.CloseConn(cc)
		return false, err
	}
	if bc, ok := conn.(*backendConn); ok {
		bc.served++
	}
	hc.ReleaseConn(cc)
	return false, nil
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
